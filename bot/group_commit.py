"""Writes that arrive together, in one statement (group commit), each caller still learning its own outcome.

The same shape as the webhook store (bot/pagerduty_ingest.py) and the replay claims (bot/slack_replays.py), for
capabilities: the first item after a quiet moment is written at once, alone; the items that arrive while a write
is in flight go together in the next, so nothing waits for a timer and under a burst the cost per item falls
instead of the queue growing. Each caller's `submit` returns only after the statement holding its item has
committed (its result, e.g. the row's id), or raises that statement's error.

`GroupCommits` holds a process's batches by name, each made on first use, so a capability keeps its own SQL and
the platform only keeps the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

#: A batch never grows past this unless the batch's owner says otherwise.
MAX_BATCH = 200


@dataclass
class _Pending(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """`write(items)` returns one result per item, in order; it is called for one batch at a time."""

    def __init__(
        self, name: str, write: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = MAX_BATCH
    ) -> None:
        self.name = name
        self._write = write
        self._max_batch = max_batch
        self._queue: list[_Pending[T, R]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        pending: _Pending[T, R] = _Pending(item, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name=f"group-commit-{self.name}")
        return await asyncio.shield(pending.done)  # one caller giving up does not cancel the others' write

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                results = await self._write([pending.item for pending in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
            except Exception as exc:
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutdown): nobody is told their item was written
                for pending in [*batch, *self._queue]:
                    pending.done.cancel()
                raise
            for pending, result in zip(batch, results, strict=True):
                if not pending.done.done():
                    pending.done.set_result(result)


class GroupCommits:
    """A process's group commits by name (one per statement a capability batches)."""

    def __init__(self) -> None:
        self._by_name: dict[str, GroupCommit[Any, Any]] = {}

    def get(
        self, name: str, write: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = MAX_BATCH
    ) -> GroupCommit[T, R]:
        """The batch called `name`, made with `write` the first time it is asked for."""
        batch = self._by_name.get(name)
        if batch is None:
            batch = self._by_name[name] = GroupCommit(name, write, max_batch)
        return cast(GroupCommit[T, R], batch)
