"""What the bot can do, handed to the platform: the single list of commands, buttons, modals, timed jobs and the
hooks the workers call (bot/capabilities.py).

This is the composition root of handlers/: the one module that imports every capability's modules (the packages'
`__init__`s stay small interfaces), and the one the `mira_bot.capabilities` entry point in pyproject.toml names,
so `bot/` finds it without importing it.
"""

from __future__ import annotations

from datetime import datetime

from bot.capabilities import Capabilities, EventDelivery, RollbackRuns
from bot.commands import CommandRegistry
from bot.context import BotContext
from bot.scheduler import Job, Sweep
from handlers.diagnostics import command as diagnostics
from handlers.flags import command as flags
from handlers.handoff import checklist as handoff
from handlers.handoff import pagerduty_test as handoff_pd_test
from handlers.health import command as health
from handlers.incidents import buttons as incident_buttons
from handlers.incidents import escalate as incident_escalate
from handlers.incidents import pipeline, root_edits, storm, timers
from handlers.incidents.model import RetryLater
from handlers.latency import command as latency
from handlers.next_steps import action as next_steps
from handlers.oncall import command as oncall
from handlers.reports import schedule as reports
from handlers.rollback import command as rollback
from handlers.rollback import restart, runner_store
from handlers.rollback import run as rollback_run
from handlers.rollback import store as rollback_store


def build_registry() -> CommandRegistry:
    registry = CommandRegistry()
    registry.add(health.COMMAND)
    registry.add(flags.COMMAND)
    registry.add(latency.COMMAND)
    registry.add(rollback.COMMAND)
    registry.add(restart.COMMAND)
    registry.add(oncall.COMMAND)
    registry.add(diagnostics.COMMAND)
    registry.add(registry.help_command())
    for action in (
        health.RERUN,
        *flags.ACTIONS,
        *incident_buttons.ACTIONS,
        incident_escalate.ESCALATE,
        handoff.TICK,
        handoff_pd_test.TEST,
        *rollback.ACTIONS,
        *next_steps.ACTIONS,
    ):
        registry.add_action(action)
    for modal in (*incident_buttons.MODALS, *rollback.MODALS):
        registry.add_modal(modal)
    return registry


def scheduled_jobs(bot: BotContext) -> list[Job]:
    """Every timed job of every capability; the scheduler runs each slot once across replicas."""
    return [health.retention_job(bot), *handoff.jobs(bot), *reports.jobs(bot)]


def scheduled_sweeps(bot: BotContext) -> list[Sweep]:
    """Work every replica runs on every scheduler tick; each claims its own rows."""

    async def pagerduty_tests(now: datetime) -> int:
        return await handoff_pd_test.sweep(bot, now)

    async def unfinished_reports(now: datetime) -> int:
        return await reports.finish_unfinished(bot, now)

    return [("handoff.pagerduty_tests", pagerduty_tests), ("reports.unfinished", unfinished_reports)]


async def _fold(bot: BotContext, bodies: list[bytes], now: datetime) -> pipeline.Batch:
    return await pipeline.fold(bot, bodies, now)


async def _deliver(bot: BotContext, body: bytes, now: datetime, batch: pipeline.Batch | None) -> None:
    await pipeline.deliver(bot, bot.budget, body, now, batch)


async def _finish(bot: BotContext, batch: pipeline.Batch, now: datetime) -> None:
    await pipeline.finish(bot, batch)


async def _flush_roots(bot: BotContext, now: datetime) -> int:
    return await root_edits.flush_roots(bot, bot.budget, now)


async def _flush_digests(bot: BotContext, now: datetime) -> None:
    await storm.flush_digests(bot, bot.budget, now)


async def _edit_digests(bot: BotContext, now: datetime) -> None:
    await storm.flush_digests(bot, bot.budget, now, edits_only=True)


async def _edit_digests_alongside(bot: BotContext, now: datetime, busy: frozenset[str]) -> None:
    await _edit_digests(bot, now)  # a digest line shows its incident's state as folded at the batch's start


async def _flush_roots_alongside(bot: BotContext, now: datetime, busy: frozenset[str]) -> int:
    return await root_edits.flush_roots(bot, bot.budget, now, skip=busy)


async def _fire_timers(bot: BotContext, now: datetime) -> list[tuple[str, str]]:
    return await timers.fire_timers(bot, bot.budget, now)


#: Stored PagerDuty events become incident threads: each claimed batch folded at once, then its events delivered,
#: a new incident and a change of state first; after each batch, storm digest edits, debounced root edits, the
#: digests' threads and storms' ends, SLA timers, in that order; while a long batch lasts, the digest and root
#: edits every few seconds.
INCIDENT_DELIVERY = EventDelivery(
    deliver=_deliver,
    fold=_fold,
    finish=_finish,
    # A digest's edit shows the state of hundreds of incidents, a root's of one: the digests take the edit
    # allowance (and each channel's edit pace) first.
    periodic=(_edit_digests, _flush_roots, _flush_digests, _fire_timers),
    # A long pass (many posts at Slack's pace) still shows state; an incident still being delivered is edited
    # after the pass, so its edit never lands between its own posts.
    alongside=(_edit_digests_alongside, _flush_roots_alongside),
    retry_quietly=(RetryLater,),
    urgent_event_types=pipeline.URGENT_EVENT_TYPES,
)

ROLLBACK_RUNS = RollbackRuns(
    due_expiries=rollback_store.due_expiries,
    expire=rollback_run.expire,
    runnable=runner_store.runnable,
    take_lease=runner_store.take_lease,
    renew_lease=runner_store.renew_lease,
    release_leases=runner_store.release_leases,
    advance=rollback_run.advance,
)


def capabilities() -> Capabilities:
    """The `mira_bot.capabilities` entry point: everything in handlers/."""
    return Capabilities(
        registry=build_registry(),
        delivery=INCIDENT_DELIVERY,
        rollbacks=ROLLBACK_RUNS,
        jobs=scheduled_jobs,
        sweeps=scheduled_sweeps,
    )
