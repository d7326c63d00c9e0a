"""latency query: `/latency bench 5m` on the events table (ten million rows in the full profile) with the
README's index, against the same SQL run directly.

The bot's figure is what the engineer sees: from sending the signed `/latency` to the answer (the percentiles
message) reaching Slack. The trend chart that follows in the thread is waited for before the next round (so its
rendering never overlaps a measurement) but not counted: the answer does not wait for it.

The baseline is the same statement the bot sends — built by integrations/metrics_db.py with the same parameters,
in the same READ ONLY transaction with the same statement_timeout — run with psycopg on a connection opened
beforehand: the database's own cost of the answer. The bot's overhead is the difference within each round. The
direct query on a fresh connection is reported too, because the bot connects per query (it reads a service's own
database, read-only, and holds nothing open there), and that connection is most of the overhead.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta
from typing import Any

import httpx
import psycopg
from psycopg import sql

from bench import events_table
from bench.benchmarks.health import send_command
from bench.catalogs import latency_catalog
from bench.core import BenchResult, Context, Row, order, wait_until
from bench.stats import Summary
from integrations import metrics_db

NAME = "latency"
WINDOW = timedelta(minutes=5)
BUCKETS = 15  # handlers/latency.py: the 5-minute window's trend buckets
OVERHEAD_LIMIT_MS = 20.0
DIRECT_LIMIT_MS = 50.0
STATEMENT_TIMEOUT_S = 5.0


def _statement(table: str) -> tuple[sql.Composed, dict[str, Any]]:
    query, params = metrics_db.build_query(
        table=table,
        latency_column="latency_ms",
        time_column="created_at",
        filters={"event_type": "agent_response"},
        kind_column=None,
        success_column="success",
        kind=None,
    )
    stride = WINDOW / BUCKETS
    params |= {"window": WINDOW, "stride": stride.total_seconds(), "last": BUCKETS - 1}
    return query, params


async def _direct(conn: psycopg.AsyncConnection[Any], table: str) -> tuple[float, int]:
    """(ms, events in the window) for the bot's statement on an open connection, as the bot runs it."""
    query, params = _statement(table)
    timeout_ms = math.ceil(STATEMENT_TIMEOUT_S * 1000)
    started = time.perf_counter()
    await conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout_ms)))
    rows = await (await conn.execute(query, params)).fetchall()
    elapsed = (time.perf_counter() - started) * 1000.0
    await conn.rollback()
    return elapsed, int(rows[0][2])


async def _direct_fresh(dsn: str, table: str) -> float:
    """The same on a new connection, as the bot does it (connect, READ ONLY, query, close)."""
    started = time.perf_counter()
    conn = await psycopg.AsyncConnection.connect(dsn, application_name="mira-chatops bench")
    try:
        await conn.set_read_only(True)
        await _direct(conn, table)
    finally:
        await conn.close()
    return (time.perf_counter() - started) * 1000.0


async def _wait_for_trend(ctx: Context, channel: str) -> None:
    """The chart upload (or the sparkline reply) that follows the answer in its thread."""

    def done() -> bool:
        shares = [s for s in ctx.slack.file_shares if s.channel == ctx.slack.channel_id(channel)]
        replies = [c for c in ctx.slack.calls_to("chat.postMessage", channel=channel) if c.thread_ts]
        return bool(shares or replies)

    await wait_until(done, timeout=30.0)


async def run(ctx: Context) -> BenchResult:
    profile = ctx.profile
    ctx.log(f"  latency: preparing the {profile.events_rows:,}-row events table (built once, then reused)")
    table = await asyncio.to_thread(events_table.prepare, ctx.storage.database_url, profile.events_rows)
    if table.built_now:
        ctx.log(f"  latency: built {table.qualified} in {table.build_seconds:.0f} s")
    dsn = ctx.storage.database_url
    bot, _schema = await ctx.start_bot(NAME, latency_catalog(dsn, table.qualified))
    bot_ms: list[float] = []
    direct_ms: list[float] = []
    fresh_ms: list[float] = []
    events: list[int] = []
    try:
        async with (
            httpx.AsyncClient(trust_env=False, timeout=30.0) as client,
            await psycopg.AsyncConnection.connect(dsn, application_name="mira-chatops bench") as conn,
        ):
            await conn.set_read_only(True)
            # Untimed warm-up of both: Bolt's auth.test, the bot's first chart, pages into Postgres' cache.
            await send_command(ctx, client, bot.url, "/latency", "bench 5m", "C0LATENCYW")
            await ctx.slack.wait_for("chat.postMessage", channel="C0LATENCYW", timeout=30.0)
            await _wait_for_trend(ctx, "C0LATENCYW")
            await _direct(conn, table.qualified)
            for index in range(profile.single_rounds):
                for side in order(index):
                    if side == "bot":
                        channel = f"C0LATENCY{index:02d}"
                        sent = await send_command(ctx, client, bot.url, "/latency", "bench 5m", channel)
                        [answer] = (
                            await ctx.slack.wait_for("chat.postMessage", channel=channel, timeout=30.0)
                        )[:1]
                        bot_ms.append((answer.at - sent) * 1000.0)
                        await _wait_for_trend(ctx, channel)
                    else:
                        elapsed, count = await _direct(conn, table.qualified)
                        direct_ms.append(elapsed)
                        events.append(count)
                        fresh_ms.append(await _direct_fresh(dsn, table.qualified))
                ctx.log(
                    f"  latency round {index + 1}: /latency {bot_ms[-1]:.1f} ms, direct {direct_ms[-1]:.1f} ms"
                )
    finally:
        await bot.stop()
    overhead = Summary.of([b - d for b, d in zip(bot_ms, direct_ms, strict=True)])
    direct = Summary.of(direct_ms)
    rows = [
        Row(NAME, "/latency answered in Slack", "ms", Summary.of(bot_ms), direct, "same SQL, direct"),
        Row(
            NAME,
            "bot overhead over the direct query",
            "ms",
            overhead,
            target=f"≤ {OVERHEAD_LIMIT_MS:g} ms",
            met=overhead.median <= OVERHEAD_LIMIT_MS,
        ),
        Row(
            NAME,
            "direct query",
            "ms",
            direct,
            target=f"≤ {DIRECT_LIMIT_MS:g} ms",
            met=direct.median <= DIRECT_LIMIT_MS,
        ),
        Row(NAME, "direct query on a new connection", "ms", Summary.of(fresh_ms)),
    ]
    return BenchResult(
        NAME,
        rows,
        params={
            "rows": table.rows,
            "table": table.qualified,
            "window": "5m",
            "events_in_window": Summary.of(events).as_json(),
            "rounds": profile.single_rounds,
            "index": "(event_type, created_at) INCLUDE (latency_ms, success)",
        },
        details={
            "table_built_now": table.built_now,
            "table_build_s": table.build_seconds,
            "rows_topped_up": table.topped_up,
        },
    )
