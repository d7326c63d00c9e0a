"""The scheduler runs each slot once across replicas and restarts; time is injected, never slept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from bot.cron import CronSchedule, FollowUp
from bot.scheduler import Job, Scheduler
from bot.storage import apply_migrations
from handlers.health.command import retention_job
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
    clock = Clock(datetime.now(UTC))  # the one clock: the runs' ages and the retention job's slot
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for days in (40, 31, 29, 1):
            await conn.execute(
                "INSERT INTO health_runs (requested_by, channel, started_at) VALUES ('U1', 'C1', %s)",
                (clock.now - timedelta(days=days),),
            )
    scheduler = Scheduler(bot.runtime.bot.storage.pool, clock=clock)
    scheduler.add(retention_job(bot.runtime.bot))
    clock.now = retention_job(bot.runtime.bot).latest_slot(clock.now) + timedelta(minutes=1)
    assert await scheduler.run_due() == ["health_runs.retention"]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT count(*) FROM health_runs")
        assert await cursor.fetchone() == (2,)


def test_a_cron_schedule_keeps_local_time_across_daylight_saving() -> None:
    berlin = CronSchedule("0 9 * * 1", "Europe/Berlin")
    winter = berlin.latest(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))  # Friday before the change
    summer = berlin.latest(datetime(2026, 4, 1, 12, 0, tzinfo=UTC))
    assert winter == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert summer == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST
    # At the slot itself, the slot is the latest; a second before, the previous week's.
    assert berlin.latest(summer) == summer
    assert berlin.latest(summer - timedelta(seconds=1)) == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("0 9 * *", "UTC", "not a cron expression"),
        ("0 25 * * 1", "UTC", "not a cron expression"),
        ("0 9 * * 1", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_a_bad_cron_schedule_says_what_is_wrong(expression: str, zone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CronSchedule(expression, zone)


def test_follow_ups_come_after_each_rotation() -> None:
    rotation = CronSchedule("0 9 * * 1", "Europe/Berlin")
    after = FollowUp(rotation, "after", 240)
    at_five = FollowUp(rotation, "at", 17 * 60)
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    assert after.latest(monday + timedelta(hours=4)) == monday + timedelta(hours=4)
    assert after.latest(monday + timedelta(hours=3)) == monday - timedelta(weeks=1) + timedelta(hours=4)
    assert at_five.latest(monday + timedelta(hours=8)) == monday + timedelta(hours=8)  # 17:00 Berlin
    assert at_five.rotation_of(monday + timedelta(hours=8)) == monday
    assert after.rotation_of(monday + timedelta(hours=4)) == monday
    late = FollowUp(CronSchedule("0 18 * * 1", "UTC"), "at", 17 * 60)  # 17:00 comes the next day
    assert late.for_rotation(datetime(2026, 11, 23, 18, 0, tzinfo=UTC)) == datetime(
        2026, 11, 24, 17, 0, tzinfo=UTC
    )


async def test_a_slot_whose_runner_died_is_run_by_another_replica_after_its_lease(database_url: str) -> None:
    pool = await _pool(database_url)
    runs: list[datetime] = []

    async def work(slot: datetime) -> None:
        runs.append(slot)

    slot = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    clock = Clock(slot + timedelta(minutes=5))
    scheduler = Scheduler(pool, clock=clock)
    scheduler.add(
        Job("weekly", timedelta(weeks=1), work, offset=timedelta(hours=9), catch_up=timedelta(hours=2))
    )
    try:
        async with pool.connection() as conn:  # a replica claimed the slot at 09:00 and never finished
            await conn.execute(
                "INSERT INTO job_runs (job, slot, claimed_by, claimed_at) VALUES ('weekly', %s, 'dead:1', %s)",
                (slot, slot),
            )
        assert await scheduler.run_due() == []  # within the 10-minute lease: it may still be running
        clock.now = slot + timedelta(minutes=11)
        assert await scheduler.run_due() == ["weekly"]
        assert await scheduler.run_due() == []
        assert runs == [slot]
    finally:
        await pool.close()


async def test_slots_before_not_before_are_not_caught_up(database_url: str) -> None:
    pool = await _pool(database_url)
    runs: list[datetime] = []

    async def work(slot: datetime) -> None:
        runs.append(slot)

    clock = Clock(datetime(2026, 11, 23, 9, 30, tzinfo=UTC))
    scheduler = Scheduler(pool, clock=clock)
    scheduler.add(
        Job("weekly", timedelta(weeks=1), work, offset=timedelta(hours=9), catch_up=timedelta(hours=2))
    )
    scheduler.not_before = clock.now  # the console started at 09:30: the 09:00 slot is not its business
    try:
        assert await scheduler.run_due() == []
        clock.now += timedelta(weeks=1)
        assert await scheduler.run_due() == ["weekly"]
    finally:
        await pool.close()


async def test_sweeps_run_every_tick_and_a_failing_one_does_not_stop_the_jobs(database_url: str) -> None:
    pool = await _pool(database_url)
    seen: list[datetime] = []

    async def sweep(now: datetime) -> None:
        seen.append(now)

    async def broken(now: datetime) -> None:
        raise RuntimeError("boom")

    clock = Clock(datetime(2026, 11, 23, 9, 30, tzinfo=UTC))
    scheduler = Scheduler(pool, clock=clock)
    scheduler.add_sweep("broken", broken)
    scheduler.add_sweep("seen", sweep)
    try:
        await scheduler.run_due()
        await scheduler.run_due()
        assert seen == [clock.now, clock.now]
    finally:
        await pool.close()
