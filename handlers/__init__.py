"""One module per capability. `build_registry` is the single list of what the bot can do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.commands import CommandRegistry
from bot.context import BotContext
from bot.scheduler import Job
from handlers.flags import command as flags
from handlers.handoff import checklist as handoff
from handlers.handoff import pagerduty_test as handoff_pd_test
from handlers.health import command as health
from handlers.incidents import buttons as incident_buttons
from handlers.latency import command as latency
from handlers.oncall import command as oncall
from handlers.rollback import command as rollback


def build_registry() -> CommandRegistry:
    registry = CommandRegistry()
    registry.add(health.COMMAND)
    registry.add(flags.COMMAND)
    registry.add(latency.COMMAND)
    registry.add(rollback.COMMAND)
    registry.add(oncall.COMMAND)
    for action in (
        health.RERUN,
        flags.CONFIRM,
        flags.CANCEL,
        *incident_buttons.ACTIONS,
        handoff.TICK,
        handoff_pd_test.TEST,
        *rollback.ACTIONS,
    ):
        registry.add_action(action)
    for modal in incident_buttons.MODALS:
        registry.add_modal(modal)
    return registry


def scheduled_jobs(bot: BotContext) -> list[Job]:
    """Every timed job of every capability; the scheduler runs each slot once across replicas."""
    return [health.retention_job(bot), *handoff.jobs(bot)]


def scheduled_sweeps(bot: BotContext) -> list[tuple[str, Callable[[datetime], Awaitable[object]]]]:
    """Work every replica runs on every scheduler tick; each claims its own rows."""

    async def pagerduty_tests(now: datetime) -> int:
        return await handoff_pd_test.sweep(bot, now)

    return [("handoff.pagerduty_tests", pagerduty_tests)]
