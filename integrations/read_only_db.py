"""One statement on a service's own database, read-only and bounded in time: what /latency and /diag run.

This module knows nothing about Slack or the catalog: `fetch_read_only` takes a DSN, a statement and its bound
parameters, and returns the rows, or raises :class:`ReadOnlyQueryError` whose `str()` is one human line without
credentials (scrubbed through integrations/postgres_errors.py).

The two guards, both needed:

* The statement runs in a READ ONLY transaction (psycopg opens it with BEGIN READ ONLY; it is never committed,
  closing the connection ends it) with `SET LOCAL statement_timeout`, so Postgres refuses any write
  (:class:`WriteRefused`, SQLSTATE 25006) and cancels the query at the budget (:class:`QueryTimeout`,
  `by_server`).
* An outer `asyncio.timeout` (budget + `CLIENT_GRACE_S`) covers a network that never answers at all; connecting
  has its own bound.

A missing table or column is :class:`UndefinedObject` (with `kind` and the server's message), so a caller can say
which catalog entry to fix.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import errors, sql

from integrations.postgres_errors import dsn_host, dsn_password, postgres_error_detail, scrub_credentials

__all__ = [
    "CLIENT_GRACE_S",
    "QueryTimeout",
    "ReadOnlyQueryError",
    "ReadOnlyRows",
    "UndefinedObject",
    "WriteRefused",
    "fetch_read_only",
]

#: Extra time past the server-side statement_timeout before we stop waiting ourselves.
CLIENT_GRACE_S = 2.0


class ReadOnlyQueryError(Exception):
    """The query could not answer; `str()` is one line for the user (no DSN, no password)."""


class QueryTimeout(ReadOnlyQueryError):
    """The statement (`connecting` False) or the connection took longer than its budget. `by_server` says that
    Postgres' own statement_timeout cancelled the query (the normal case) rather than our client-side guard."""

    def __init__(self, timeout_s: float, *, connecting: bool = False, by_server: bool = False) -> None:
        super().__init__(
            f"cannot reach the database: no answer within {timeout_s:g} s"
            if connecting
            else f"the query timed out after {timeout_s:g} s"
        )
        self.timeout_s = timeout_s
        self.connecting = connecting
        self.by_server = by_server


class UndefinedObject(ReadOnlyQueryError):
    """The statement names a table (`kind` "table") or column ("column") the database lacks."""

    def __init__(self, message: str, *, kind: Literal["table", "column"]) -> None:
        super().__init__(message)
        self.kind = kind


class WriteRefused(ReadOnlyQueryError):
    """Postgres refused a write inside the READ ONLY transaction (SQLSTATE 25006 read_only_sql_transaction)."""


@dataclass(frozen=True)
class ReadOnlyRows:
    """The result: column names as the statement returns them (cursor.description), and the rows."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    database: str | None  # the database's name, for "does not exist in database x"


def _primary(exc: psycopg.Error) -> str | None:
    return exc.diag.message_primary if isinstance(exc, psycopg.DatabaseError) else None


def error_message(exc: psycopg.Error, *, host: str | None, timeout: float) -> str:
    """One line a person can act on; server-side messages name tables/columns, never credentials."""
    if isinstance(exc, errors.UndefinedTable | errors.UndefinedColumn | errors.InsufficientPrivilege):
        return (_primary(exc) or str(exc)).strip()
    if isinstance(exc, psycopg.OperationalError):
        return f"cannot reach the database: {postgres_error_detail(exc, host=host, timeout=timeout)}"
    return (_primary(exc) or postgres_error_detail(exc, host=host, timeout=timeout)).strip()


def _typed(exc: psycopg.Error, message: str) -> ReadOnlyQueryError:
    if isinstance(exc, errors.UndefinedTable):
        return UndefinedObject(message, kind="table")
    if isinstance(exc, errors.UndefinedColumn):
        return UndefinedObject(message, kind="column")
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return WriteRefused(message)
    return ReadOnlyQueryError(message)


async def fetch_read_only(
    dsn: str,
    statement: sql.SQL | sql.Composed,
    params: Mapping[str, Any],
    *,
    statement_timeout: float,
    connect_timeout: float = 3.0,
    application_name: str = "mira-chatops",
    max_rows: int | None = None,
) -> ReadOnlyRows:
    """Run `statement` with `params` in a READ ONLY transaction bounded by `statement_timeout` seconds; at most
    `max_rows` rows are fetched (None: all)."""
    timeout_ms = max(1, math.ceil(statement_timeout * 1000))
    secret, host = dsn_password(dsn), dsn_host(dsn)
    conn: psycopg.AsyncConnection[Any] | None = None
    try:
        try:
            async with asyncio.timeout(connect_timeout):
                conn = await psycopg.AsyncConnection.connect(
                    dsn, connect_timeout=max(2, math.ceil(connect_timeout)), application_name=application_name
                )
        except TimeoutError:
            raise QueryTimeout(connect_timeout, connecting=True) from None
        await conn.set_read_only(True)
        try:
            async with asyncio.timeout(statement_timeout + CLIENT_GRACE_S):
                await conn.execute(
                    sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout_ms))
                )
                cursor = await conn.execute(statement, dict(params))
                columns = [column.name for column in cursor.description or []]
                rows = await (cursor.fetchmany(max_rows) if max_rows is not None else cursor.fetchall())
        except TimeoutError:
            raise QueryTimeout(statement_timeout) from None
        return ReadOnlyRows(columns=columns, rows=[tuple(row) for row in rows], database=conn.info.dbname)
    except errors.QueryCanceled:
        raise QueryTimeout(statement_timeout, by_server=True) from None
    except psycopg.ProgrammingError as exc:
        if conn is None:  # a malformed conninfo; its message may quote the DSN
            raise ReadOnlyQueryError("invalid DSN") from None
        message = scrub_credentials(error_message(exc, host=host, timeout=connect_timeout), secret)
        raise _typed(exc, message) from None
    except psycopg.Error as exc:
        message = scrub_credentials(error_message(exc, host=host, timeout=connect_timeout), secret)
        raise _typed(exc, message) from None
    finally:
        if conn is not None:
            with suppress(Exception):
                async with asyncio.timeout(1.0):
                    await conn.close()
