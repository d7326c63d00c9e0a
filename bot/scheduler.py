"""Timed work that runs once per slot across replicas and restarts.

A job is due at fixed slots: every `interval` aligned to the epoch, or the slots of a `schedule` (a cron expression
in a time zone, `CronSchedule`, so "Monday 09:00 Europe/Berlin" stays 09:00 local across daylight-saving changes).
For each due slot the scheduler inserts `(job, slot)` into `job_runs`; only the replica whose insert succeeded runs
the job (the same atomic-claim idea as Grafana OnCall's `UPDATE … WHERE sent = false`), so two replicas, or a bot
restarted mid-slot, never run a slot twice. A slot missed while the bot was down is run on start when it is within
the job's `catch_up` window. A replica that died while running a slot leaves a claim that never finishes: once the
job's `lease` has passed, another replica takes the slot over, so the run is late rather than lost (jobs are
written to be safe to run again; the weekly handoff claims its own post, for instance).
The clock is injected so tests move time instead of sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from bot.cron import CronSchedule
from bot.worker import Worker, new_replica_id

__all__ = ["EPOCH", "Clock", "CronSchedule", "Job", "Scheduler", "Sweep", "utc_now"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: A sweep: its name and what it runs on every tick (`now` in, anything out).
Sweep = tuple[str, Callable[[datetime], Awaitable[object]]]
EPOCH = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday, so weekly slots fall on Mondays 00:00 UTC plus `offset`


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Job:
    """`interval` (aligned to the epoch, plus `offset`) or `schedule` (a function giving the latest slot at or
    before a time, e.g. `CronSchedule.latest`) says when the job is due."""

    name: str
    interval: timedelta | None
    run: Callable[[datetime], Awaitable[None]]
    offset: timedelta = timedelta(0)
    catch_up: timedelta = timedelta(hours=1)
    schedule: Callable[[datetime], datetime] | None = None
    lease: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.schedule is None):
            raise ValueError(f"job {self.name}: give exactly one of interval and schedule")

    def latest_slot(self, now: datetime) -> datetime:
        """The most recent due time at or before `now`."""
        if self.schedule is not None:
            return self.schedule(now)
        assert self.interval is not None
        periods = (now - EPOCH - self.offset) // self.interval
        return EPOCH + self.offset + periods * self.interval


class Scheduler(Worker):
    """Runs `run_due` every `tick` seconds on the worker loop (bot/worker.py). `owner` is the replica's id
    (BotContext.replica); a scheduler built on its own is a replica of its own."""

    name = "scheduler"
    failure = "scheduler tick failed; retrying next tick"

    def __init__(
        self, pool: AsyncConnectionPool, clock: Clock = utc_now, tick: float = 30.0, owner: str | None = None
    ) -> None:
        super().__init__(poll=tick)
        self.pool = pool
        self.clock = clock
        self.tick = tick
        self.jobs: list[Job] = []
        self.sweeps: list[Sweep] = []
        self.owner = owner or new_replica_id()
        # Slots before this are never run (None: no bound). The console sets it to the session's start so that
        # its throwaway world does not catch up on a rotation that happened before it began.
        self.not_before: datetime | None = None

    def add(self, job: Job) -> None:
        self.jobs.append(job)

    def add_sweep(self, name: str, sweep: Callable[[datetime], Awaitable[object]]) -> None:
        """Work that runs on every tick of every replica, unclaimed: it claims its own rows (e.g. finishing a
        PagerDuty test whose waiter died), so running it everywhere is safe and nothing waits for one replica."""
        self.sweeps.append((name, sweep))

    async def _claim(self, job: Job, slot: datetime, now: datetime) -> bool:
        """Insert the slot's claim, or take over a claim whose runner has held it past the job's lease without
        finishing (it died); True when this replica now holds it."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                """INSERT INTO job_runs (job, slot, claimed_by, claimed_at) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (job, slot) DO UPDATE
                       SET claimed_by = EXCLUDED.claimed_by, claimed_at = EXCLUDED.claimed_at
                       WHERE job_runs.finished_at IS NULL AND job_runs.claimed_at < %s""",
                (job.name, slot, self.owner, now, now - job.lease),
            )
            return cursor.rowcount == 1

    async def _finish(self, job: Job, slot: datetime, error: str | None) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE job_runs SET finished_at = %s, error = %s WHERE job = %s AND slot = %s",
                (self.clock(), error, job.name, slot),
            )

    async def run_due(self) -> list[str]:
        """Run every job whose latest slot is due, within its catch-up window, and not yet claimed, then the
        sweeps; return the names of the jobs this replica ran."""
        ran: list[str] = []
        now = self.clock()
        for job in self.jobs:
            slot = job.latest_slot(now)
            if now - slot > job.catch_up or (self.not_before is not None and slot < self.not_before):
                continue
            if not await self._claim(job, slot, now):
                continue
            error = None
            try:
                await job.run(slot)
            except Exception as exc:
                error = type(exc).__name__
                log.exception("scheduled job failed", extra={"job": job.name, "slot": slot.isoformat()})
            await self._finish(job, slot, error)
            ran.append(job.name)
        for name, sweep in self.sweeps:
            try:
                await sweep(now)
            except Exception:
                log.exception("scheduled sweep failed", extra={"sweep": name})
        return ran

    async def run_pass(self) -> bool:
        await self.run_due()
        return False
