"""The platform's shared checks (bot/single_flight.py) and group commits (bot/group_commit.py) on their own: who
gets which result, when a check runs again, and what a failure or a caller giving up does to the others."""

from __future__ import annotations

import asyncio

import pytest

from bot.group_commit import GroupCommit
from bot.single_flight import SingleFlight


class Check:
    """A check that counts its runs, answers its own run's number, and finishes when the test says so."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self) -> int:
        self.runs += 1
        number = self.runs
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("backend refused")
        return number


async def test_callers_within_the_window_share_one_check() -> None:
    flights, check = SingleFlight(), Check()
    first = asyncio.create_task(flights.run("k", check, fresh_for=1.0, now=10.0))
    second = asyncio.create_task(flights.run("k", check, fresh_for=1.0, now=10.5))
    await asyncio.sleep(0)
    check.gate.set()
    assert await asyncio.gather(first, second) == [1, 1]
    assert await flights.run("k", check, fresh_for=1.0, now=10.99) == 1  # finished, still fresh
    assert check.runs == 1


async def test_a_caller_a_window_after_the_start_checks_again_even_while_it_runs() -> None:
    flights, check = SingleFlight(), Check()
    first = asyncio.create_task(flights.run("k", check, fresh_for=1.0, now=10.0))
    late = asyncio.create_task(flights.run("k", check, fresh_for=1.0, now=11.0))  # first still in flight
    await asyncio.sleep(0)
    check.gate.set()
    assert await asyncio.gather(first, late) == [1, 2]


async def test_keys_and_tags_are_not_shared() -> None:
    flights, check = SingleFlight(), Check()
    check.gate.set()
    assert await flights.run("a", check, fresh_for=1.0, now=0.0) == 1
    assert await flights.run("b", check, fresh_for=1.0, now=0.0) == 2
    assert await flights.run("a", check, fresh_for=1.0, now=0.0, tag="reloaded") == 3


async def test_a_failed_check_fails_its_waiters_and_is_not_shared_after() -> None:
    flights, check = SingleFlight(), Check()
    check.fail = True
    waiting = [asyncio.create_task(flights.run("k", check, fresh_for=1.0, now=0.0)) for _ in range(2)]
    await asyncio.sleep(0)
    check.gate.set()
    for task in waiting:
        with pytest.raises(RuntimeError):
            await task
    check.fail = False
    assert await flights.run("k", check, fresh_for=1.0, now=0.1) == 2


async def test_the_check_stops_when_every_caller_gives_up_and_not_before() -> None:
    flights, check = SingleFlight(), Check()
    first = asyncio.create_task(flights.run("k", check, fresh_for=1.0, now=0.0))
    second = asyncio.create_task(flights.run("k", check, fresh_for=1.0, now=0.0))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    check.gate.set()
    assert await second == 1  # the other caller still got its answer
    check.gate.clear()
    third = asyncio.create_task(flights.run("j", check, fresh_for=1.0, now=0.0))
    await asyncio.sleep(0)
    third.cancel()
    await asyncio.sleep(0)
    assert len(flights) == 1  # "j" was dropped with its last caller; "k" is still fresh


async def test_items_arriving_during_a_write_go_together_each_with_its_own_result() -> None:
    written: list[list[int]] = []
    gate = asyncio.Event()

    async def write(items: list[int]) -> list[int]:
        written.append(items)
        await gate.wait()
        return [item * 10 for item in items]

    batch: GroupCommit[int, int] = GroupCommit("t", write)
    first = asyncio.create_task(batch.submit(1))
    await asyncio.sleep(0)  # the first write is in flight, alone
    rest = [asyncio.create_task(batch.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40]
    assert written == [[1], [2, 3, 4]]


async def test_a_failed_write_fails_every_item_in_it_and_the_next_batch_runs() -> None:
    calls: list[list[str]] = []

    async def write(items: list[str]) -> list[None]:
        calls.append(items)
        if "bad" in items:
            raise RuntimeError("database unavailable")
        return [None] * len(items)

    batch: GroupCommit[str, None] = GroupCommit("t", write)
    together = [asyncio.create_task(batch.submit(item)) for item in ("bad", "good")]
    results = await asyncio.gather(*together, return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert await batch.submit("later") is None
    assert calls == [["bad", "good"], ["later"]]


async def test_forget_shares_nothing_started_before() -> None:
    flights, check = SingleFlight(), Check()
    check.gate.set()
    assert await flights.run("k", check, fresh_for=1.0, now=0.0) == 1
    flights.forget()  # the console's `break fa`: the world changed at once
    assert await flights.run("k", check, fresh_for=1.0, now=0.1) == 2
