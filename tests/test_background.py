"""Post-ack work (bot/background.py): bounded concurrency, nothing lost, failures told, waiting work counted.

The bound exists for the ack benchmark's finding (docs/PERFORMANCE.md): unbounded, a burst of slash commands
started every probe at once and the acks waited behind them. These tests check the behaviour, not a timing.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

from bot.background import BackgroundWork


async def test_at_most_max_running_jobs_run_at_once_and_every_job_runs() -> None:
    background = BackgroundWork(max_running=2)
    release = asyncio.Event()
    running = 0
    most = 0
    finished: list[int] = []

    async def job(number: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        finished.append(number)

    tasks = [asyncio.create_task(background.guard("/health", job(n), None)) for n in range(5)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert running == 2 and background.active == 5  # three wait for a slot, and are counted as in flight
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2
    assert sorted(finished) == [0, 1, 2, 3, 4]
    assert await background.wait_idle(timeout=5.0)


async def test_waiting_jobs_start_in_arrival_order() -> None:
    background = BackgroundWork(max_running=1)
    gate = asyncio.Event()
    started: list[int] = []

    async def job(number: int) -> None:
        started.append(number)
        await gate.wait()

    tasks = []
    for n in range(4):
        tasks.append(asyncio.create_task(background.guard("/health", job(n), None)))
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert started == [0, 1, 2, 3]


async def test_a_failed_job_frees_its_slot_and_the_user_is_told() -> None:
    background = BackgroundWork(max_running=1)
    told: list[str] = []
    ran: list[str] = []

    async def failing() -> None:
        raise RuntimeError("probe exploded")

    async def next_one() -> None:
        ran.append("next")

    async def tell(text: str) -> None:
        told.append(text)

    await asyncio.gather(
        background.guard("/health", failing(), tell), background.guard("/latency", next_one(), tell)
    )
    assert ran == ["next"]
    assert len(told) == 1 and "`/health` failed after it was acknowledged" in told[0]
    assert "RuntimeError" in told[0] and "probe exploded" not in told[0]  # the class, never the text


async def test_work_cancelled_while_waiting_for_a_slot_never_starts_and_leaves_no_warning() -> None:
    background = BackgroundWork(max_running=1)
    gate = asyncio.Event()
    started: list[str] = []

    async def holder() -> None:
        await gate.wait()

    async def waiting() -> None:
        started.append("waiting")

    first = asyncio.create_task(background.guard("/health", holder(), None))
    await asyncio.sleep(0)
    second = asyncio.create_task(background.guard("/health", waiting(), None))
    await asyncio.sleep(0)
    assert background.active == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        gc.collect()
    assert not [w for w in caught if "was never awaited" in str(w.message)]
    assert started == [] and background.active == 1
    gate.set()
    await first
    assert await background.wait_idle(timeout=5.0)


async def test_started_work_is_in_flight_at_once_and_runs_after_the_caller_returns() -> None:
    """`start` is what the ack listener calls: the work must not run inside the ack, yet `wait_idle` right after
    must wait for it."""
    background = BackgroundWork()
    ran: list[str] = []

    async def job() -> None:
        await asyncio.sleep(0)
        ran.append("answered")

    background.start("/health", job(), None)
    assert ran == [] and background.active == 1
    assert await background.wait_idle(timeout=5.0)
    assert ran == ["answered"] and background.active == 0


async def test_a_failure_of_started_work_is_told_to_the_user() -> None:
    background = BackgroundWork()
    told: list[str] = []

    async def failing() -> None:
        raise ValueError("boom")

    async def tell(text: str) -> None:
        told.append(text)

    background.start("/latency", failing(), tell)
    assert await background.wait_idle(timeout=5.0)
    assert len(told) == 1 and "`/latency` failed after it was acknowledged" in told[0]


async def test_started_work_cancelled_before_it_ran_is_closed_and_uncounted() -> None:
    background = BackgroundWork()
    ran: list[str] = []

    async def job() -> None:
        ran.append("ran")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        background.start("/health", job(), None)
        [task] = list(background._tasks)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gc.collect()
    assert not [w for w in caught if "was never awaited" in str(w.message)]
    assert ran == [] and background.active == 0
    assert await background.wait_idle(timeout=1.0)
