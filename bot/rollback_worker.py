"""The rollback worker: drives confirmed rollbacks, one runner per run across replicas, surviving restarts.

Every pass expires unconfirmed requests whose time is up, then takes the lease of each running rollback that is
its own or whose lease lapsed, and advances it through the hooks the rollback capability registered
(bot/capabilities.py, RollbackRuns). A long step (a deploy hook's status
polling) keeps its lease alive with a heartbeat; a replica that dies stops renewing, and another takes the run over
after ROLLBACK_LEASE_SECONDS (60 s) and says so in the thread. Leases are held under the replica's id
(BotContext.replica). The loop is the shared worker loop (bot/worker.py). The clock is injected so tests move time
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.capabilities import RollbackRuns
from bot.context import BotContext
from bot.worker import Worker

log = logging.getLogger(__name__)


class RollbackWorker(Worker):
    """`owner` defaults to the replica's id; a test playing a second replica on the same BotContext names one."""

    name = "rollback-worker"
    failure = "rollback worker pass failed; retrying"

    def __init__(
        self,
        bot: BotContext,
        runs: RollbackRuns,
        *,
        clock: Callable[[], datetime] | None = None,
        poll: float = 1.0,
        lease: timedelta | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(poll=poll)
        self.bot = bot
        self.runs = runs
        self.clock = clock or (lambda: bot.clock())
        self.lease = lease or timedelta(seconds=bot.settings.rollback_lease_seconds)
        self.owner = owner or bot.replica
        # Serialises this worker's own passes (the loop and the console's "run now"); replicas are kept apart
        # by the Postgres lease, not by this.
        self._pass = asyncio.Lock()

    async def _heartbeat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            await self.runs.renew_lease(self.bot, run_id, self.owner, self.clock() + self.lease)

    async def _drive(self, run_id: int, now: datetime) -> bool:
        previous = await self.runs.take_lease(self.bot, run_id, self.owner, now, self.lease)
        started = time.monotonic()

        def clock() -> datetime:
            """The pass's time, moving on with the real clock, so a step's elapsed time is real even when
            a test started the pass at an injected moment."""
            return now + timedelta(seconds=time.monotonic() - started)

        if previous is None:
            return False  # another replica holds it
        heartbeat = asyncio.create_task(self._heartbeat(run_id), name=f"rollback-{run_id}-lease")
        try:
            await self.runs.advance(self.bot, run_id, clock, previous)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return True

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass; returns how many runs this worker advanced."""
        async with self._pass:
            return await self._pass_once(now or self.clock())

    async def _pass_once(self, now: datetime) -> int:
        for run_id in await self.runs.due_expiries(self.bot, now):
            await self.runs.expire(self.bot, run_id, now)
        driven = 0
        for run_id in await self.runs.runnable(self.bot, now, self.owner):
            try:
                driven += await self._drive(run_id, now)
            except Exception:
                log.exception("rollback pass failed; the next pass retries", extra={"run": run_id})
        return driven

    async def run_pass(self) -> bool:
        await self.run_once()
        return False  # a run waiting on a sign-off is driven again at the next poll, not at once

    async def stop(self, grace: float = 30.0) -> None:
        """Stop between passes — a step mid-call is given `grace` seconds to finish, so a deploy is not cut in
        half by a routine restart — and hand this worker's runs to the next replica at once."""
        await super().stop(grace)

    async def stopped(self) -> None:
        with contextlib.suppress(Exception):
            await self.runs.release_leases(self.bot, self.owner)
