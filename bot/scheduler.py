"""Timed work that runs once per slot across replicas and restarts.

A job is due at fixed slots (every `interval`, aligned to the epoch). For each due slot the scheduler inserts
`(job, slot)` into `job_runs`; only the replica whose insert succeeded runs the job (the same atomic-claim idea as
Grafana OnCall's `UPDATE … WHERE sent = false`), so two replicas, or a bot restarted mid-slot, never run a slot
twice. A slot missed while the bot was down is run on start when it is within the job's `catch_up` window.
The clock is injected so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
EPOCH = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday, so weekly slots fall on Mondays 00:00 UTC plus `offset`


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Job:
    name: str
    interval: timedelta
    run: Callable[[datetime], Awaitable[None]]
    offset: timedelta = timedelta(0)
    catch_up: timedelta = timedelta(hours=1)

    def latest_slot(self, now: datetime) -> datetime:
        """The most recent due time at or before `now`."""
        periods = (now - EPOCH - self.offset) // self.interval
        return EPOCH + self.offset + periods * self.interval


class Scheduler:
    def __init__(self, pool: AsyncConnectionPool, clock: Clock = utc_now, tick: float = 30.0) -> None:
        self.pool = pool
        self.clock = clock
        self.tick = tick
        self.jobs: list[Job] = []
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    def add(self, job: Job) -> None:
        self.jobs.append(job)

    async def _claim(self, job: Job, slot: datetime) -> bool:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO job_runs (job, slot, claimed_by) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (job.name, slot, self.owner),
            )
            return cursor.rowcount == 1

    async def _finish(self, job: Job, slot: datetime, error: str | None) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE job_runs SET finished_at = now(), error = %s WHERE job = %s AND slot = %s",
                (error, job.name, slot),
            )

    async def run_due(self) -> list[str]:
        """Run every job whose latest slot is due, within its catch-up window, and not yet claimed; return
        the names of the jobs this replica ran."""
        ran: list[str] = []
        now = self.clock()
        for job in self.jobs:
            slot = job.latest_slot(now)
            if now - slot > job.catch_up or not await self._claim(job, slot):
                continue
            error = None
            try:
                await job.run(slot)
            except Exception as exc:
                error = type(exc).__name__
                log.exception("scheduled job failed", extra={"job": job.name, "slot": slot.isoformat()})
            await self._finish(job, slot, error)
            ran.append(job.name)
        return ran

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("scheduler tick failed; retrying next tick")
            await asyncio.sleep(self.tick)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
