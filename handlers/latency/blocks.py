"""Block Kit and text for /latency, apart from the logic so a result can be rendered on its own.

One message: a summary line an on-call reads in a notification, a section with p50 / p95 / p99 / events / error
rate each with its verdict and the SLO it was judged against, and a context line with the window, the table and
the runbook the SLOs come from. A BREACH adds the runbook's next steps as buttons (the catalog's
`next_steps.latency_breach`, narrowed to the metrics and kind that breached). The trend goes in the thread
(handlers/latency/command.py).
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from bot import mrkdwn
from handlers.next_steps import next_step_blocks
from integrations.charts import sparkline
from integrations.metrics_db import QueryTimeout

if TYPE_CHECKING:
    from bot.catalog import Objective
    from handlers.latency.model import LatencyRequest
    from handlers.latency.slo import Verdict
    from integrations.metrics_db import LatencyStats, MetricsQueryError

EMOJI = {
    "OK": ":large_green_circle:",
    "WARN": ":large_yellow_circle:",
    "BREACH": ":red_circle:",
    "no data": ":white_circle:",
}
_HEADLINE = {
    "OK": "within its SLOs",
    "WARN": "close to its SLOs",
    "BREACH": "over its SLOs",
    "no data": "no events",
}
_METRIC_NAMES = {"p50": "p50", "p95": "p95", "p99": "p99", "error_rate": "error rate"}


# --- numbers --------------------------------------------------------------------------------------------------


def format_ms(value: float | None) -> str:
    """A measured latency: "850 ms" below a second, "1.62 s" above."""
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def format_threshold(value: float) -> str:
    """A threshold as the runbooks write it: "1.5 s", "3 s", "800 ms"."""
    return f"{value:g} ms" if value < 1000 else f"{value / 1000:g} s"


def format_percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} %" if value < 1 else f"{value:.1f} %"


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _value(metric: str, value: float | None) -> str:
    return format_percent(value) if metric == "error_rate" else format_ms(value)


def _threshold(metric: str, value: float) -> str:
    return f"{value:g} %" if metric == "error_rate" else format_threshold(value)


def limit_text(objective: Objective) -> str:
    """The SLO as the runbook states it: "≤ 1.5 s", "< 1 s", "< 1 %"."""
    return f"{'<' if objective.strict else '≤'} {_threshold(objective.metric, objective.limit)}"


def threshold_text(objective: Objective, warn_at: float) -> str:
    """The SLO and where WARN starts: "SLO ≤ 2.2 s, warn from 1.76 s"; "warn 5–10 s, breach above 10 s"."""
    metric = objective.metric
    if objective.warn is not None:
        return (
            f"warn {_threshold(metric, objective.warn)}–{_threshold(metric, objective.limit)}, "
            f"breach {'from' if objective.strict else 'above'} {_threshold(metric, objective.limit)}"
        )
    return f"SLO {limit_text(objective)}, warn from {_threshold(metric, warn_at)}"


# --- pieces ---------------------------------------------------------------------------------------------------


def kind_label(request: LatencyRequest) -> str:
    """ " (rag)", " (all kinds)" or "" for a source without kinds."""
    if request.kind is not None:
        return f" ({request.kind})"
    return " (all kinds)" if request.source.kind_column else ""


def not_configured_text(request: LatencyRequest) -> str:
    return (
        f":white_circle: {request.service.display_name} latency is not configured "
        f"(set {', '.join(request.missing)})."
    )


def overall(stats: LatencyStats, verdicts: list[Verdict]) -> str:
    """The answer in one word: the worst verdict's label, "no data" without events, "no SLO" with nothing to judge."""
    if stats.count == 0:
        return "no data"
    worst = max((v.level for v in verdicts if v.value is not None), default=None)
    return "no SLO" if worst is None else worst.label


def _status(stats: LatencyStats, verdicts: list[Verdict]) -> str:
    """The overall word, with the metrics that made it so when it is WARN or BREACH."""
    label = overall(stats, verdicts)
    if label not in ("WARN", "BREACH"):
        return label
    named = [
        f"{_METRIC_NAMES[v.metric]} {_value(v.metric, v.value)} vs {limit_text(v.objective)}"
        for v in verdicts
        if v.level.label == label
    ]
    return f"{label} ({'; '.join(named)})"


def summary_text(request: LatencyRequest, stats: LatencyStats, verdicts: list[Verdict]) -> str:
    """The notification text: status first, then the numbers."""
    head = f"{request.service.display_name} latency{kind_label(request)}, last {request.window}"
    if stats.count == 0:
        return f"{head}: no data — no events in the window"
    parts = [
        f"p50 {format_ms(stats.p50)}",
        f"p95 {format_ms(stats.p95)}",
        f"p99 {format_ms(stats.p99)}",
        f"{stats.count:,} events",
    ]
    if stats.error_rate is not None:
        parts.append(f"{format_percent(stats.error_rate)} errors")
    return f"{head}: {_status(stats, verdicts)} — {', '.join(parts)}"


def _field(
    metric: str, value: float | None, verdicts: list[Verdict], *, note: str | None = None
) -> dict[str, str]:
    mine = sorted((v for v in verdicts if v.metric == metric), key=lambda v: v.level, reverse=True)
    name = f"*{_METRIC_NAMES[metric]}*"
    if not mine:
        return {"type": "mrkdwn", "text": f"{name}\n{note or _value(metric, value)}"}
    worst = mine[0].level.label
    lines = [f"{EMOJI[worst]} {name} {worst}", note or _value(metric, value)]
    lines += [threshold_text(v.objective, v.warn_at) for v in mine]
    return {"type": "mrkdwn", "text": "\n".join(lines)}


def _source_text(request: LatencyRequest) -> str:
    source = request.source
    conditions = [f"{column} = {value}" for column, value in source.filters.items()]
    if request.kind is not None and source.kind_column:
        conditions.append(f"{source.kind_column} = {request.kind}")
    where = f" where {' and '.join(conditions)}" if conditions else ""
    return f"`{source.table}`{where}"


def _slo_sources(request: LatencyRequest, verdicts: list[Verdict]) -> str:
    runbooks = ", ".join(r.title for r in request.service.runbooks)
    cited = list(dict.fromkeys(v.objective.source for v in verdicts if v.objective.source))
    if not verdicts:
        return f"no SLOs in the catalog for this{' kind' if request.kind else ''}"
    text = f"SLOs from {runbooks}" if runbooks else "SLOs from the catalog"
    return text + (f" ({'; '.join(cited)})" if cited else "")


def render_latency(
    request: LatencyRequest, stats: LatencyStats, verdicts: list[Verdict], *, requested_by: str
) -> tuple[str, list[dict[str, Any]]]:
    text = summary_text(request, stats, verdicts)
    level = overall(stats, verdicts)
    emoji = EMOJI.get(level, ":white_circle:")
    headline = _HEADLINE.get(level, "no SLO to judge against")
    title = f"{emoji} *{request.service.display_name} latency{kind_label(request)} — last {request.window}*: {headline}"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": title}}]
    if stats.count == 0:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"No events in {_source_text(request)} in the last {request.window}.",
                },
            }
        )
    else:
        fields = [_field(metric, getattr(stats, metric), verdicts) for metric in ("p50", "p95", "p99")]
        fields.append({"type": "mrkdwn", "text": f"*events*\n{stats.count:,}"})
        if stats.errors_recorded:
            fields.append(_field("error_rate", stats.error_rate, verdicts))
        elif any(v.metric == "error_rate" for v in verdicts):
            fields.append(
                _field(
                    "error_rate",
                    None,
                    verdicts,
                    note="not recorded (the latency source has no success column)",
                )
            )
        blocks.append({"type": "section", "fields": fields})
    since, until = stats.since.astimezone(UTC), stats.until.astimezone(UTC)
    context = [
        f"{since:%b %d %H:%M}–{until:%H:%M} UTC in {len(stats.series)} × {format_duration(stats.stride)} buckets",
        _source_text(request),
        _slo_sources(request, verdicts),
    ]
    if request.kind_defaulted:
        others = [k for k in request.kinds if k != request.kind]
        if others:
            context.append(f"other kinds: `/latency {request.service.name} {request.window} {others[0]}`")
    context.append(f"for <@{requested_by}>")
    if stats.count:
        context.append("trend in the thread")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    if level == "BREACH":
        breached = {v.metric for v in verdicts if v.value is not None and v.level.label == "BREACH"}
        steps = request.service.next_steps.for_breach(breached, request.kind)
        blocks.extend(next_step_blocks(request.service, steps))
    return text, blocks


def render_failure(request: LatencyRequest, error: MetricsQueryError) -> tuple[str, list[dict[str, Any]]]:
    """One line: what could not be measured and why (never the DSN)."""
    text = f":warning: {request.service.display_name} latency{kind_label(request)} over {request.window}: {mrkdwn.escape(error)}."
    if isinstance(error, QueryTimeout) and not error.connecting:
        text += (
            f" On a large `{request.source.table}` this usually means the index README → /latency describes is"
            " missing."
        )
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


# --- trend ----------------------------------------------------------------------------------------------------


def trend_title(request: LatencyRequest, stats: LatencyStats) -> str:
    return (
        f"{request.service.display_name} latency{kind_label(request)}, last {request.window} "
        f"({format_duration(stats.stride)} buckets)"
    )


def trend_text(request: LatencyRequest, stats: LatencyStats) -> str:
    """The p95 trend as a sparkline with its range and peak, for when the chart cannot be posted."""
    values = [bucket.p95 for bucket in stats.series]
    present = [(bucket.start, bucket.p95) for bucket in stats.series if bucket.p95 is not None]
    if not present:
        return f"p95 trend, last {request.window}: no events"
    peak_at, peak = max(present, key=lambda item: item[1])
    first, last = present[0][1], present[-1][1]
    return (
        f"p95 trend, last {request.window} ({len(values)} × {format_duration(stats.stride)}): `{sparkline(values)}` "
        f"{format_ms(first)} → {format_ms(last)}, peak {format_ms(peak)} at {peak_at.astimezone(UTC):%H:%M} UTC"
    )
