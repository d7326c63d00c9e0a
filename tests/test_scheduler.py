"""The scheduler runs each slot once across replicas and restarts; time is injected, never slept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from bot.scheduler import Job, Scheduler
from bot.storage import apply_migrations
from handlers.health import retention_job
from tests.harness import BotUnderTest


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _pool(database_url: str) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False)
    await pool.open()
    await apply_migrations(pool)
    return pool


async def test_two_replicas_run_each_slot_once_and_catch_up_after_downtime(database_url: str) -> None:
    pool = await _pool(database_url)
    runs: list[datetime] = []

    async def work(slot: datetime) -> None:
        runs.append(slot)

    clock = Clock(datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC))  # a Monday, just after 09:00
    replicas = [Scheduler(pool, clock=clock) for _ in range(2)]
    for scheduler in replicas:
        scheduler.add(
            Job("weekly", timedelta(weeks=1), work, offset=timedelta(hours=9), catch_up=timedelta(hours=2))
        )
    try:
        ran = await asyncio.gather(*(s.run_due() for s in replicas))
        assert sorted(map(len, ran)) == [0, 1]
        assert runs == [datetime(2026, 11, 23, 9, 0, tzinfo=UTC)]

        clock.now += timedelta(minutes=40)  # a restart 40 minutes later: already done, nothing runs
        assert await Scheduler(pool, clock=clock).run_due() == []

        clock.now = datetime(
            2026, 11, 30, 9, 40, tzinfo=UTC
        )  # down at 09:00 next week, up at 09:40: catch up
        assert [await s.run_due() for s in replicas] == [["weekly"], []]
        clock.now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # beyond the 2-hour grace: skipped
        assert await replicas[0].run_due() == []
        assert len(runs) == 2
    finally:
        await pool.close()


async def test_a_failing_job_is_recorded_and_not_retried_in_the_same_slot(database_url: str) -> None:
    pool = await _pool(database_url)

    async def broken(slot: datetime) -> None:
        raise RuntimeError("boom")

    clock = Clock(datetime(2026, 11, 21, 3, 0, 1, tzinfo=UTC))
    scheduler = Scheduler(pool, clock=clock)
    scheduler.add(Job("daily", timedelta(days=1), broken, offset=timedelta(hours=3)))
    try:
        assert await scheduler.run_due() == ["daily"]
        assert await scheduler.run_due() == []
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT error, finished_at IS NOT NULL FROM job_runs")).fetchone()
        assert row == ("RuntimeError", True)
    finally:
        await pool.close()


async def test_health_run_retention_keeps_thirty_days(bot: BotUnderTest, database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for days in (40, 31, 29, 1):
            await conn.execute(
                "INSERT INTO health_runs (requested_by, channel, started_at) "
                "VALUES ('U1', 'C1', now() - %s * interval '1 day')",
                (days,),
            )
    clock = Clock(datetime.now(UTC))
    scheduler = Scheduler(bot.runtime.bot.storage.pool, clock=clock)
    scheduler.add(retention_job(bot.runtime.bot))
    clock.now = retention_job(bot.runtime.bot).latest_slot(clock.now) + timedelta(minutes=1)
    assert await scheduler.run_due() == ["health_runs.retention"]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT count(*) FROM health_runs")
        assert await cursor.fetchone() == (2,)
