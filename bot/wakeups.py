"""Waking a worker in another process: Postgres NOTIFY from the web process, LISTEN in the worker process.

All in one process, the webhook route wakes the delivery worker through an in-process event (`Worker.wake`). Run
apart (`mira-bot serve --web-only`, `mira-bot worker`), the route has no worker to wake, and a worker that only
polled would leave a stored event waiting up to its poll (1 s) — past the 250 ms from the 202 to the incident's
root that issue 16 asks for. So the web process sends a NOTIFY after storing, and every worker process LISTENs
on one connection of its own and wakes the named worker at once.

The notification only says "look now": it carries no work. The work is in Postgres (the outbox, claimed with
leases), so a notification that is lost — the worker was restarting, its listening connection had dropped,
Postgres restarted — costs only the wait until the worker's next poll, never an event. That is why the notify is
sent after the commit, outside the webhook's statement, and why its failure is logged and not answered 503: the
webhook is stored either way. After (re)connecting, the listener wakes every worker once, for what was stored
while nobody listened.

NOTIFY is database-wide while the bot's tables live in a schema (each test has its own), so the payload names
the sender's schema and the listener ignores other schemas' wake-ups. Under a storm the notifier keeps at most
one NOTIFY in flight and one more queued behind it, whatever the webhook rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from prometheus_client import Counter
from psycopg import sql

from bot.storage import Storage
from bot.worker import Worker

log = logging.getLogger(__name__)

CHANNEL = "mira_bot_wake"
_NOTIFY = "SELECT pg_notify('mira_bot_wake', current_schema() || ' ' || %s)"
#: How long the listener waits for a notification before checking that its connection still answers (a
#: connection cut without a reset would otherwise keep it waiting for ever, deaf to every wake-up).
KEEPALIVE_SECONDS = 30.0
#: The listener's pause before reconnecting, doubled on every failure up to the ceiling.
RECONNECT_SECONDS = (0.5, 10.0)
CONNECT_TIMEOUT = 5

WAKEUPS = Counter(
    "mira_worker_wakeups_total",
    "Wake-ups between processes (NOTIFY sent by the web process, received by a worker), by outcome.",
    ["outcome"],
)


class WakeNotifier:
    """Called by the webhook route after a webhook is stored (`mira-bot serve --web-only`): NOTIFY the workers.

    Synchronous and cheap for the caller: the NOTIFY goes from a task of its own, so the 202 never waits for it.
    """

    def __init__(self, storage: Storage, worker: str) -> None:
        self.storage = storage
        self.worker = worker
        self._again = False
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> None:
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send(), name=f"wake {self.worker}")

    async def _send(self) -> None:
        while self._again:
            self._again = False
            try:
                async with self.storage.autocommit(timeout=1.0) as conn:
                    await conn.execute(_NOTIFY, (self.worker,))
                WAKEUPS.labels("sent").inc()
            except Exception as exc:
                WAKEUPS.labels("not_sent").inc()
                log.warning(
                    "could not wake the workers; they find the stored webhook at their next poll",
                    extra={"worker": self.worker, "error": type(exc).__name__},
                )
                return

    async def close(self) -> None:
        """Let a NOTIFY in flight finish (briefly) at shutdown."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(task, timeout=2.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()


class WakeListener:
    """LISTENs on a connection of its own and wakes `workers[name]` for each notification naming it."""

    def __init__(self, conninfo: str, workers: Mapping[str, Worker]) -> None:
        self.conninfo = conninfo
        self.workers = dict(workers)
        self._task: asyncio.Task[None] | None = None
        #: Set while the listener is listening; `backend_pid` is its connection's server process then.
        self.listening = asyncio.Event()
        self.backend_pid: int | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wake-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.listening.clear()

    def _wake_all(self) -> None:
        for worker in self.workers.values():
            worker.wake()

    async def _run(self) -> None:
        pause, ceiling = RECONNECT_SECONDS
        failing = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name="mira-bot wake-up listener",
                )
            except (psycopg.Error, OSError) as exc:
                if not failing:
                    log.warning(
                        "wake-up listener cannot reach Postgres; workers poll until it can",
                        extra={"error": type(exc).__name__},
                    )
                failing = True
                await asyncio.sleep(pause)
                pause = min(ceiling, pause * 2)
                continue
            failing = False
            try:
                await self._listen(conn)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning(
                    "wake-up listener lost its connection; workers poll until it is back",
                    extra={"error": type(exc).__name__},
                )
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await conn.close()
            pause = RECONNECT_SECONDS[0]
            await asyncio.sleep(pause)

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        cursor = await conn.execute("SELECT current_schema()")
        row = await cursor.fetchone()
        prefix = f"{row[0] if row else ''} "
        self.backend_pid = conn.info.backend_pid
        self.listening.set()
        log.info("listening for wake-ups", extra={"workers": sorted(self.workers)})
        self._wake_all()  # whatever was stored while nobody listened
        while True:
            async for notify in conn.notifies(timeout=KEEPALIVE_SECONDS):
                if not notify.payload.startswith(prefix):
                    continue  # another schema's bot (tests share a database)
                worker = self.workers.get(notify.payload[len(prefix) :])
                if worker is not None:
                    WAKEUPS.labels("received").inc()
                    worker.wake()
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await conn.execute("SELECT 1")  # quiet for a while: is the connection still there?
