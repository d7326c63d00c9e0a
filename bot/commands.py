"""The command registry: one place that knows every slash command, its usage, and whether it is dangerous.

`help`, "did you mean", the usage shown on bad input and the manifest's usage hints all come from here, so they
cannot drift apart (a test compares manifest.yml with this registry). A command that is not built yet is still
registered, without `run`, and answers "not available yet" through the same path as the real ones.
Dangerous commands (flag changes, rollback) are marked where they are registered, as Netflix Dispatch marks its
sensitive command group, so reading the registration tells you what can change production.

The mark is enforced, not only read: a dangerous command or button carries a `guard`, and the registry refuses one
without (ValueError at startup). The guard says what a request would change — a `Check`: the service and how a
refusal reads (`OwnersCheck`), or the named people who may (`AmongCheck`, a manual step's approvers) — and
bot/app.py runs that check (bot/permissions.py) before `run`, so a refused request never reaches its handler.
The guard returns None for a request that changes nothing (`/flag list`, a button naming a rollback that no
longer exists): the handler then answers as it always did. A guard returns the whole check, not only the
service, because the refusal's words, the audit row's action and target depend on the subcommand. Handlers keep
their service-specific checks (the two-person rule, the requester's own cancel), and their own owners check
where the guard's None depends on state that can change between the guard and the handler (`/flag revert` of a
change still pending).
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.catalog import Catalog, Service
    from bot.context import ActionContext, CommandContext, ViewContext


class UsageError(Exception):
    """Bad command text: the message, an optional "did you mean", and the usage, shown ephemerally.

    The usage shown is the ONE line that applies (`Command.usage_line`): the `subcommand` in question when the
    handler names it, else the subcommand the text starts with, else the command's own line. `usage` is that line
    written out, for a form that is not a subcommand (`/rollback SERVICE [plan] [reason]`)."""

    def __init__(
        self,
        message: str,
        *,
        suggestion: str | None = None,
        subcommand: str | None = None,
        usage: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion
        self.subcommand = subcommand
        self.usage = usage


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    summary: str


@dataclass(frozen=True)
class OwnersCheck:
    """The service's owners (and BOT_ADMINS; with `on_call_may`, its primary on-call too) may. `what` completes
    the refusal ("change the flags of Ivy v2"); a refusal is audited as `refused` (e.g. "flag.refused") on
    `target`."""

    service: Service
    what: str
    refused: str
    target: str
    on_call_may: bool = False


@dataclass(frozen=True)
class AmongCheck:
    """Only these users and members of these groups may (none: nobody). A refusal says `refusal` and is audited
    as `refused` on `target` with `detail`."""

    service: Service
    users: tuple[str, ...]
    groups: tuple[str, ...]
    refusal: str
    refused: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)


Check = OwnersCheck | AmongCheck


@dataclass(frozen=True)
class Command:
    """A slash command. `parse` and `acknowledge` run before the ack and must not do I/O; `run` runs after it."""

    name: str
    description: str
    usage_hint: str
    subcommands: tuple[Subcommand, ...] = ()
    examples: tuple[str, ...] = ()
    dangerous: bool = False
    parse: Callable[[str, Catalog], Any] | None = None
    acknowledge: Callable[[Any, Catalog], str] | None = None
    run: Callable[[Any, CommandContext], Awaitable[None]] | None = None
    #: What a parsed request would change, checked before `run`; required when `dangerous`.
    guard: Callable[[Any, CommandContext], Awaitable[Check | None]] | None = None

    @property
    def available(self) -> bool:
        return self.run is not None

    @property
    def head(self) -> str:
        """The command's own usage line: `/health [service]` — what it does."""
        head = f"`{self.name} {self.usage_hint}`" if self.usage_hint else f"`{self.name}`"
        return f"{head} — {self.description}"

    @property
    def usage(self) -> str:
        """The whole usage block, for `/COMMAND help`."""
        lines = [self.head]
        lines += [f"    `{self.name} {sub.usage}` — {sub.summary}" for sub in self.subcommands]
        return "\n".join(lines)

    def subcommand(self, word: str | None) -> Subcommand | None:
        wanted = (word or "").strip().lower()
        return next((sub for sub in self.subcommands if sub.name == wanted), None)

    def usage_line(self, subcommand: str | None = None, text: str = "") -> str:
        """The one usage line that applies to a bad `text`: the named subcommand's, else that of the subcommand the
        text starts with, else the command's own, with a pointer to the rest when there is more."""
        first = text.split()[0] if text.split() else None
        sub = self.subcommand(subcommand) or self.subcommand(first)
        if sub is not None:
            return f"`{self.name} {sub.usage}` — {sub.summary}"
        if self.subcommands:
            return f"{self.head} (`{self.name} help` for each form)"
        return self.head


@dataclass(frozen=True)
class Action:
    """A button or other interactive element, by `action_id`. `run` happens after the ack."""

    action_id: str
    run: Callable[[ActionContext], Awaitable[None]]
    dangerous: bool = False
    #: What the click would change, checked before `run`; required when `dangerous`.
    guard: Callable[[ActionContext], Awaitable[Check | None]] | None = None


@dataclass(frozen=True)
class Modal:
    """A modal's submission, by `callback_id`. `run` happens after the ack (which closes the modal)."""

    callback_id: str
    run: Callable[[ViewContext], Awaitable[None]]


@dataclass
class CommandRegistry:
    commands: dict[str, Command] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    modals: dict[str, Modal] = field(default_factory=dict)

    def add_modal(self, modal: Modal) -> Modal:
        if modal.callback_id in self.modals:
            raise ValueError(f"modal {modal.callback_id} is registered twice")
        self.modals[modal.callback_id] = modal
        return modal

    def add(self, command: Command) -> Command:
        if command.name in self.commands:
            raise ValueError(f"{command.name} is registered twice")
        if command.dangerous and command.available and command.guard is None:
            raise ValueError(
                f"{command.name} is dangerous but has no guard: nothing would check it before `run`"
            )
        self.commands[command.name] = command
        return command

    def add_action(self, action: Action) -> Action:
        if action.action_id in self.actions:
            raise ValueError(f"action {action.action_id} is registered twice")
        if action.dangerous and action.guard is None:
            raise ValueError(
                f"action {action.action_id} is dangerous but has no guard: nothing would check it before `run`"
            )
        self.actions[action.action_id] = action
        return action

    def get(self, name: str) -> Command | None:
        return self.commands.get(name.strip().lower())

    def action_for(self, action_id: str) -> Action | None:
        """The action for a clicked `action_id`: registered exactly, or as a dotted prefix (`next_step.run`
        answers `next_step.run.ivy-v2.1`), because Slack wants action_ids unique within a block and one message
        may carry several buttons of one action. The longest registered prefix wins."""
        exact = self.actions.get(action_id)
        if exact is not None:
            return exact
        parts = action_id.split(".")
        for end in range(len(parts) - 1, 0, -1):
            found = self.actions.get(".".join(parts[:end]))
            if found is not None:
                return found
        return None

    def suggest(self, name: str) -> str | None:
        match = difflib.get_close_matches(name.strip().lower(), self.commands, n=1, cutoff=0.5)
        return match[0] if match else None

    def help_text(self) -> str:
        """The bot's help: every command on one line, then where to read more; what `/help` answers."""
        lines = ["*Mira Bot commands*"]
        for command in self.commands.values():
            lines.append(command.head + ("" if command.available else " _(not available yet)_"))
        lines += [
            "",
            "`/COMMAND help` shows a command's forms and examples (`/flag help`).",
            "Buttons under a /latency breach, a down service in /health and an incident run the runbook's next "
            "steps: the same command, with the same permission checks, as if you typed it.",
            "Services, owners, channels and runbooks come from the service catalog (README → The service catalog).",
        ]
        return "\n".join(lines)

    def help_command(self) -> Command:
        """`/help [command]`: this registry's help, or one command's usage. Answered in the ack (pure: the
        registry is in memory), so there is nothing to do after it."""

        def parse(text: str, catalog: Catalog) -> Command | None:
            word = text.strip().split()[0] if text.strip() else ""
            if not word:
                return None
            command = self.get(word if word.startswith("/") else f"/{word}")
            if command is None:
                suggestion = self.suggest(word if word.startswith("/") else f"/{word}")
                raise UsageError(
                    f"I don't know the command `{word}`.",
                    suggestion=f"/help {suggestion}" if suggestion else None,
                )
            return command

        def acknowledge(command: Command | None, catalog: Catalog) -> str:
            return self.help_text() if command is None else command.usage

        async def nothing_after_the_ack(command: Command | None, ctx: CommandContext) -> None:
            """The help was the ack's answer."""

        return Command(
            name="/help",
            description="Every Mira Bot command on one line, and where to read more",
            usage_hint="[command]",
            examples=("/help", "/help flag"),
            parse=parse,
            acknowledge=acknowledge,
            run=nothing_after_the_ack,
        )


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """The closest of `choices` to `word`, for a "did you mean" line; None when nothing is close."""
    match = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.5)
    if not match:
        return None
    return next(c for c in choices if c.lower() == match[0])
