"""Scheduled checks: the checks a runbook asks an engineer to run on a schedule, which the bot runs itself.

FA runbook → Daily Operations → "Morning Health Check (Daily 9 AM)" lists its Expected Results (every target
healthy, error rate < 1 %, P95 < 3 s, yesterday's batch 100 %) and "Weekly Batch Processing" its Acceptable Ranges;
a service's `reports:` turns such a list into data: when (a cron in a time zone, with a catch-up grace), where (the
service's alerts or incidents channel, or a literal one), and what (checks of three kinds: the /health probes, an
SLO metric over a window as /latency measures it, a `/diag` query and its thresholds). Everything a check names is
checked when the catalog loads (`check_reports`), so a report never finds out at 09:00 that its query is gone.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bot.catalog.base import _ENV_REF, _SLUG, RunbookRef, _Model
from bot.catalog.diagnostics import Diagnostics, Threshold
from bot.catalog.next_steps import NextStep, RunbookSection
from bot.catalog.operations import LatencySource, Objective
from bot.catalog.probes import Probe
from bot.cron import CronSchedule

Metric = Literal["p50", "p95", "p99", "error_rate"]
_WINDOW = re.compile(r"^(\d+)(m|h|d)$")
_WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_WINDOW = timedelta(days=31)
#: Slack: a message holds at most 50 blocks; a check takes a line and its buttons, so a report stays readable.
MAX_CHECKS = 12


def window_of(text: str) -> timedelta:
    """`30m`, `24h`, `7d` as a timedelta (ValueError naming the expected form)."""
    match = _WINDOW.match(text.strip())
    if match is None:
        raise ValueError(f"a window is a number and m, h or d (30m, 24h, 7d), got {text!r}")
    window = timedelta(**{_WINDOW_UNITS[match.group(2)]: int(match.group(1))})
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ValueError(f"a window is longer than 0 and at most 31d, got {text!r}")
    return window


class HealthCheck(_Model):
    """Every probe of the service answers ok (`probes` narrows it to some; a probe that is not configured fails:
    the check cannot say it is healthy)."""

    kind: Literal["health"]
    probes: list[str] = Field(default_factory=list)


class SloCheck(_Model):
    """One /latency metric over `window`, below `below` (ms for percentiles, percent for error_rate); without
    `below`, judged against the service's own objectives for the metric (and `query_kind`), as /latency does."""

    kind: Literal["slo"]
    metric: Metric
    below: float | None = Field(default=None, gt=0)
    window: str = "24h"
    query_kind: str | None = None

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        window_of(value)
        return value

    @property
    def duration(self) -> timedelta:
        return window_of(self.window)


class DiagnosticCheck(_Model):
    """A `/diag` query of the service, failing when a row crosses a critical threshold (the check's
    `thresholds`, else the query's own), when it cannot run, or, unless `empty_ok`, when it returns no row (no
    batch run at all). `args` are given as a user types them (`window: 24h`); `show` names columns shown beside
    the thresholded ones (when the last batch started, so last week's batch is not read as this week's); `label`
    names the line (default: the query's title)."""

    kind: Literal["diagnostic"]
    query: str
    label: str | None = Field(default=None, min_length=1, max_length=80)
    args: dict[str, str] = Field(default_factory=dict)
    show: list[str] = Field(default_factory=list)
    thresholds: list[Threshold] | None = None
    empty_ok: bool = False


Check = Annotated[HealthCheck | SloCheck | DiagnosticCheck, Field(discriminator="kind")]


class Report(_Model):
    """One scheduled check of a service: `cron` in `timezone`; a slot missed while the bot was down is run up to
    `grace_minutes` later (and says "(late)"), later than that it is skipped. `channel` is `alerts` or
    `incidents` (the service's, else the bot-wide one), a `#name`, a conversation ID, or a `${VAR}` (unset: the
    alerts channel). `action` is the runbook's "Action if Failed", offered under a failing report;
    `on_failure_thread` names `/diag` queries posted in the message's thread when a check fails. `enabled: false`
    keeps a report validated but unscheduled (the bundled opt-in summaries)."""

    name: str
    enabled: bool = True
    title: str = Field(min_length=1, max_length=150)
    runbook: RunbookSection
    cron: str
    timezone: str = "UTC"
    grace_minutes: int = Field(default=180, ge=1, le=24 * 60)
    channel: str = "alerts"
    checks: list[Check] = Field(min_length=1, max_length=MAX_CHECKS)
    action: NextStep | None = None
    on_failure_thread: list[str] = Field(default_factory=list, max_length=5)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("a report name is a lowercase slug like morning-check")
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        value = value.strip()
        if value in ("alerts", "incidents") or _ENV_REF.fullmatch(value):
            return value
        if re.fullmatch(r"#[a-z0-9][a-z0-9._-]{0,79}", value) or re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
            return value
        raise ValueError(f"channel is alerts, incidents, #name, a channel ID or ${{VAR}}, got {value!r}")

    @model_validator(mode="after")
    def _schedule(self) -> Report:
        CronSchedule(self.cron, self.timezone)
        return self

    @property
    def schedule(self) -> CronSchedule:
        return CronSchedule(self.cron, self.timezone)

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self.grace_minutes)


def check_reports(
    reports: list[Report],
    *,
    probes: list[Probe],
    latency: LatencySource | None,
    objectives: list[Objective],
    diagnostics: Diagnostics | None,
    runbooks: list[RunbookRef],
) -> str | None:
    """What a service's reports name that the service (its parts given) lacks: a probe, a latency source or
    objective, a `/diag` query, a column or parameter of it, a runbook; None when everything exists."""
    names = [report.name for report in reports]
    if len(set(names)) != len(names):
        return "report names must be unique within a service"
    probe_names = {probe.name for probe in probes}
    for report in reports:
        where = f"report {report.name}"
        for check in report.checks:
            if isinstance(check, HealthCheck):
                if not probes:
                    return f"{where}: a health check needs the service's probes, and it has none"
                unknown = [name for name in check.probes if name not in probe_names]
                if unknown:
                    return f"{where}: health check names unknown probe {unknown[0]}"
            elif isinstance(check, SloCheck):
                if problem := _slo_problem(check, latency, objectives):
                    return f"{where}: {problem}"
            elif problem := _missing_query(diagnostics, check.query) or _unknown_columns(diagnostics, check):
                return f"{where}: {problem}"
        for name in report.on_failure_thread:
            if problem := _missing_query(diagnostics, name):
                return f"{where}: on_failure_thread: {problem}"
        if report.runbook.file and report.runbook.file not in {ref.file for ref in runbooks}:
            return f"{where} names runbook {report.runbook.file}, which the service lacks"
    return None


def _slo_problem(check: SloCheck, latency: LatencySource | None, objectives: list[Objective]) -> str | None:
    if latency is None:
        return "an slo check needs the service's `latency` source"
    if check.metric == "error_rate" and not latency.success_column:
        return "error_rate needs `latency.success_column`"
    if check.below is None and not [
        o for o in objectives if o.metric == check.metric and (o.kind is None or o.kind == check.query_kind)
    ]:
        return f"no objective for {check.metric} to judge against; give `below`"
    return None


def _missing_query(diagnostics: Diagnostics | None, name: str) -> str | None:
    if diagnostics is None:
        return f"names diagnostic query {name}, but the service has no `diagnostics`"
    if diagnostics.query(name) is None:
        known = ", ".join(query.name for query in diagnostics.queries) or "none"
        return f"names unknown diagnostic query {name} (the service has: {known})"
    return None


def _unknown_columns(diagnostics: Diagnostics | None, check: DiagnosticCheck) -> str | None:
    query = diagnostics.query(check.query) if diagnostics else None
    assert query is not None
    known = [column.name for column in query.columns]
    named = [*check.show, *(t.column for t in check.thresholds or [])]
    unknown = [name for name in named if known and name not in known]
    if unknown:
        return f"{check.query} has no column {unknown[0]} (its columns: {', '.join(known)})"
    params = set(query.params)
    if extra := [name for name in check.args if name not in params]:
        return (
            f"{check.query} takes no parameter {extra[0]} (it takes: {', '.join(sorted(params)) or 'none'})"
        )
    return None
