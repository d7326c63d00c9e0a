"""One check in flight per key, its result given to every caller that asks within a short freshness window.

During an outage a crowd types `/health` at once, and without this every request probed every backend itself:
the probed services (already struggling) got one request per typist, and the bot spent a third of its CPU on
identical probes (docs/PERFORMANCE.md, "ack"). Here the first caller for a key starts the check; a caller that
asks while it runs, or shortly after it started, gets the same result instead of starting another.

Freshness is measured from when the check *started*, on the caller's monotonic clock: a result is shared only with
callers that ask less than `fresh_for` seconds after it started, so nobody gets a measurement that began longer
than that before they asked. A check that raised is not shared past its own waiters: the next caller tries again.
A result lives here for that window only, so this is a cache of measurements, never a record of what ran (what
must happen once is claimed in Postgres or Redis, not here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Flight:
    started: float
    task: asyncio.Task[Any]
    tag: object
    waiters: int = 0


class SingleFlight:
    """Checks by key: `run(key, check, fresh_for=…, now=…)`. The keys of several kinds of check may share one
    instance (make them tuples that start with the kind)."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}

    async def run(
        self,
        key: Hashable,
        check: Callable[[], Awaitable[T]],
        *,
        fresh_for: float,
        now: float,
        tag: object = None,
    ) -> T:
        """`check()`'s result, or that of the same key's check started less than `fresh_for` seconds before `now`
        (and still running, or finished). `tag` must equal the running check's for it to be shared: what the key
        names may have changed meanwhile (a reloaded catalog's probe of the same name)."""
        flight = self._flights.get(key)
        if flight is None or now - flight.started >= fresh_for or flight.tag != tag or _failed(flight):
            self._prune(now, fresh_for)
            flight = _Flight(now, asyncio.ensure_future(check()), tag)
            self._flights[key] = flight
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)  # one caller giving up does not cancel the others' check
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():  # every caller gave up (shutdown): stop it
                flight.task.cancel()
                if self._flights.get(key) is flight:
                    del self._flights[key]

    def _prune(self, now: float, fresh_for: float) -> None:
        """Forget finished checks too old to share, so the table holds only the last window's keys. By this
        caller's window: a key with a longer one forgotten early is only checked again, never shared too long."""
        stale = [k for k, f in self._flights.items() if f.task.done() and now - f.started >= fresh_for]
        for key in stale:
            del self._flights[key]

    def forget(self) -> None:
        """Share nothing started before now (checks in flight finish for their own callers). For a world that
        changes faster than the window and says so: the console's `break` / `mend` of a stand-in."""
        self._flights.clear()

    def __len__(self) -> int:
        return len(self._flights)


def _failed(flight: _Flight) -> bool:
    task = flight.task
    return task.done() and (task.cancelled() or task.exception() is not None)
