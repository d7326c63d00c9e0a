"""Commands that are registered but not built yet: they answer "not available yet" through the same registry,
usage and error path as /health, and the manifest already lists them so the Slack app need not change later."""

from __future__ import annotations

from bot.commands import Command, Subcommand

ONCALL = Command(
    name="/oncall",
    description="Who is on call now, and the weekly handoff checklist",
    usage_hint="[handoff | checklist]",
    subcommands=(
        Subcommand("handoff", "handoff", "post this week's handoff checklist now"),
        Subcommand("checklist", "checklist", "the status of this week's checklist"),
    ),
)

COMMANDS = (ONCALL,)
