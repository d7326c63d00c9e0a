"""Judging latency against a service's runbook SLOs: shared by /latency and the rollback's watch steps.

A verdict per objective (p50/p95/p99 in ms, error rate in percent): OK, WARN (from the objective's `warn`, else
80 % of its limit, since the runbooks mostly give no warning level) or BREACH (`strict` objectives breach at the
limit itself, "< 1%"). `source_stats` reads the catalog's latency source through the read-only query of
`integrations.metrics_db`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum

from bot.catalog import LatencySource, Objective
from integrations import metrics_db

DEFAULT_WARN_FRACTION = 0.8


class Level(IntEnum):
    """A verdict, ordered so that the worst is the max."""

    NO_DATA = 0
    OK = 1
    WARN = 2
    BREACH = 3

    @property
    def label(self) -> str:
        return {0: "no data", 1: "OK", 2: "WARN", 3: "BREACH"}[self.value]


@dataclass(frozen=True)
class Verdict:
    metric: str
    value: float | None
    level: Level
    objective: Objective
    warn_at: float


def warn_threshold(objective: Objective) -> float:
    """Where WARN starts: the catalog's `warn`, else 80 % of the limit."""
    return objective.warn if objective.warn is not None else DEFAULT_WARN_FRACTION * objective.limit


def judge(value: float | None, objective: Objective) -> Level:
    if value is None:
        return Level.NO_DATA
    breached = value >= objective.limit if objective.strict else value > objective.limit
    if breached:
        return Level.BREACH
    return Level.WARN if value >= warn_threshold(objective) else Level.OK


def applicable(objectives: list[Objective], kind: str | None) -> list[Objective]:
    """Objectives without a kind apply to every request; kind-specific ones only to that kind."""
    return [o for o in objectives if o.kind is None or o.kind == kind]


def verdicts(stats: metrics_db.LatencyStats, objectives: list[Objective], kind: str | None) -> list[Verdict]:
    values = {"p50": stats.p50, "p95": stats.p95, "p99": stats.p99, "error_rate": stats.error_rate}
    return [
        Verdict(o.metric, values[o.metric], judge(values[o.metric], o), o, warn_threshold(o))
        for o in applicable(objectives, kind)
    ]


async def source_stats(
    source: LatencySource, *, window: timedelta, kind: str | None = None, buckets: int = 1
) -> metrics_db.LatencyStats:
    """The catalog's latency source over `window`: shared by /latency and the rollback's watch steps."""
    return await metrics_db.latency_stats(
        source.dsn,
        table=source.table,
        latency_column=source.latency_column,
        time_column=source.time_column,
        filters=source.filters,
        kind_column=source.kind_column,
        success_column=source.success_column,
        window=window,
        kind=kind,
        buckets=buckets,
        statement_timeout=source.statement_timeout_s,
    )
