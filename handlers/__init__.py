"""One module per capability. `build_registry` is the single list of what the bot can do."""

from __future__ import annotations

from bot.commands import CommandRegistry
from bot.context import BotContext
from bot.scheduler import Job
from handlers import coming_soon, flags, health, incident_buttons, latency, rollback


def build_registry() -> CommandRegistry:
    registry = CommandRegistry()
    registry.add(health.COMMAND)
    registry.add(flags.COMMAND)
    registry.add(latency.COMMAND)
    registry.add(rollback.COMMAND)
    for command in coming_soon.COMMANDS:
        registry.add(command)
    for action in (health.RERUN, flags.CONFIRM, flags.CANCEL, *incident_buttons.ACTIONS, *rollback.ACTIONS):
        registry.add_action(action)
    for modal in incident_buttons.MODALS:
        registry.add_modal(modal)
    return registry


def scheduled_jobs(bot: BotContext) -> list[Job]:
    """Every timed job of every capability; the scheduler runs each slot once across replicas."""
    return [health.retention_job(bot)]
