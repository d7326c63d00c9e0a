"""Commands that are registered but not built yet: they answer "not available yet" through the same registry,
usage and error path as /health, and the manifest already lists them so the Slack app need not change later."""

from __future__ import annotations

from bot.commands import Command, Subcommand

ROLLBACK = Command(
    name="/rollback",
    description="Show a service's rollback plan and run it after a second person confirms",
    usage_hint="SERVICE [reason] | status [SERVICE] | plans SERVICE",
    subcommands=(
        Subcommand("status", "status [SERVICE]", "the running or last rollback"),
        Subcommand("plans", "plans SERVICE", "the service's rollback plans"),
    ),
    dangerous=True,
)
COMMANDS = (ROLLBACK,)
