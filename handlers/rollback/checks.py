"""The steps that look instead of change: `verify` (health polled until ok or its time is up), `wait` (time only)
and `watch` (health every minute, the SLOs over the window).

Each is called again at every runner pass while it returns "waiting" (the runner holds no lock in between), so
a 30-minute watch or a 5-minute verify costs nothing while it waits, survives a restart, and — with the
runner's injected clock — takes no time in tests. A watch that cannot read its metrics says so and stops for a
person (Retry / Skip / Abort) instead of calling the rollback failed on a missing table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.catalog import missing_env
from bot.context import BotContext
from handlers import health
from handlers import latency as slo
from handlers.rollback import runner_store
from handlers.rollback.blocks import duration
from handlers.rollback.store import Run, Step
from integrations import metrics_db

HEALTH_EVERY = timedelta(minutes=1)
METRICS_UNREADABLE = "metrics_unreadable"


@dataclass(frozen=True)
class Outcome:
    status: str  # done | failed | waiting
    result: str = ""
    detail: dict[str, Any] | None = field(default=None)


async def service_health(bot: BotContext, run: Run) -> tuple[health.Status, str]:
    checked = await health.check_service(run.service, bot)
    words = ", ".join(
        f"`{p.name}` {p.status.value}" + ("" if p.status is health.Status.OK else f" ({p.detail})")
        for p in checked.probes
    )
    return checked.status, words or "no probes configured"


async def verify(bot: BotContext, run: Run, step: Step, now: datetime) -> Outcome:
    """Healthy → done. Not yet healthy → checked again every `every_s` until `within_s` after the step started
    (a service a hook just restarted needs its seconds), then failed with what the probes said."""
    spec = step.spec
    started = step.started_at or now
    deadline = started + timedelta(seconds=spec.within_s)
    if (
        step.checked_at is not None
        and now < deadline
        and now - step.checked_at < timedelta(seconds=spec.every_s)
    ):
        return Outcome("waiting")
    status, words = await service_health(bot, run)
    await runner_store.mark_checked(bot, run, step, now)
    if status is health.Status.OK:
        after = f" after {duration(now - started)}" if now - started >= timedelta(seconds=1) else ""
        return Outcome("done", f"healthy{after}: {words}")
    if now < deadline:
        return Outcome("waiting")
    within = f" within {duration(timedelta(seconds=spec.within_s))}" if spec.within_s else ""
    return Outcome("failed", f"health is {status.value}{within}: {words}")


def wait(step: Step, now: datetime) -> Outcome:
    """Only time: the runbooks' "wait 30 seconds for the service to start" reads nothing."""
    assert step.started_at is not None and step.spec.minutes is not None
    if now < step.started_at + timedelta(minutes=step.spec.minutes):
        return Outcome("waiting")
    return Outcome("done", f"waited {duration(timedelta(minutes=step.spec.minutes))}")


async def slo_check(run: Run, minutes: float) -> tuple[str | None, bool]:
    """(what breached or could not be read, whether the metrics were unreadable); (None, False) when the SLOs
    held. Without a latency source or objectives: health only."""
    source = run.service.latency
    if source is None or not run.service.objectives:
        return None, False
    missing = missing_env(source)
    if missing:
        return f"cannot read its metrics: set {', '.join(missing)}", True
    try:
        stats = await slo.source_stats(source, window=timedelta(minutes=minutes))
    except metrics_db.MetricsQueryError as exc:
        return f"cannot read its metrics: {exc}", True
    breaches = [
        f"{v.metric} {v.value:g} > {v.objective.limit:g} ({v.objective.source})"
        for v in slo.verdicts(stats, run.service.objectives, None)
        if v.level is slo.Level.BREACH and v.value is not None
    ]
    return ("SLO breached: " + "; ".join(breaches) if breaches else None), False


async def watch(bot: BotContext, run: Run, step: Step, now: datetime) -> Outcome:
    assert step.started_at is not None and step.spec.minutes is not None
    ends = step.started_at + timedelta(minutes=step.spec.minutes)
    if now < ends and step.checked_at is not None and now - step.checked_at < HEALTH_EVERY:
        return Outcome("waiting")
    status, words = await service_health(bot, run)
    await runner_store.mark_checked(bot, run, step, now)
    if status is health.Status.DOWN:
        return Outcome("failed", f"health went down during the watch: {words}")
    if now < ends:
        return Outcome("waiting")
    if status is not health.Status.OK:
        return Outcome("failed", f"health is {status.value} at the end of the watch: {words}")
    problem, unreadable = await slo_check(run, step.spec.minutes)
    if unreadable:
        return Outcome(
            "failed", f"health stayed ok ({words}) but the watch {problem}", {METRICS_UNREADABLE: True}
        )
    if problem:
        return Outcome("failed", problem)
    return Outcome("done", f"watched {step.spec.minutes:g} min: healthy ({words}), SLOs held")
