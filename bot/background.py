"""Post-ack work: run it, count it, and never let its failure go unseen.

Every piece of post-ack work is started by `BackgroundWork.start` once the ack is sent (bot/app.py) and runs as a
task of its own; nobody awaits such a task, so an exception would vanish (as it does in Bolt's lazy listeners,
bolt-python issue #635). The work logs a failure with its traceback, counts it, and tells the user in Slack. The in-flight count lets the console wait until the bot has finished answering, and lets a graceful
shutdown wait for work in progress.

At most POST_ACK_CONCURRENCY pieces of work run at once; the others wait their turn in arrival order. Unbounded,
a burst of slash commands (bench/: 200 concurrent `/health`) started every one of their probes at once, and the
shared HTTP client's connection pool spends time quadratic in its queue (httpcore re-assigns every queued request
on every change): the event loop went to the pool, and acks took seconds, past Slack's 3-second deadline. Bounded,
the acks keep the loop and the answers follow in order (docs/PERFORMANCE.md, "ack").
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable

import httpx
import psycopg
import redis.exceptions
from prometheus_client import Counter, Gauge

from bot.storage import StorageUnavailable
from integrations.slack import slack_error_code

log = logging.getLogger(__name__)

POST_ACK_FAILURES = Counter(
    "mira_post_ack_failures_total", "Post-ack work that raised, by command or action.", ["work"]
)
POST_ACK_WAITING = Gauge("mira_post_ack_waiting", "Post-ack work acknowledged but waiting for a free slot.")

#: Post-ack work running at once. Sixteen /health runs of the bundled catalog (about seven HTTP probes each) fit
#: the HTTP client's 100 connections; more would only wait in its pool, where waiting costs CPU, instead of here,
#: where it costs none.
POST_ACK_CONCURRENCY = 16


def describe_error(exc: BaseException) -> str:
    """A short, secret-free cause for the user. Unknown errors give only their class name: their text may hold
    a URL with a password or a token."""
    code = slack_error_code(exc)
    if code:
        return f"Slack answered `{code}`"
    if isinstance(exc, StorageUnavailable | psycopg.OperationalError | psycopg.errors.AdminShutdown):
        return "the bot's database is unavailable"
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "the bot's Redis is unavailable"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "an upstream call timed out"
    return f"an internal error ({type(exc).__name__})"


def _close_unstarted(job: Awaitable[None]) -> None:
    """A coroutine that never started (cancelled while waiting for a slot, or before its task ran) is closed, so
    it is not reported as "never awaited"."""
    if inspect.iscoroutine(job) and inspect.getcoroutinestate(job) == inspect.CORO_CREATED:
        job.close()


class BackgroundWork:
    """Counts post-ack work in flight (running or waiting for a slot), bounds how much runs at once, and reports
    failures."""

    def __init__(self, max_running: int = POST_ACK_CONCURRENCY) -> None:
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(max_running)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return self._active

    def start(
        self,
        work: str,
        job: Awaitable[None],
        tell_user: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        """Run `job` as a task of its own (as `guard` does); counted as in flight from now, not from when the
        task first runs, so `wait_idle` right after an ack waits for it."""
        self._enter()
        task = asyncio.create_task(self._guarded(work, job, tell_user), name=f"post-ack {work}")
        self._tasks.add(task)  # the loop keeps only a weak reference to a task

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            _close_unstarted(job)  # cancelled before it ran (shutdown): it must not warn "never awaited"
            self._leave()

        task.add_done_callback(done)

    async def guard(
        self,
        work: str,
        job: Awaitable[None],
        tell_user: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        """Await `job` once a slot is free; on failure log it with traceback and tell the user through
        `tell_user`."""
        self._enter()
        try:
            await self._guarded(work, job, tell_user)
        finally:
            _close_unstarted(job)
            self._leave()

    def _enter(self) -> None:
        self._active += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._active -= 1
        if self._active == 0:
            self._idle.set()

    async def _guarded(
        self,
        work: str,
        job: Awaitable[None],
        tell_user: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        """The work under its slot, with failures reported."""
        try:
            await self._take_slot(job)
            try:
                await job
            finally:
                self._slots.release()
        except Exception as exc:
            error_id = uuid.uuid4().hex[:8]
            POST_ACK_FAILURES.labels(work).inc()
            log.exception("post-ack work failed", extra={"work": work, "error_id": error_id})
            if tell_user is not None:
                message = (
                    f":warning: `{work}` failed after it was acknowledged: {describe_error(exc)}. "
                    f"The bot logged it as error `{error_id}`; try again, or tell the bot's operators."
                )
                try:
                    await tell_user(message)
                except Exception:
                    log.exception("could not tell the user about a failure", extra={"error_id": error_id})

    async def _take_slot(self, job: Awaitable[None]) -> None:
        POST_ACK_WAITING.inc()
        try:
            await self._slots.acquire()
        finally:
            POST_ACK_WAITING.dec()

    async def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once no post-ack work is running (after letting just-scheduled work start)."""
        for _ in range(3):
            await asyncio.sleep(0)
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
