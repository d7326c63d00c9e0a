"""integrations.metrics_db against the suite's real Postgres: the numbers equal the runbook's PERCENTILE_CONT over
the same rows, the window/filters/kind select the right rows, and the safety rules hold (bound values, quoted
identifiers, READ ONLY, server-side statement timeout, no credentials in errors). Nothing is mocked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from integrations.metrics_db import LatencyStats, MetricsQueryError, QueryTimeout, latency_stats
from stand_ins.demo_data import DEMO_COMMENT, seed_demo_mira_events
from tests.harness import closed_port, finishes, silent_server

SECRET = "hunter2-Sup3rS3cret"
WINDOW_5M = timedelta(minutes=5)

# The Mira runbook's Issue 3 query, verbatim but for the interval, as an on-call would type it.
RUNBOOK_QUERY = """
SELECT
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY latency_ms) as p50,
  PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY latency_ms) as p95,
  PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY latency_ms) as p99,
  COUNT(*) as events
FROM events
WHERE event_type = 'agent_response'
  AND created_at >= NOW() - INTERVAL '5 minutes';
"""

Row = tuple[str, str | None, int | None, bool | None, timedelta]  # event_type, kind, latency, success, age


async def _execute(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def _events(dsn: str, rows: list[Row]) -> None:
    """A table shaped like the runbooks' event tables, rows placed `age` before now."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS events (
                   id bigserial PRIMARY KEY, event_type text, query_kind text, latency_ms integer,
                   success boolean, created_at timestamptz NOT NULL)"""
        )
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO events (event_type, query_kind, latency_ms, success, created_at) "
                "VALUES (%s, %s, %s, %s, now() - %s)",
                rows,
            )


async def _stats(dsn: str, **kwargs: Any) -> LatencyStats:
    params: dict[str, Any] = {
        "table": "events",
        "filters": {"event_type": "agent_response"},
        "success_column": "success",
        "window": WINDOW_5M,
        "buckets": 10,
    }
    return await latency_stats(dsn, **(params | kwargs))


def _recent(
    latency: int | None, *, kind: str | None = None, success: bool | None = True, seconds: int = 60
) -> Row:
    return ("agent_response", kind, latency, success, timedelta(seconds=seconds))


# --- the numbers ----------------------------------------------------------------------------------------------


async def test_percentiles_equal_the_runbook_query_over_the_same_rows(database_url: str) -> None:
    rows = [_recent((i * 7919) % 4000 + 50, seconds=i % 290 + 1, success=i % 17 != 0) for i in range(500)]
    rows += [("action_execution", None, 90_000, True, timedelta(seconds=30))] * 20  # another event type
    rows += [_recent(60_000, seconds=600)] * 20  # older than the window
    rows += [_recent(None, seconds=10)] * 3  # an event without a latency: counted, not ranked
    await _events(database_url, rows)

    stats = await _stats(database_url)
    [(p50, p95, p99, events)] = await _execute(database_url, RUNBOOK_QUERY)

    assert (stats.p50, stats.p95, stats.p99) == (pytest.approx(p50), pytest.approx(p95), pytest.approx(p99))
    assert stats.count == events == 503
    failures = sum(1 for i in range(500) if i % 17 == 0)
    assert stats.error_rate == pytest.approx(100.0 * failures / 503)
    assert stats.errors_recorded


async def test_percentile_cont_interpolates_like_the_runbook(database_url: str) -> None:
    """1..100 ms: PERCENTILE_CONT interpolates between ranks (not nearest-rank): 50.5, 95.05, 99.01."""
    await _events(database_url, [_recent(i) for i in range(1, 101)])
    stats = await _stats(database_url)
    assert (stats.p50, stats.p95, stats.p99) == (
        pytest.approx(50.5),
        pytest.approx(95.05),
        pytest.approx(99.01),
    )
    assert stats.count == 100
    assert stats.error_rate == 0.0


async def test_the_window_excludes_older_rows(database_url: str) -> None:
    await _events(
        database_url, [_recent(100, seconds=60), _recent(9_000, seconds=600), _recent(50_000, seconds=7200)]
    )
    five = await _stats(database_url, window=WINDOW_5M)
    hour = await _stats(database_url, window=timedelta(hours=1))
    day = await _stats(database_url, window=timedelta(hours=24))
    assert (five.count, five.p99) == (1, 100.0)
    assert (hour.count, hour.p50) == (2, pytest.approx(4550.0))
    assert day.count == 3
    assert hour.until - hour.since == timedelta(hours=1)


async def test_filters_and_the_kind_column_select_the_rows(database_url: str) -> None:
    await _events(
        database_url,
        [_recent(1000, kind="rag")] * 10
        + [_recent(200, kind="conversational")] * 30
        + [("error", "rag", 70_000, False, timedelta(seconds=5))] * 5,
    )
    rag = await _stats(database_url, kind_column="query_kind", kind="rag")
    conversational = await _stats(database_url, kind_column="query_kind", kind="conversational")
    every_kind = await _stats(database_url, kind_column="query_kind")
    no_filter = await _stats(database_url, filters={})
    assert (rag.count, rag.p99) == (10, 1000.0)
    assert (conversational.count, conversational.p99) == (30, 200.0)
    assert every_kind.count == 40
    assert no_filter.count == 45 and no_filter.p99 == pytest.approx(70_000.0)


async def test_error_rate_needs_a_success_column(database_url: str) -> None:
    rows = (
        [_recent(100, success=False)] * 3 + [_recent(100, success=True)] * 36 + [_recent(100, success=None)]
    )
    await _events(database_url, rows)
    measured = await _stats(database_url)
    unrecorded = await _stats(database_url, success_column=None)
    assert measured.error_rate == pytest.approx(7.5)  # 3 of 40; an unknown outcome is not a failure
    assert unrecorded.error_rate is None and not unrecorded.errors_recorded
    assert unrecorded.count == 40


async def test_an_empty_window_has_no_percentiles_and_empty_buckets(database_url: str) -> None:
    await _events(database_url, [_recent(100, seconds=3600)])
    stats = await _stats(database_url, buckets=15)
    assert (stats.count, stats.p50, stats.p95, stats.p99, stats.error_rate) == (0, None, None, None, None)
    assert len(stats.series) == 15
    assert all(bucket.count == 0 and bucket.p95 is None for bucket in stats.series)


async def test_buckets_slice_the_window_with_the_same_percentiles(database_url: str) -> None:
    """1 h in 12 buckets of 5 min: a slow spell 2 minutes ago lands in the last bucket, a fast one in the 6th."""
    slow = [_recent(4000 + i, seconds=120) for i in range(20)]
    fast = [_recent(100 + i, seconds=60 * 32) for i in range(20)]
    await _events(database_url, slow + fast)
    stats = await _stats(database_url, window=timedelta(hours=1), buckets=12)
    assert stats.stride == timedelta(minutes=5)
    assert [bucket.count for bucket in stats.series] == [0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 20]
    [(p95_fast,)] = await _execute(
        database_url,
        "SELECT PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM events WHERE latency_ms < 1000",
    )
    assert stats.series[5].p95 == pytest.approx(p95_fast)
    assert stats.series[11].p50 == pytest.approx(4009.5)
    assert stats.series[0].start == stats.since
    assert stats.series[11].start == stats.since + timedelta(minutes=55)


# --- safety ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "agent_response' OR '1'='1",
        "x'; DROP TABLE events; --",
        "agent_response\\'; DELETE FROM events; --",
    ],
)
async def test_injection_in_filter_values_and_kind_changes_nothing(database_url: str, value: str) -> None:
    await _events(database_url, [_recent(100, kind="rag")] * 5)
    by_filter = await _stats(database_url, filters={"event_type": value})
    by_kind = await _stats(database_url, kind_column="query_kind", kind=value)
    assert by_filter.count == by_kind.count == 0
    [(left,)] = await _execute(database_url, "SELECT count(*) FROM events")
    assert left == 5


@pytest.mark.parametrize(
    ("names", "error"),
    [
        (
            {"table": 'events"; DROP TABLE events; --'},
            'relation "events"; drop table events; --" does not exist',
        ),
        ({"latency_column": "latency_ms) FROM events; DROP TABLE events; --"}, "does not exist"),
        ({"filters": {"1=1 OR event_type": "agent_response"}}, 'column "1=1 OR event_type" does not exist'),
    ],
)
async def test_names_are_quoted_identifiers(database_url: str, names: dict[str, Any], error: str) -> None:
    await _events(database_url, [_recent(100)])
    with pytest.raises(MetricsQueryError) as raised:
        await _stats(database_url, **names)
    assert error.lower() in str(raised.value).lower()
    [(left,)] = await _execute(database_url, "SELECT count(*) FROM events")
    assert left == 1


async def test_the_query_runs_in_a_read_only_transaction(database_url: str) -> None:
    """A view whose function writes stands for anything that would: the READ ONLY transaction refuses it."""
    await _events(database_url, [_recent(100)])
    await _execute(
        database_url,
        """CREATE TABLE audit (at timestamptz);
           CREATE FUNCTION touch() RETURNS integer LANGUAGE sql VOLATILE
               AS 'INSERT INTO audit VALUES (now()); SELECT 1';
           CREATE VIEW writing_events AS SELECT e.*, touch() AS touched FROM events e;""",
    )
    with pytest.raises(MetricsQueryError, match="cannot execute INSERT in a read-only transaction"):
        await _stats(database_url, table="writing_events")
    assert await _execute(database_url, "SELECT * FROM audit") == []


async def test_the_statement_timeout_cancels_the_query_on_the_server(database_url: str) -> None:
    """A view that sleeps 10 s: SET LOCAL statement_timeout cuts it at 0.3 s, well before our own client-side
    guard (timeout + 2 s) would, so it is the server that cancelled it."""
    await _events(database_url, [_recent(100)])
    await _execute(
        database_url,
        "CREATE VIEW slow_events AS SELECT e.* FROM events e CROSS JOIN (SELECT pg_sleep(10)) AS s",
    )
    with pytest.raises(QueryTimeout) as raised:
        await finishes(
            _stats(database_url, table="slow_events", statement_timeout=0.3), within=9, what="the query"
        )
    assert str(raised.value) == "the query timed out after 0.3 s"
    assert not raised.value.connecting
    assert raised.value.by_server  # Postgres cancelled it, not our client-side guard
    # The session is gone with its transaction: the sleeping query is not left running.
    running = await _execute(
        database_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mira-chatops /latency'"
    )
    assert running == [(0,)]


async def test_a_missing_table_is_one_clear_line(database_url: str) -> None:
    with pytest.raises(MetricsQueryError) as raised:
        await _stats(database_url, table="mira_events")
    assert str(raised.value) == 'relation "mira_events" does not exist'


async def test_an_unreachable_database_does_not_leak_the_dsn() -> None:
    dsn = f"postgresql://postgres:{SECRET}@127.0.0.1:{closed_port()}/events"
    with pytest.raises(MetricsQueryError) as raised:
        await _stats(dsn)
    assert str(raised.value) == "cannot reach the database: connection refused"
    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


async def test_a_database_that_never_answers_is_cut_at_the_connect_timeout() -> None:
    async with silent_server() as port:
        with pytest.raises(QueryTimeout) as raised:
            await finishes(
                _stats(f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/events", connect_timeout=0.5),
                within=10,
                what="the connection to a silent server",
            )
    assert raised.value.connecting
    assert str(raised.value) == "cannot reach the database: no answer within 0.5 s"


# --- the console demo's table ---------------------------------------------------------------------------------


async def test_demo_seed_is_labelled_realistic_and_idempotent(database_url: str) -> None:
    # Dated by the database's clock, the one latency_stats judges its windows by.
    inserted = await seed_demo_mira_events(database_url)
    assert 2000 <= inserted <= 10_000
    assert await seed_demo_mira_events(database_url) == 0
    [(comment, rows)] = await _execute(
        database_url, "SELECT obj_description('mira_events'::regclass, 'pg_class'), count(*) FROM mira_events"
    )
    assert comment == DEMO_COMMENT and "mira-bot console --demo" in comment
    assert rows == inserted

    mira = {"table": "mira_events", "filters": {"event_type": "agent_response"}, "success_column": "success"}
    five = await latency_stats(database_url, window=WINDOW_5M, buckets=15, **mira)
    hour = await latency_stats(database_url, window=timedelta(hours=1), buckets=12, **mira)
    week = await latency_stats(database_url, window=timedelta(days=7), buckets=28, **mira)
    assert 50 <= five.count <= 200, "the default window has something to measure"
    assert five.p95 is not None and five.p95 < 3000, "normally within Mira's SLO"
    assert hour.p95 is not None and hour.p95 > 3000, "the last hour's slowdown breaches it"
    hour_p95 = [bucket.p95 or 0 for bucket in hour.series]
    assert max(hour_p95) > 2 * min(hour_p95), "the bump is visible in the trend"
    assert week.count == inserted
    assert week.error_rate is not None and 0 < week.error_rate < 10
