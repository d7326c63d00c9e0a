"""Read-only latency queries on a service's own events table (the runbooks' hand-typed PERCENTILE_CONT SQL).

This module knows nothing about Slack or the catalog: `latency_stats` takes plain parameters and returns
:class:`LatencyStats`, or raises :class:`MetricsQueryError` whose `str()` is one human line without credentials.

Safety rules:

* Table and column names are composed with `psycopg.sql.Identifier`; filter values, the kind and the window are
  bound parameters. Nothing a user or the catalog supplies is pasted into SQL text.
* The query runs in a READ ONLY transaction with `SET LOCAL statement_timeout`, so the service's database
  cancels it server-side at the budget; an outer `asyncio.timeout` (budget + grace) covers a network that never
  answers at all. Connecting has its own bound. That part is integrations/read_only_db.py, which /diag shares.
* One statement, one scan: the overall percentiles and the per-bucket trend come from `GROUPING SETS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql

from integrations.read_only_db import QueryTimeout, ReadOnlyQueryError, fetch_read_only

__all__ = ["Bucket", "LatencyStats", "MetricsQueryError", "QueryTimeout", "latency_stats"]

APPLICATION_NAME = "mira-chatops /latency"

#: The error every failure of the query is (a missing table, a timeout, an unreachable database): the read-only
#: runner's, under the name /latency always gave it.
MetricsQueryError = ReadOnlyQueryError


@dataclass(frozen=True)
class Bucket:
    """One slice of the window: `[start, start + stride)`; percentiles are None when it had no latencies."""

    start: datetime
    count: int
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles in the latency column's unit (ms), error_rate in percent.

    `count` is every matching event in the window; the percentiles ignore events without a latency (as
    PERCENTILE_CONT does). `error_rate` is None when the source records no success column (`errors_recorded`
    False) or when there were no events.
    """

    p50: float | None
    p95: float | None
    p99: float | None
    count: int
    error_rate: float | None
    errors_recorded: bool
    since: datetime
    until: datetime
    stride: timedelta
    series: tuple[Bucket, ...]


def _identifier(name: str) -> sql.Identifier:
    """`table` or `schema.table` as a quoted identifier."""
    return sql.Identifier(*name.split("."))


def build_query(
    *,
    table: str,
    latency_column: str,
    time_column: str,
    filters: Mapping[str, str],
    kind_column: str | None,
    success_column: str | None,
    kind: str | None,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement and the names of the parameters it binds (the caller adds window, stride, last)."""
    time_col = sql.Identifier(time_column)
    conditions = [sql.SQL("{} >= now() - %(window)s").format(time_col)]
    params: dict[str, Any] = {}
    for index, (column, value) in enumerate(filters.items()):
        conditions.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(f"f{index}")))
        params[f"f{index}"] = value
    if kind is not None:
        if kind_column is None:
            raise ValueError("a kind was asked for but the source has no kind column")
        conditions.append(sql.SQL("{} = %(kind)s").format(sql.Identifier(kind_column)))
        params["kind"] = kind
    failed = (
        sql.SQL("({} IS FALSE)").format(sql.Identifier(success_column))
        if success_column
        else sql.SQL("NULL::boolean")
    )
    query = sql.SQL(
        """
        WITH matching AS (
            SELECT {latency}::float8 AS latency,
                   {failed} AS failed,
                   LEAST(
                       floor(extract(epoch FROM {time} - (now() - %(window)s))::float8 / %(stride)s)::int,
                       %(last)s
                   ) AS bucket
            FROM {table}
            WHERE {conditions}
        )
        SELECT GROUPING(bucket) = 1 AS overall,
               bucket,
               count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY latency),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY latency),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY latency),
               count(*) FILTER (WHERE failed),
               now(),
               now() - %(window)s
        FROM matching
        GROUP BY GROUPING SETS ((), (bucket))
        ORDER BY overall DESC, bucket
        """
    ).format(
        latency=sql.Identifier(latency_column),
        failed=failed,
        time=time_col,
        table=_identifier(table),
        conditions=sql.SQL(" AND ").join(conditions),
    )
    return query, params


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


async def latency_stats(
    dsn: str,
    *,
    table: str,
    latency_column: str = "latency_ms",
    time_column: str = "created_at",
    filters: Mapping[str, str] | None = None,
    kind_column: str | None = None,
    success_column: str | None = None,
    window: timedelta,
    kind: str | None = None,
    buckets: int = 12,
    statement_timeout: float = 5.0,
    connect_timeout: float = 3.0,
) -> LatencyStats:
    """p50/p95/p99 (PERCENTILE_CONT), count and error rate over `window`, plus `buckets` equal slices of it."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    query, params = build_query(
        table=table,
        latency_column=latency_column,
        time_column=time_column,
        filters=filters or {},
        kind_column=kind_column,
        success_column=success_column,
        kind=kind,
    )
    stride = window / buckets
    params |= {"window": window, "stride": stride.total_seconds(), "last": buckets - 1}
    result = await fetch_read_only(
        dsn,
        query,
        params,
        statement_timeout=statement_timeout,
        connect_timeout=connect_timeout,
        application_name=APPLICATION_NAME,
    )
    rows = result.rows
    return _stats(rows, buckets=buckets, stride=stride, errors_recorded=success_column is not None)


def _stats(rows: list[Any], *, buckets: int, stride: timedelta, errors_recorded: bool) -> LatencyStats:
    overall = rows[0]
    assert overall[0] is True, "the grand total comes first"
    count = int(overall[2])
    until, since = overall[7], overall[8]
    by_bucket = {int(row[1]): row for row in rows[1:] if row[1] is not None}
    series = []
    for index in range(buckets):
        row = by_bucket.get(index)
        series.append(
            Bucket(
                start=since + stride * index,
                count=int(row[2]) if row else 0,
                p50=_float(row[3]) if row else None,
                p95=_float(row[4]) if row else None,
                p99=_float(row[5]) if row else None,
            )
        )
    error_rate = 100.0 * int(overall[6]) / count if errors_recorded and count else None
    return LatencyStats(
        p50=_float(overall[3]),
        p95=_float(overall[4]),
        p99=_float(overall[5]),
        count=count,
        error_rate=error_rate,
        errors_recorded=errors_recorded,
        since=since,
        until=until,
        stride=stride,
        series=tuple(series),
    )
