"""The demo services' own events: the four latency tables of bot/catalog.yaml, seeded and kept flowing.

`/latency` reads each service's events table (the catalog's `latency:` sections): Mira's `mira_events`
(stand_ins/demo_data.py seeds its week), Ivy's `ai_router_events` (per `query_kind`), AI Assistant's
`ai_messages` (`response_time_ms`, no success column) and FA's `query_events`. :func:`seed_service_events` gives
the other three a week of history each; :class:`EventFlow` keeps inserting events while the console runs, dated
by the console's clock, so `/latency 5m` is never empty however long the session lasts, and a `clock +10m` jump
fills the ten minutes it skipped as a service that kept serving would have. `slow SERVICE` makes its new events
slow (by the runbook's own thresholds: BREACH), `mend SERVICE` makes them normal again.

The window `/latency` judges is the metrics database's `now()` (integrations/metrics_db.py), a service's own
clock. In the demo that clock is the console's: :func:`install_demo_clock` defines a `now()` in the demo's schema
that is `pg_catalog.now()` shifted by the console's offset, and the DSN the catalog gets names that schema
before `pg_catalog` in its search_path, so only the demo services' connections see it. Nothing here is used
outside the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

log = logging.getLogger(__name__)

DEMO_EVENTS_COMMENT = (
    "Demo data created by `mira-bot console` (stand_ins/demo_events.py): synthetic events so /latency has "
    "something to measure. Not real traffic; safe to drop."
)
#: One event per service every this many seconds of the console's clock (the last hour of the seed is as dense).
EVERY = timedelta(seconds=3)
#: A `clock` jump further than this is filled sparsely before its last hour (every 3 minutes, as the seed's week).
DENSE = timedelta(hours=1)
SPARSE_EVERY = timedelta(minutes=3)
#: How many times slower a `slow` service answers.
SLOWDOWN = 6.0
_LOCK_KEY = 0x4D49524145564E54  # "MIRAEVNT": one seeder at a time


@dataclass(frozen=True)
class EventTable:
    """One service's events table, shaped as its catalog `latency:` section reads it."""

    service: str
    table: str
    latency_column: str
    median_ms: float
    cap_ms: int  # normal events stay under the service's tightest objective
    kinds: tuple[str, ...] = ()  # Ivy's query_kind values
    kind_median_ms: tuple[float, ...] = ()
    kind_cap_ms: tuple[int, ...] = ()
    success: bool = True  # the table has a success column
    event_type: str | None = None  # Mira's event_type filter

    def columns(self) -> list[str]:
        names = [self.latency_column, "created_at"]
        if self.kinds:
            names.append("query_kind")
        if self.success:
            names.append("success")
        if self.event_type:
            names.append("event_type")
        return names


TABLES = (
    EventTable("mira-copilot", "mira_events", "latency_ms", 900, 2800, event_type="agent_response"),
    EventTable(
        "ivy-v2",
        "ai_router_events",
        "latency_ms",
        500,
        1400,
        kinds=("conversational", "rag"),
        kind_median_ms=(500, 800),
        kind_cap_ms=(1400, 2100),
    ),
    EventTable("ai-assistant", "ai_messages", "response_time_ms", 1800, 4500, success=False),
    EventTable("fa-ai-system", "query_events", "latency_ms", 500, 2800),
)
SEEDED_HERE = tuple(t for t in TABLES if t.service != "mira-copilot")  # Mira's week: stand_ins/demo_data.py

_DDL = {
    "ai_router_events": """CREATE TABLE IF NOT EXISTS ai_router_events (
        id bigserial PRIMARY KEY, query_kind text NOT NULL, latency_ms integer, success boolean,
        created_at timestamptz NOT NULL DEFAULT now())""",
    "ai_messages": """CREATE TABLE IF NOT EXISTS ai_messages (
        id bigserial PRIMARY KEY, response_time_ms integer, created_at timestamptz NOT NULL DEFAULT now())""",
    "query_events": """CREATE TABLE IF NOT EXISTS query_events (
        id bigserial PRIMARY KEY, latency_ms integer, success boolean,
        created_at timestamptz NOT NULL DEFAULT now())""",
}


def event_row(table: EventTable, rng: random.Random, at: datetime, slow: bool) -> tuple[object, ...]:
    """One event: a log-normal latency around the service's median (capped under its objectives when normal,
    SLOWDOWN times slower and uncapped when slow), at `at`."""
    median, cap = table.median_ms, table.cap_ms
    kind = None
    if table.kinds:
        index = rng.randrange(len(table.kinds))
        kind, median, cap = table.kinds[index], table.kind_median_ms[index], table.kind_cap_ms[index]
    latency = median * math.exp(rng.gauss(0.0, 0.35))
    latency = latency * SLOWDOWN if slow else min(latency, cap)
    row: list[object] = [max(40, round(latency)), at]
    if table.kinds:
        row.append(kind)
    if table.success:
        row.append(True)
    if table.event_type:
        row.append(table.event_type)
    return tuple(row)


def moments(since: datetime, until: datetime) -> list[datetime]:
    """When events happened in (since, until]: on a grid from `since`, every SPARSE_EVERY until the last DENSE
    of the span, every EVERY in it (so repeated calls continue one grid, one event every EVERY)."""
    dense_from = until - DENSE
    out: list[datetime] = []
    at = since
    while True:
        at += SPARSE_EVERY if at + SPARSE_EVERY < dense_from else EVERY
        if at > until:
            return out
        out.append(at)


async def _copy(conn: psycopg.AsyncConnection, table: EventTable, rows: list[tuple[object, ...]]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.table), sql.SQL(", ").join(map(sql.Identifier, table.columns()))
    )
    async with conn.cursor().copy(statement) as copy:
        for row in rows:
            await copy.write_row(row)


async def seed_service_events(dsn: str, now: datetime, seed: int = 20251112) -> int:
    """Create Ivy's, AI Assistant's and FA's events tables and give each a week of normal events up to `now`
    (labelled as demo data); the rows inserted, 0 when they were there already."""
    rng = random.Random(seed)
    inserted = 0
    async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for table in SEEDED_HERE:
            await conn.execute(_DDL[table.table])
            await conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (created_at)").format(
                    sql.Identifier(f"{table.table}_created_at_idx"), sql.Identifier(table.table)
                )
            )
            exists = await (
                await conn.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table.table))
                )
            ).fetchone()
            if exists and exists[0]:
                continue
            await conn.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    sql.Identifier(table.table), sql.Literal(DEMO_EVENTS_COMMENT)
                )
            )
            rows = [event_row(table, rng, at, slow=False) for at in moments(now - timedelta(days=7), now)]
            await _copy(conn, table, rows)
            await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table.table)))
            inserted += len(rows)
    return inserted


# --- the services' clock -------------------------------------------------------------------------------------


async def install_demo_clock(dsn: str) -> str:
    """Define the demo services' `now()` (the real one shifted by `mira_demo_clock.shift`) in the DSN's current
    schema; return the DSN the demo services use, which finds that `now()` before `pg_catalog`'s."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (await conn.execute("SELECT current_schema()")).fetchone()
        assert row is not None and row[0]
        schema = str(row[0])
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS mira_demo_clock (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
            "shift interval NOT NULL DEFAULT '0')"
        )
        await conn.execute("INSERT INTO mira_demo_clock DEFAULT VALUES ON CONFLICT DO NOTHING")
        await conn.execute(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {}.now() RETURNS timestamptz LANGUAGE sql STABLE AS "
                "$$ SELECT pg_catalog.now() + (SELECT shift FROM {}.mira_demo_clock) $$"
            ).format(sql.Identifier(schema), sql.Identifier(schema))
        )
    return make_conninfo(dsn, options=f"-c search_path={schema},pg_catalog")


async def set_demo_clock(dsn: str, now: datetime) -> None:
    """Move the demo services' clock to the console's `now`. The shift is measured against the database's own
    `now()`, not this process's: one clock for the decision, whatever time the process believes it is (a
    `faketime` run, a host whose clock differs from the database's)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("UPDATE mira_demo_clock SET shift = %s::timestamptz - pg_catalog.now()", (now,))


# --- events while the console runs ----------------------------------------------------------------------------


class EventFlow:
    """Inserts each service's events up to the console's clock, every `period` seconds and on `catch_up()`."""

    def __init__(
        self, dsn: str, clock: Callable[[], datetime], since: datetime, period: float = 1.0, seed: int = 7
    ) -> None:
        self.dsn = dsn
        self.clock = clock
        self.period = period
        self.slow: set[str] = set()
        self._last = since
        self._rng = random.Random(seed)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def catch_up(self) -> int:
        """Insert the events between the last insert and now (the console's clock); how many."""
        async with self._lock:
            now = self.clock()
            if now <= self._last:
                return 0
            at = moments(self._last, now)
            if not at:
                return 0
            async with await psycopg.AsyncConnection.connect(self.dsn) as conn, conn.transaction():
                for table in TABLES:
                    slow = table.service in self.slow
                    await _copy(conn, table, [event_row(table, self._rng, moment, slow) for moment in at])
            self._last = at[-1]
            return len(at) * len(TABLES)

    async def burst(self, service: str, count: int = 40, over: timedelta = timedelta(seconds=40)) -> None:
        """A service that just turned slow: `count` slow events over the last `over` (the requests that were
        queueing when it slowed), so the 5-minute window shows the slowdown at once, as a real one soon would."""
        table = next(t for t in TABLES if t.service == service)
        now = self.clock()
        rows = [event_row(table, self._rng, now - over * (i / count), slow=True) for i in range(count)]
        async with (
            self._lock,
            await psycopg.AsyncConnection.connect(self.dsn) as conn,
            conn.transaction(),
        ):
            await _copy(conn, table, rows)

    async def _run(self) -> None:
        while True:
            try:
                await self.catch_up()
            except (psycopg.Error, OSError):
                log.warning("demo events not inserted; trying again", exc_info=True)
            await asyncio.sleep(self.period)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="demo-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
