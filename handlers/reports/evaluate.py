"""Evaluating a report's checks, each through the capability that owns it: the /health probes
(`handlers.health`), /latency's SLO engine (`handlers.latency`) and the `/diag` runner (`handlers.diagnostics`).

A check that cannot be evaluated — its database unreachable, a `${VAR}` unset, the query failing — is a failing
line that says why, never an exception: a 09:00 report that crashes says nothing, one that says "cannot reach
the database" says the most important thing of the morning. The checks run concurrently; SLO checks over the
same window and query kind share one query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.catalog import Objective, Service, Threshold, missing_env
from bot.catalog.reports import DiagnosticCheck, HealthCheck, Report, SloCheck
from bot.context import BotContext
from handlers.diagnostics import DiagnosticResult, run_diagnostic
from handlers.health import Status, check_service
from handlers.latency import Level, source_stats, verdicts
from handlers.reports.model import CheckLine
from integrations import metrics_db

log = logging.getLogger(__name__)

METRIC_LABELS = {"p50": "P50 latency", "p95": "P95 latency", "p99": "P99 latency", "error_rate": "Error rate"}


async def evaluate(bot: BotContext, service: Service, report: Report) -> tuple[CheckLine, ...]:
    """One line per check, in the catalog's order."""
    stats: dict[tuple[timedelta, str | None], asyncio.Task[metrics_db.LatencyStats]] = {}

    def measure(check: SloCheck) -> Awaitable[metrics_db.LatencyStats]:
        key = (check.duration, check.query_kind)
        if key not in stats:
            assert service.latency is not None
            stats[key] = asyncio.ensure_future(
                source_stats(service.latency, window=check.duration, kind=check.query_kind)
            )
        return stats[key]

    async def one(check: HealthCheck | SloCheck | DiagnosticCheck) -> CheckLine:
        try:
            if isinstance(check, HealthCheck):
                return await health_line(bot, service, check)
            if isinstance(check, SloCheck):
                return await slo_line(service, check, measure)
            return await diagnostic_line(bot, service, check)
        except Exception as exc:
            log.exception(
                "a scheduled check could not be evaluated",
                extra={"service": service.name, "report": report.name, "check": check.kind},
            )
            return CheckLine(
                label_of(service, check), False, f"could not be evaluated ({type(exc).__name__})"
            )

    return tuple(await asyncio.gather(*(one(check) for check in report.checks)))


def label_of(service: Service, check: HealthCheck | SloCheck | DiagnosticCheck) -> str:
    if isinstance(check, HealthCheck):
        return "Health" if not check.probes else f"Health ({', '.join(check.probes)})"
    if isinstance(check, SloCheck):
        kind = f" {check.query_kind}" if check.query_kind else ""
        return f"{METRIC_LABELS[check.metric]}{kind} ({check.window})"
    query = service.diagnostics.query(check.query) if service.diagnostics else None
    return check.label or (query.title if query is not None else check.query)


# --- health ---------------------------------------------------------------------------------------------------


async def health_line(bot: BotContext, service: Service, check: HealthCheck) -> CheckLine:
    """Every (named) probe ok. Not configured is a failure that names the variable: nothing was checked."""
    label = label_of(service, check)
    health = await check_service(service, bot)
    probes = [p for p in health.probes if not check.probes or p.name in check.probes]
    bad = [p for p in probes if p.status is not Status.OK]
    if not bad:
        shown = ", ".join(
            f"{p.name}{'' if p.latency_ms is None else f' {p.latency_ms:.0f} ms'}" for p in probes
        )
        return CheckLine(label, True, f"{len(probes)}/{len(probes)} probes ok ({shown})", short="health ok")
    # "not configured" fails too: nothing was checked, and the line says which variable to set.
    figure = "; ".join(f"{p.name} {p.status.value}: {p.detail}" for p in bad)
    failing = {p.name for p in bad if p.status is not Status.NOT_CONFIGURED}
    steps = tuple(service.next_steps.for_down(failing)) if failing else ()
    return CheckLine(label, False, figure, limit="every probe ok", steps=steps)


# --- SLOs -----------------------------------------------------------------------------------------------------


def value_text(metric: str, value: float) -> str:
    """ms as /latency shows them (1.84 s, 850 ms); error rate in percent."""
    if metric == "error_rate":
        return f"{value:.2f} %"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def limit_text(objective: Objective) -> str:
    return f"{'<' if objective.strict else '≤'} {value_text(objective.metric, objective.limit)}"


async def slo_line(
    service: Service, check: SloCheck, measure: Callable[[SloCheck], Awaitable[metrics_db.LatencyStats]]
) -> CheckLine:
    """The metric against `below` (the runbook's "< 1 %": strict), else the service's own objectives."""
    label = label_of(service, check)
    assert service.latency is not None  # the catalog checks it at load
    missing = missing_env(service.latency)
    if missing:
        return CheckLine(label, False, f"not configured: set {', '.join(missing)}")
    objectives = (
        [Objective(metric=check.metric, limit=check.below, strict=True, kind=check.query_kind)]
        if check.below is not None
        else [o for o in service.objectives if o.metric == check.metric]
    )
    try:
        stats = await measure(check)
    except metrics_db.MetricsQueryError as error:
        return CheckLine(label, False, f"cannot measure: {error}")
    found = verdicts(stats, objectives, check.query_kind)
    limit = " and ".join(limit_text(v.objective) for v in found)
    value = found[0].value if found else None
    if value is None:
        why = "no events" if stats.count == 0 else "no latencies recorded"
        return CheckLine(label, False, f"cannot judge: {why} in the last {check.window}", limit=limit)
    passed = all(v.level < Level.BREACH for v in found)
    figure = f"{value_text(check.metric, value)} over {stats.count:,} events"
    steps = () if passed else tuple(service.next_steps.for_breach({check.metric}, check.query_kind))
    short = f"{METRIC_LABELS[check.metric].split()[0]} {value_text(check.metric, value)}"
    return CheckLine(label, passed, figure, limit=limit, short=short, steps=steps)


# --- diagnostics ----------------------------------------------------------------------------------------------


def cell_text(service: Service, check: DiagnosticCheck, column: str, value: Any) -> str:
    """A result value as the query's column format shows it (plain text; escaped when rendered)."""
    query = service.diagnostics.query(check.query) if service.diagnostics else None
    spec = next((c.format for c in (query.columns if query else []) if c.name == column and c.format), None)
    if spec is not None and value is not None:
        try:
            return spec.format(value)
        except (TypeError, ValueError):
            pass
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%a %d %b %H:%M} UTC"
    if isinstance(value, float | Decimal):
        return f"{value:g}" if isinstance(value, float) else f"{value.normalize():f}"
    return "NULL" if value is None else str(value)


def expected_text(threshold: Threshold) -> str:
    """What a threshold asks, the way the runbook's ranges read: `success_pct ≥ 95`, `cost_per_stock ≤ 0.4`."""
    parts = []
    if threshold.below is not None:
        parts.append(f"{threshold.column} ≥ {threshold.below:g}")
    if threshold.above is not None:
        parts.append(f"{threshold.column} ≤ {threshold.above:g}")
    return " and ".join(parts)


async def diagnostic_line(bot: BotContext, service: Service, check: DiagnosticCheck) -> CheckLine:
    """The query's rows against the thresholds: the first row's figures (a one-row summary such as the last
    batch), or how many rows crossed."""
    label = label_of(service, check)
    assert service.diagnostics is not None
    query = service.diagnostics.query(check.query)
    assert query is not None  # the catalog checks it at load
    thresholds = check.thresholds if check.thresholds is not None else query.thresholds
    result: DiagnosticResult = await run_diagnostic(
        bot, service, query, check.args or None, thresholds=check.thresholds
    )
    limit = ", ".join(expected_text(t) for t in thresholds)
    if result.error is not None:
        return CheckLine(label, False, f"cannot run: {result.error}", limit=limit)
    if not result.rows:
        return CheckLine(label, check.empty_ok, "no rows", limit=limit, short=f"{check.query}: no rows")
    critical = [(row, t) for row, t in result.crossed if t.level == "critical"]
    if len(result.rows) == 1:
        row = result.rows[0]
        figures = [
            f"{column} {cell_text(service, check, column, _value(result, row, column))}"
            for column in [*(t.column for t in thresholds), *check.show]
        ]
        figure = ", ".join(dict.fromkeys(figures)) or f"1 row ({query.title})"
    else:
        figure = f"{len(result.rows)} rows, {len({row for row, _ in result.crossed})} crossing"
    if result.crossed and not critical:
        figure += " (warn)"
    steps = tuple(service.diagnostic_steps(query.name)) if critical else ()
    return CheckLine(label, not critical, figure, limit=limit, short=figure, steps=steps)


def _value(result: DiagnosticResult, row: tuple[object, ...], column: str) -> object:
    return row[result.columns.index(column)] if column in result.columns else None
