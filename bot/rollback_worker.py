"""The rollback worker: drives confirmed rollbacks, one runner per run across replicas, surviving restarts.

Every pass expires unconfirmed requests whose time is up, then takes the lease of each running rollback that is
its own or whose lease lapsed, and advances it (handlers/rollback_run.py). A long step (a deploy hook's status
polling) keeps its lease alive with a heartbeat; a replica that dies stops renewing, and another takes the run over
after ROLLBACK_LEASE_SECONDS (60 s) and says so in the thread. The clock is injected so tests move time instead of
sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.context import BotContext
from handlers.rollback import run as rollback_run
from handlers.rollback import runner_store
from handlers.rollback import store as rollbacks

log = logging.getLogger(__name__)


class RollbackWorker:
    def __init__(
        self,
        bot: BotContext,
        *,
        clock: Callable[[], datetime] | None = None,
        poll: float = 1.0,
        lease: timedelta | None = None,
    ) -> None:
        self.bot = bot
        self.clock = clock or (lambda: bot.clock())
        self.poll = poll
        self.lease = lease or timedelta(seconds=bot.settings.rollback_lease_seconds)
        # One name per worker, not per process, so two runtimes in one test process are two replicas.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Serialises this worker's own passes (the loop and the console's "run now"); replicas are kept apart
        # by the Postgres lease, not by this.
        self._pass = asyncio.Lock()

    async def _heartbeat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            await runner_store.renew_lease(self.bot, run_id, self.owner, self.clock() + self.lease)

    async def _drive(self, run_id: int, now: datetime) -> bool:
        previous = await runner_store.take_lease(self.bot, run_id, self.owner, now, self.lease)
        started = time.monotonic()

        def clock() -> datetime:
            """The pass's time, moving on with the real clock, so a step's elapsed time is real even when
            a test started the pass at an injected moment."""
            return now + timedelta(seconds=time.monotonic() - started)

        if previous is None:
            return False  # another replica holds it
        heartbeat = asyncio.create_task(self._heartbeat(run_id), name=f"rollback-{run_id}-lease")
        try:
            await rollback_run.advance(self.bot, run_id, clock, previous)
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
        for run_id in await rollbacks.due_expiries(self.bot, now):
            await rollback_run.expire(self.bot, run_id, now)
        driven = 0
        for run_id in await runner_store.runnable(self.bot, now, self.owner):
            try:
                driven += await self._drive(run_id, now)
            except Exception:
                log.exception("rollback pass failed; the next pass retries", extra={"run": run_id})
        return driven

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("rollback worker pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.poll)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="rollback-worker")

    async def stop(self, grace: float = 30.0) -> None:
        """Stop between passes — a step mid-call is given `grace` seconds to finish, so a deploy is not cut in
        half by a routine restart — and hand this worker's runs to the next replica at once."""
        if self._task is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await runner_store.release_leases(self.bot, self.owner)
