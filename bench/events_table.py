"""The events table the latency benchmark queries: Mira's `mira_events`, millions of rows, with the README's index.

Built once per (version, size) in a schema of its own (`bench_events_v2_r10000000.mira_events`) by one
`INSERT … SELECT … FROM generate_series` — tens of seconds for ten million rows instead of minutes of client-side
inserts — then indexed as README → Latency recommends and vacuumed, and reused by every later run. Bump VERSION
when the shape of the data changes; an old schema is left alone (drop it by hand to reclaim the space).

The rows spread evenly over the 7 days before the table was built (ten million rows: 16.5 events a second, so a
5-minute window holds about 5,000 `agent_response` events). Before each run the gap between the newest row and now
is filled at the same rate (at most the last hour), so the 5-minute window the benchmark asks for always holds a
realistic number of rows however old the table is. Latencies are log-normal around 900 ms (Mira's agent
responses), one event in five is an `action_execution` (so the `event_type` filter matters), 2 % failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

VERSION = 2
SPAN_SECONDS = 7 * 24 * 3600
TOP_UP_LIMIT_SECONDS = 3600
TABLE = "mira_events"
INDEX = "mira_events_event_type_created_at_idx"
_LOCK_KEY = 0x4D4952414245  # one builder at a time

# One generated row, from `g` (its position) and `step` (seconds between rows), counted back from `anchor`.
_ROW_SELECT = """
    SELECT CASE WHEN g % 5 = 0 THEN 'action_execution' ELSE 'agent_response' END,
           greatest(80, round(900 * exp(0.45 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))::int,
           random() >= 0.02,
           {anchor} - make_interval(secs => g * {step})
    FROM generate_series({first}, {last}) AS g
"""


@dataclass(frozen=True)
class EventsTable:
    schema: str
    rows: int
    built_now: bool
    build_seconds: float | None
    topped_up: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{TABLE}"


def schema_for(rows: int) -> str:
    return f"bench_events_v{VERSION}_r{rows}"


def _ready(conn: psycopg.Connection, schema: str) -> bool:
    """Built completely: the marker is written last, in the transaction that made the index."""
    found = conn.execute(
        "SELECT obj_description(to_regclass(%s), 'pg_class')", (f"{schema}.{TABLE}",)
    ).fetchone()
    return bool(found and found[0] and found[0].startswith("mira-chatops bench"))


def _build(conn: psycopg.Connection, schema: str, rows: int) -> None:
    step = SPAN_SECONDS / rows
    ident = sql.Identifier(schema)
    table = sql.Identifier(schema, TABLE)
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
    with conn.transaction():
        conn.execute(
            sql.SQL(
                """CREATE TABLE {} (
                       id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                       event_type text NOT NULL,
                       latency_ms integer,
                       success boolean,
                       created_at timestamptz NOT NULL DEFAULT now())"""
            ).format(table)
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (event_type, latency_ms, success, created_at) ").format(table)
            + sql.SQL(_ROW_SELECT).format(
                anchor=sql.SQL("now()"),
                step=sql.Literal(step),
                first=sql.Literal(1),
                last=sql.Literal(rows),
            )
        )
        # README → Latency: the index that lets Postgres answer the query from the index alone.
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} (event_type, created_at) INCLUDE (latency_ms, success)").format(
                sql.Identifier(INDEX), table
            )
        )
        marker = f"mira-chatops bench events table v{VERSION}, {rows} rows (bench/events_table.py)"
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(marker)))


def _top_up(conn: psycopg.Connection, schema: str, rows: int) -> int:
    """Fill the gap between the newest row and now at the table's rate (at most the last hour)."""
    step = SPAN_SECONDS / rows
    table = sql.Identifier(schema, TABLE)
    newest = conn.execute(sql.SQL("SELECT extract(epoch FROM now() - max(created_at)) FROM {}").format(table))
    row = newest.fetchone()
    gap = min(float(row[0]) if row and row[0] is not None else TOP_UP_LIMIT_SECONDS, TOP_UP_LIMIT_SECONDS)
    count = int(gap / step)
    if count < 1:
        return 0
    with conn.transaction():
        conn.execute(
            sql.SQL("INSERT INTO {} (event_type, latency_ms, success, created_at) ").format(table)
            + sql.SQL(_ROW_SELECT).format(
                anchor=sql.SQL("now()"),
                step=sql.Literal(step),
                first=sql.Literal(0),
                last=sql.Literal(count - 1),
            )
        )
    return count


def prepare(database_url: str, rows: int) -> EventsTable:
    """The table with `rows` rows (built if missing), topped up to now and vacuumed, ready to be queried."""
    schema = schema_for(rows)
    built_now = False
    build_seconds: float | None = None
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            if not _ready(conn, schema):
                started = time.monotonic()
                _build(conn, schema, rows)
                build_seconds = time.monotonic() - started
                built_now = True
            topped_up = _top_up(conn, schema, rows)
            # Index-only scans need the visibility map: what autovacuum keeps up to date on a real table.
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, TABLE)))
            estimate = conn.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", (f"{schema}.{TABLE}",)
            ).fetchone()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return EventsTable(
        schema=schema,
        rows=int(estimate[0]) if estimate else rows,
        built_now=built_now,
        build_seconds=build_seconds,
        topped_up=topped_up,
    )
