"""/latency: p50/p95/p99, events and error rate of one service over a window, judged against its runbook SLOs.

parse → (no authorization: read-only) → act → render. The numbers come from a read-only query on the service's
own events table (the runbooks' PERCENTILE_CONT SQL, see integrations/metrics_db.py), bounded by the catalog's
`statement_timeout_s`. The answer is one message; its trend (the same percentiles per bucket of the window) goes
in the message's thread as a chart, or as a text sparkline when the chart cannot be drawn or uploaded.

Verdicts: each catalog objective for the metric (and the request's kind) marks the value OK, WARN or BREACH.
`strict` objectives read the runbook's "<" (the limit itself breaches), the others "≤". An objective with `warn`
is WARN from `warn` up to its limit (AI Assistant's 5–10 s band); one without is WARN from 80 % of its limit, so
a value closing in on the SLO shows before it breaches.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re

from bot.catalog import Catalog, Service, missing_env
from bot.commands import Command, UsageError, did_you_mean
from bot.context import CommandContext
from bot.replies import PostedMessage
from handlers.latency import blocks as latency_blocks
from handlers.latency.model import WINDOWS, LatencyRequest
from handlers.latency.slo import applicable, source_stats, verdicts
from integrations import charts, metrics_db

log = logging.getLogger(__name__)

DEFAULT_SERVICE = "mira-copilot"
DEFAULT_WINDOW = "5m"
ALL_KINDS = "all"
METRICS = ("p50", "p95", "p99")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|week|weeks)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_KIND_WORD = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


# --- parse ----------------------------------------------------------------------------------------------------


def service_kinds(service: Service) -> list[str]:
    """The kinds the service's objectives name (Ivy: conversational, rag), in catalog order."""
    return list(dict.fromkeys(o.kind for o in service.objectives if o.kind is not None))


def _window_seconds(word: str) -> float | None:
    match = _DURATION.match(word)
    if not match:
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)[0]]


def nearest_window(word: str) -> str | None:
    """The allowed window closest to what was typed (2h → 1h, 1d → 24h), for "did you mean"."""
    seconds = _window_seconds(word)
    if not seconds:
        return did_you_mean(word, list(WINDOWS))
    return min(WINDOWS, key=lambda w: abs(math.log(WINDOWS[w][0].total_seconds() / seconds)))


def _latency_services(catalog: Catalog) -> list[str]:
    return [s.name for s in catalog.services if s.latency is not None]


def _default_service(catalog: Catalog) -> Service:
    service = catalog.find(DEFAULT_SERVICE)
    if service is not None and service.latency is not None:
        return service
    for candidate in catalog.services:
        if candidate.latency is not None:
            return candidate
    raise UsageError("No service in the catalog has a latency source.")


def _kind_error(word: str, service: Service, service_given: bool, catalog: Catalog) -> UsageError:
    """Why `word` is not understood, with the closest thing it might have meant."""
    kinds = service_kinds(service)
    if service.latency is not None and service.latency.kind_column and kinds:
        choices = [*kinds, ALL_KINDS]
        suggestion = did_you_mean(word, choices)
        if suggestion is None and catalog.find(word) is not None:
            return UsageError("`/latency` measures one service at a time.")
        if suggestion is None and (close := catalog.suggest(word)) is not None:
            return UsageError(f"I don't know a service called `{word}`.", suggestion=close)
        return UsageError(
            f"kind must be one of {', '.join(choices)} for {service.display_name}, got `{word}`.",
            suggestion=suggestion,
        )
    if catalog.find(word) is not None:
        return UsageError("`/latency` measures one service at a time.")
    if service_given:
        return UsageError(
            f"I don't know `{word}`: it is not a service, and {service.display_name} has no query kinds.",
            suggestion=catalog.suggest(word),
        )
    return UsageError(
        f"I don't know a service called `{word}`. Services: {', '.join(_latency_services(catalog))}.",
        suggestion=catalog.suggest(word),
    )


def parse(text: str, catalog: Catalog) -> LatencyRequest:
    """`[service] [window] [kind]`, in any order: a word starting with a digit is the window, a catalog name or
    alias the service, anything else the kind. Pure: no I/O, so it runs before the ack."""
    words = text.split()
    if len(words) > 3:
        raise UsageError(f"`/latency` takes a service, a window and a kind at most, got `{text.strip()}`.")
    service: Service | None = None
    window: str | None = None
    rest: list[str] = []
    for word in words:
        lowered = word.lower()
        if lowered[0].isdigit():
            if lowered not in WINDOWS:
                raise UsageError(
                    f"window must be one of {', '.join(WINDOWS)}, got `{word}`.",
                    suggestion=nearest_window(lowered),
                )
            if window is not None:
                raise UsageError(f"Give one window, got `{window}` and `{lowered}`.")
            window = lowered
        elif service is None and (found := catalog.find(word)) is not None:
            service = found
        else:
            rest.append(word)
    service_given = service is not None
    if service is None:
        service = _default_service(catalog)
    source = service.latency
    if source is None:
        raise UsageError(
            f"{service.display_name} has no latency source in the catalog, so there is nothing to measure. "
            f"Services with one: {', '.join(_latency_services(catalog))}."
        )
    kinds = service_kinds(service)
    kind: str | None = None
    kind_defaulted = False
    if len(rest) > 1:
        raise _kind_error(rest[1], service, service_given, catalog)
    if rest:
        word = rest[0]
        lowered = word.lower()
        if source.kind_column and kinds and lowered in (*kinds, ALL_KINDS):
            kind = None if lowered == ALL_KINDS else lowered
        elif source.kind_column and not kinds and _KIND_WORD.match(word) and catalog.find(word) is None:
            kind = None if lowered == ALL_KINDS else word
        else:
            raise _kind_error(word, service, service_given, catalog)
    elif source.kind_column and kinds:
        # Objectives per kind cannot judge mixed traffic: measure the first kind the runbook names.
        kind, kind_defaulted = kinds[0], True
    return LatencyRequest(
        service=service,
        window=window or DEFAULT_WINDOW,
        kind=kind,
        kind_defaulted=kind_defaulted,
        kinds=(*kinds, ALL_KINDS) if source.kind_column else (),
        missing=tuple(missing_env(source)),
    )


def acknowledge(request: LatencyRequest, catalog: Catalog) -> str:
    if request.missing:
        return latency_blocks.not_configured_text(request)
    return f"Measuring {request.service.display_name} latency{latency_blocks.kind_label(request)} over {request.window}…"


# --- act ------------------------------------------------------------------------------------------------------


async def measure(request: LatencyRequest) -> metrics_db.LatencyStats:
    return await source_stats(
        request.source, window=request.duration, kind=request.kind, buckets=request.buckets
    )


def _chart_thresholds(request: LatencyRequest) -> list[charts.Threshold]:
    lines = []
    for objective in applicable(request.service.objectives, request.kind):
        if objective.metric == "error_rate":
            continue
        metric = objective.metric
        lines.append(
            charts.Threshold(
                f"{metric} SLO {latency_blocks.limit_text(objective)}", objective.limit, "limit", metric
            )
        )
        if objective.warn is not None:
            warn = latency_blocks.format_threshold(objective.warn)
            lines.append(charts.Threshold(f"{metric} warn from {warn}", objective.warn, "warn", metric))
    return lines


async def post_trend(
    ctx: CommandContext, message: PostedMessage, request: LatencyRequest, stats: metrics_db.LatencyStats
) -> None:
    """The chart in the answer's thread; the sparkline there instead when it cannot be drawn or uploaded."""
    series = stats.series
    if not any(bucket.p95 is not None for bucket in series):
        return
    title = latency_blocks.trend_title(request, stats)
    png: bytes | None = None
    try:
        png = await asyncio.to_thread(
            charts.render_trend,
            [bucket.start + stats.stride / 2 for bucket in series],  # each point at its bucket's middle
            {metric: [getattr(bucket, metric) for bucket in series] for metric in METRICS},
            title=title,
            thresholds=_chart_thresholds(request),
        )
    except Exception:
        log.warning("could not draw the latency chart; posting a sparkline instead", exc_info=True)
    if png is not None:
        try:
            await ctx.bot.slack.files_upload_v2(
                channel=message.channel,
                thread_ts=message.ts,
                file=png,
                filename=f"latency-{request.service.name}-{request.window}.png",
                title=title,
                alt_txt=latency_blocks.trend_text(request, stats),
            )
            return
        except Exception:
            log.warning("could not upload the latency chart; posting a sparkline instead", exc_info=True)
    await ctx.reply.post(
        latency_blocks.trend_text(request, stats), channel=message.channel, thread_ts=message.ts
    )


async def run(request: LatencyRequest, ctx: CommandContext) -> None:
    if request.missing:
        return  # the ack already said what to set
    try:
        stats = await measure(request)
    except metrics_db.MetricsQueryError as error:
        text, blocks = latency_blocks.render_failure(request, error)
        await ctx.reply.post(text, blocks)
        return
    found = verdicts(stats, request.service.objectives, request.kind)
    text, blocks = latency_blocks.render_latency(request, stats, found, requested_by=ctx.invocation.user_id)
    message = await ctx.reply.post(text, blocks)
    if message is not None:
        await post_trend(ctx, message, request, stats)


COMMAND = Command(
    name="/latency",
    description="p50/p95/p99 against the service's SLOs",
    usage_hint="[service] [5m|1h|24h|7d] [kind]",
    examples=("/latency", "/latency mira-copilot 1h", "/latency ivy-v2 5m rag", "/latency fa 24h"),
    parse=parse,
    acknowledge=acknowledge,
    run=run,
)
