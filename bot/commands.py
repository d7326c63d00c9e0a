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
    """Bad command text: the message, an optional "did you mean", and the usage, shown ephemerally. `usage`
    is the one usage line that applies (e.g. "`/rollback plans SERVICE` — …"); without it the command's whole
    usage block is shown."""

    def __init__(self, message: str, *, suggestion: str | None = None, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion
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
    def usage(self) -> str:
        """The usage block shown on bad input and in help."""
        head = f"`{self.name} {self.usage_hint}`" if self.usage_hint else f"`{self.name}`"
        lines = [f"{head} — {self.description}"]
        lines += [f"    `{self.name} {sub.usage}` — {sub.summary}" for sub in self.subcommands]
        return "\n".join(lines)


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

    def suggest(self, name: str) -> str | None:
        match = difflib.get_close_matches(name.strip().lower(), self.commands, n=1, cutoff=0.5)
        return match[0] if match else None

    def help_text(self) -> str:
        """Every command with its usage; what `help` and an unknown command show."""
        lines = ["*Commands*"]
        for command in self.commands.values():
            if command.available:
                lines.append(command.usage)
            else:
                head = command.usage.splitlines()[0]
                lines.append(f"{head} _(not available yet)_")
        return "\n".join(lines)


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """The closest of `choices` to `word`, for a "did you mean" line; None when nothing is close."""
    match = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.5)
    if not match:
        return None
    return next(c for c in choices if c.lower() == match[0])
