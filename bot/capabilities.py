"""What the capabilities give the platform: commands, timed jobs, and the hooks its workers call.

`bot/` never imports a capability (handlers/); it is handed a `Capabilities` and drives what is in it, the way the
scheduler has always taken its jobs: the registry routes commands, buttons and modals, the scheduler runs the jobs
and sweeps, the delivery worker hands each stored PagerDuty event to `delivery.deliver` and runs
`delivery.periodic` after each batch, and the rollback worker drives runs through `rollbacks`.

Who supplies it: whoever starts the runtime may pass one (`start_runtime(settings, capabilities=…)`: tests, the
bench); otherwise it is discovered through the `mira_bot.capabilities` entry point of the installed distribution
(pyproject.toml points it at `handlers.capabilities:capabilities`). An entry point, not an import, because the
`mira-bot` command itself lives in `bot/`: the package metadata is the one place that says which capabilities this
install ships, so the platform stays importable, and testable, without them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from bot.commands import CommandRegistry
from bot.scheduler import Job, Sweep

if TYPE_CHECKING:
    from bot.context import BotContext

ENTRY_POINT_GROUP = "mira_bot.capabilities"


class CapabilitiesMissing(Exception):
    """No (or more than one) capability set is installed under the entry point group."""


def _no_jobs(bot: BotContext) -> list[Job]:
    return []


def _no_sweeps(bot: BotContext) -> list[Sweep]:
    return []


@dataclass(frozen=True)
class EventDelivery:
    """What the delivery worker (bot/delivery.py) does with the outbox of stored PagerDuty events.

    `fold(bot, bodies, now)` takes in a whole claimed batch at once (the state changes of every event, in a few
    statements) and returns what the deliveries of the pass share; `deliver(bot, body, now, folded)` handles one
    event of it (raising makes it pending again, with a backoff; an exception in `retry_quietly` is an expected
    wait, not logged as a failure); `finish(bot, folded, now)` runs once the pass's deliveries have ended, however
    they ended, before the delivered events are marked (what the pass writes once for all of them: its replies'
    `ts`); `periodic` run after every batch (debounced edits, digests, timers);
    `alongside` run every ALONGSIDE_EVERY while a batch's deliveries last longer than that (a batch that posts
    many messages waits on Slack's per-channel pace for a minute: the edits that show the incidents' state, which
    Slack paces apart, need not wait behind it), given the incidents whose deliveries are still under way (their
    edits wait for the batch's end, so what an incident's posts and edits do in Slack keeps one order). `urgent_event_types` are delivered before the rest (a new
    incident, a change of its state), each incident's events still in order."""

    deliver: Callable[[BotContext, bytes, datetime, Any], Awaitable[None]]
    fold: Callable[[BotContext, list[bytes], datetime], Awaitable[Any]] | None = None
    finish: Callable[[BotContext, Any, datetime], Awaitable[None]] | None = None
    periodic: tuple[Callable[[BotContext, datetime], Awaitable[object]], ...] = ()
    alongside: tuple[Callable[[BotContext, datetime, frozenset[str]], Awaitable[object]], ...] = ()
    retry_quietly: tuple[type[Exception], ...] = ()
    urgent_event_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class RollbackRuns:
    """The rollback worker's (bot/rollback_worker.py) view of the runs: which are due, their leases, and one step
    forward. `owner` is the replica's id; `take_lease` returns the previous owner ("" when it was this replica or
    nobody), None when another replica holds the run."""

    due_expiries: Callable[[BotContext, datetime], Awaitable[list[int]]]
    expire: Callable[[BotContext, int, datetime], Awaitable[None]]
    runnable: Callable[[BotContext, datetime, str], Awaitable[list[int]]]
    take_lease: Callable[[BotContext, int, str, datetime, timedelta], Awaitable[str | None]]
    renew_lease: Callable[[BotContext, int, str, datetime], Awaitable[None]]
    release_leases: Callable[[BotContext, str], Awaitable[None]]
    advance: Callable[[BotContext, int, Callable[[], datetime], str], Awaitable[None]]


@dataclass(frozen=True)
class Capabilities:
    registry: CommandRegistry
    delivery: EventDelivery
    rollbacks: RollbackRuns
    jobs: Callable[[BotContext], list[Job]] = field(default=_no_jobs)
    sweeps: Callable[[BotContext], list[Sweep]] = field(default=_no_sweeps)


def discover() -> Capabilities:
    """The installed capability set: the one `mira_bot.capabilities` entry point, called."""
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if len(found) != 1:
        names = ", ".join(sorted(f"{ep.name} = {ep.value}" for ep in found)) or "none"
        raise CapabilitiesMissing(
            f"expected one `{ENTRY_POINT_GROUP}` entry point, found {names} (reinstall mira-chatops)"
        )
    factory = found[0].load()
    capabilities = factory()
    if not isinstance(capabilities, Capabilities):
        raise CapabilitiesMissing(
            f"{found[0].value} returned {type(capabilities).__name__}, not Capabilities"
        )
    return capabilities
