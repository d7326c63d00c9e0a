"""Delivery passes side by side: a pass that waits on Slack does not hold back the rest of the outbox.

A pass ends with its slowest incident, and in a storm that is an incident whose posts wait on its channel's pace
(a resolve, its post-mortem draft and link, at about one post a second per channel: half a minute for a batch of
them). Every incident not in that pass waited for it, a storm digest's incidents among them, whose delivery posts
nothing of its own (their lines are edited): in the 2,000-event storm benchmark the digests went unedited for
25–40 s at a time. So once a pass has run OVERLAP_AFTER, the worker's loop claims the next batch beside it, up to
PASSES_AT_ONCE delivering at once, as a second replica would claim it, and kept apart from it the same way (an
incident whose earlier events another pass holds is given back, the incident locks, the leases). A pass that
ends within OVERLAP_AFTER, every pass outside a storm, runs alone as before.

The edits alongside (`EventDelivery.alongside`) run once per worker while any pass delivers, not once per pass,
given every incident any pass is still delivering (`Deliveries.busy`), as the periodic steps after each pass are:
a root is never edited between its own posts, whichever pass holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

#: Passes delivering at once, and passes under way at all: a pass's periodic steps after its deliveries wait on
#: Slack's pace too (a storm digest's thread reply takes its channel's next post slot, behind the long pass's
#: posts), and a pass waiting there must not keep the next batch from being claimed.
PASSES_AT_ONCE = 6
PASSES_AT_MOST = 12
OVERLAP_AFTER = timedelta(seconds=2)


async def overlapping(
    one_pass: Callable[[], Coroutine[Any, Any, int]],
    stopping: asyncio.Event,
    delivering: Callable[[], int],
    *,
    at_once: int = PASSES_AT_ONCE,
    at_most: int = PASSES_AT_MOST,
) -> bool:
    """Run passes until one finds nothing to do: a new one once the last has ended having handled events, or
    beside those under way every OVERLAP_AFTER while fewer than `at_once` are `delivering()` (and fewer than
    `at_most` under way); no new one once `stopping` is set. Returns when every pass it started has ended: True
    when the last to end handled events (more may be waiting). A pass that raises does not stop the others: the
    first error is raised once they have ended. Cancelled, it cancels the passes it started (their events are
    taken over when their lease ends, as after a crash)."""
    running: set[asyncio.Task[int]] = set()
    more = True
    errors: list[BaseException] = []
    try:
        while running or (more and not stopping.is_set()):
            if more and not stopping.is_set() and len(running) < at_most and delivering() < at_once:
                running.add(asyncio.create_task(one_pass()))
            done, running = await asyncio.wait(
                running, timeout=OVERLAP_AFTER.total_seconds(), return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                error = task.exception()
                if error is not None:
                    errors.append(error)
                    more = False
                else:
                    more = task.result() > 0
    finally:
        for task in running:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*running, return_exceptions=True)
    if errors:
        raise errors[0]
    return more


class Deliveries:
    """The incidents this worker's passes are delivering, and the one runner of the steps alongside them."""

    def __init__(
        self,
        steps: tuple[Callable[[datetime, frozenset[str]], Awaitable[object]], ...],
        every: timedelta,
    ) -> None:
        self.steps, self.every = steps, every
        self.busy: set[str] = set()
        self.passes = 0  # passes delivering now
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def delivering(self, now: datetime, incidents: set[str]) -> AsyncIterator[set[str]]:
        """While a pass delivers `incidents` (the caller discards each from `busy` as its deliveries end)."""
        self.busy.update(incidents)
        self.passes += 1
        if self._runner is None and self.steps:
            self._stop = asyncio.Event()
            self._runner = asyncio.create_task(self._alongside(now, self._stop))
        try:
            yield self.busy
        finally:
            self.busy.difference_update(incidents)
            self.passes -= 1
            if self.passes == 0 and self._runner is not None:
                runner, self._runner = self._runner, None
                self._stop.set()
                await runner  # never cancelled mid-step: a step ends what it began (an edit, a post)

    async def _alongside(self, now: datetime, stop: asyncio.Event) -> None:
        """Every `every` while a pass delivers, the steps, on the first pass's clock moved on by the time elapsed
        (as slack_once does)."""
        started = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every.total_seconds())
            if stop.is_set():
                return
            at = now + timedelta(seconds=time.monotonic() - started)
            for step in self.steps:
                try:
                    await step(at, frozenset(self.busy))
                except Exception:
                    log.warning("a step alongside the delivery failed; retrying", exc_info=True)
