"""Waking a worker of another process (bot/wakeups.py): a NOTIFY from the web side runs the worker's next pass now.

The worker here polls once an hour, so any pass after its first can only come from a wake-up: the test waits on
passes, not on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.settings import Settings
from bot.storage import Storage, open_storage
from bot.wakeups import WakeListener, WakeNotifier
from bot.worker import Worker

AN_HOUR = 3600.0


class CountingWorker(Worker):
    """A worker whose pass only counts itself; it sleeps an hour between passes unless woken."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__(poll=AN_HOUR)
        self.passes = 0
        self.passed = asyncio.Condition()

    async def run_pass(self) -> bool:
        async with self.passed:
            self.passes += 1
            self.passed.notify_all()
        return False

    async def wait_for_passes(self, count: int) -> None:
        async with asyncio.timeout(30):  # a liveness bound: the wake-up takes milliseconds
            async with self.passed:
                await self.passed.wait_for(lambda: self.passes >= count)


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[Storage]:
    opened = await open_storage(settings, migrate=False)
    yield opened
    await opened.close()


@pytest.fixture
async def worker() -> AsyncIterator[CountingWorker]:
    counting = CountingWorker()
    counting.start()
    await counting.wait_for_passes(1)  # the loop's first pass, then an hour's wait
    yield counting
    await counting.stop()


async def test_a_notify_from_another_connection_wakes_the_named_worker(
    storage: Storage, worker: CountingWorker, database_url: str
) -> None:
    listener = WakeListener(database_url, {worker.name: worker})
    listener.start()
    try:
        async with asyncio.timeout(30):
            await listener.listening.wait()
        await worker.wait_for_passes(2)  # on (re)connecting the listener wakes everyone once
        notifier = WakeNotifier(storage, worker.name)
        notifier()
        await worker.wait_for_passes(3)
        for _ in range(50):  # a burst: one NOTIFY in flight and one queued, never fifty
            notifier()
        await notifier.close()
        await worker.wait_for_passes(4)
    finally:
        await listener.stop()
    assert not listener.listening.is_set()


async def test_a_notify_for_another_worker_or_another_schema_wakes_nobody_here(
    storage: Storage, worker: CountingWorker, database_url: str
) -> None:
    """Notifications carry the sender's schema and the worker's name; only an exact match wakes. A marker worker
    woken after the mismatches shows they were read: Postgres delivers notifications in commit order, and a
    worker woken earlier would have run its pass before the marker's."""

    class Marker(CountingWorker):
        name = "marker"

    marker = Marker()
    marker.start()
    await marker.wait_for_passes(1)
    listener = WakeListener(database_url, {worker.name: worker, marker.name: marker})
    listener.start()
    try:
        async with asyncio.timeout(30):
            await listener.listening.wait()
        await worker.wait_for_passes(2)
        await marker.wait_for_passes(2)
        async with storage.autocommit() as conn:
            for payload in ("current_schema() || ' rollback-worker'", "'another_schema counting'"):
                await conn.execute(f"SELECT pg_notify('mira_bot_wake', {payload})")
            await conn.execute("SELECT pg_notify('mira_bot_wake', current_schema() || ' marker')")
        await marker.wait_for_passes(3)
        assert worker.passes == 2
        WakeNotifier(storage, worker.name)()
        await worker.wait_for_passes(3)
    finally:
        await listener.stop()
        await marker.stop()
    assert worker.passes == 3


async def test_a_wake_up_that_arrives_during_a_pass_runs_the_next_pass_at_once() -> None:
    """A webhook stored while the delivery pass runs (after its claim) wakes the worker mid-pass: that wake-up
    must not be lost with the pass, or the event waits a whole poll (issue 16: webhook → Slack p99)."""

    class WokenMidPass(CountingWorker):
        async def run_pass(self) -> bool:
            if self.passes == 1:
                self.wake()  # the webhook arrives while this (second) pass runs
            return await super().run_pass()

    worker = WokenMidPass()
    worker.start()
    try:
        await worker.wait_for_passes(1)
        worker.wake()
        await worker.wait_for_passes(3)  # the second pass, then the one its mid-pass wake-up asked for
    finally:
        await worker.stop()


async def test_a_listener_whose_connection_is_cut_reconnects_and_wakes_every_worker(
    storage: Storage, worker: CountingWorker, database_url: str
) -> None:
    """Postgres restarting (or a proxy cutting idle connections) ends the LISTEN: the listener connects again,
    wakes every worker once for what was stored meanwhile, and goes on waking them."""
    listener = WakeListener(database_url, {worker.name: worker})
    listener.start()
    try:
        async with asyncio.timeout(30):
            await listener.listening.wait()
        await worker.wait_for_passes(2)
        cut = listener.backend_pid
        async with storage.autocommit() as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (cut,))
        await worker.wait_for_passes(3)  # the reconnect's wake-up
        async with asyncio.timeout(30):
            await listener.listening.wait()
        assert listener.backend_pid != cut
        WakeNotifier(storage, worker.name)()
        await worker.wait_for_passes(4)
    finally:
        await listener.stop()
