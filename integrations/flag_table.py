"""Feature flags kept in a table of the service's own database (Ivy v2, AI Assistant, FA AI System).

Those services read their flags from one small table (documented in the README, DDL below), so flipping a flag is
an upsert there and "back to the default" is deleting the row.  The catalog gives the DSN and the table name
(``flag_store: {dsn, table: feature_flags}``).

* The table name comes from configuration, so it is checked against a strict pattern and always composed with
  ``psycopg.sql.Identifier`` -- never formatted into SQL.  Values are always bound parameters.
* :meth:`PostgresFlagTable.set` writes every value in one transaction: a preset lands whole or not at all.
* A connection per call: flag changes are rare, and a pool would hold connections to four production databases
  for nothing.  Each call is bounded by ``asyncio.timeout`` (libpq's ``connect_timeout`` is whole seconds, at
  least 2, and does not cover the query).
* Errors become :class:`FlagBackendError` with a one-line cause -- never the DSN or its password, which are also
  scrubbed from driver messages in case the server or libpq echoed them.

:meth:`PostgresFlagTable.ensure_table` exists for the console demo and the tests; ``read``/``set``/``unset`` never
create the table, because a missing table in production means the catalog points at the wrong database, and
creating one there would make the flag change "succeed" where the service never looks.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from integrations.flag_backends import BackendResponse, FlagBackendError, StoredFlag
from integrations.postgres_errors import dsn_password, first_line, postgres_error_detail, scrub_credentials

__all__ = ["FLAG_TABLE_DDL", "TABLE_NAME_RE", "PostgresFlagTable"]

_T = TypeVar("_T")

#: The table a service reads its flags from; ``{table}`` is the (optionally schema-qualified) table name.
FLAG_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    "name text PRIMARY KEY, "
    "value text NOT NULL, "
    "updated_at timestamptz NOT NULL DEFAULT now(), "
    "updated_by text)"
)

#: ``table`` or ``schema.table``, lower-case identifiers only: nothing that needs quoting, nothing to inject.
TABLE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")

_UNREACHABLE = "the flag table's database is unreachable"
_LOGIN_REFUSED = "the flag table's database refused the login"


def _table_identifier(table: str) -> sql.Identifier:
    if not isinstance(table, str) or not TABLE_NAME_RE.match(table):
        raise ValueError(
            f"invalid flag table name {table!r}: expected `table` or `schema.table` in lower-case letters, "
            "digits and underscores"
        )
    return sql.Identifier(*table.split("."))


def _rows(count: int, verb: str) -> str:
    return f"{count} row{'' if count == 1 else 's'} {verb}"


class PostgresFlagTable:
    """:class:`~integrations.flag_backends.FlagBackend` over ``table`` in the database at ``dsn``."""

    kind = "postgres_table"

    def __init__(
        self,
        dsn: str,
        table: str = "feature_flags",
        timeout: float = 5.0,  # noqa: ASYNC109 -- enforced with asyncio.timeout around each call
    ) -> None:
        self._table = _table_identifier(table)  # before anything else: a bad name never reaches SQL
        self.table = table
        self._dsn = dsn
        self._password = dsn_password(dsn)
        self.timeout = timeout

    def __repr__(self) -> str:  # never the DSN
        return f"PostgresFlagTable(table={self.table!r})"

    # ---------------------------------------------------------------------------------------- interface

    async def ensure_table(self) -> None:
        """Create the documented table if it is missing (console demo and tests; never implied by a write)."""

        async def create(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(sql.SQL(FLAG_TABLE_DDL).format(table=self._table))  # type: ignore[arg-type]

        await self._run(create)

    async def read(self, names: Sequence[str]) -> dict[str, StoredFlag]:
        """One SELECT for all ``names``; each gets an entry, ``present=False`` without a row."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        query = sql.SQL("SELECT name, value FROM {table} WHERE name = ANY(%s)").format(table=self._table)

        async def select(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
            cursor = await conn.execute(query, (wanted,))
            return {str(name): str(value) for name, value in await cursor.fetchall()}

        found = await self._run(select)
        return {name: StoredFlag(name=name, value=found.get(name), present=name in found) for name in wanted}

    async def set(self, values: Mapping[str, str], *, actor: str | None = None) -> BackendResponse:
        """Upsert every value in one transaction, recording ``actor`` in ``updated_by``."""
        if not values:
            raise ValueError("nothing to set")
        query = sql.SQL(
            "INSERT INTO {table} AS t (name, value, updated_by) VALUES (%s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), "
            "updated_by = EXCLUDED.updated_by "
            "RETURNING (xmax = 0)"
        ).format(table=self._table)
        params = [(name, value, actor) for name, value in values.items()]

        async def upsert(conn: psycopg.AsyncConnection[Any]) -> tuple[int, int]:
            inserted = updated = 0
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(query, params, returning=True)
                while True:
                    row = await cursor.fetchone()
                    if row is not None:
                        if row[0]:
                            inserted += 1
                        else:
                            updated += 1
                    if not cursor.nextset():
                        break
            return inserted, updated

        inserted, updated = await self._run(upsert)
        parts = [_rows(updated, "updated")] if updated or not inserted else []
        if inserted:
            parts.insert(0, _rows(inserted, "inserted"))
        return BackendResponse(status=200, summary=", ".join(parts))

    async def unset(self, names: Sequence[str], *, actor: str | None = None) -> BackendResponse:
        """Delete the rows, so the service uses its own default.  ``actor`` has no row left to go in."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            raise ValueError("nothing to unset")
        query = sql.SQL("DELETE FROM {table} WHERE name = ANY(%s)").format(table=self._table)

        async def delete(conn: psycopg.AsyncConnection[Any]) -> int:
            async with conn.transaction():
                cursor = await conn.execute(query, (wanted,))
                return max(cursor.rowcount, 0)

        deleted = await self._run(delete)
        return BackendResponse(status=200, summary=_rows(deleted, "deleted"))

    # ---------------------------------------------------------------------------------------- internals

    async def _run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[_T]]) -> _T:
        """Connect, run ``work(conn)``, close -- all within :attr:`timeout`; every failure a FlagBackendError."""
        conn: psycopg.AsyncConnection[Any] | None = None
        connected = False
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    conn = await psycopg.AsyncConnection.connect(
                        self._dsn, connect_timeout=max(2, math.ceil(self.timeout)), autocommit=True
                    )
                    connected = True
                    return await work(conn)
            finally:
                if conn is not None:
                    with suppress(Exception):
                        async with asyncio.timeout(1.0):
                            await conn.close()
        except TimeoutError:
            what = "did not answer" if connected else "could not be reached"
            raise FlagBackendError(f"the flag table's database {what} within {self.timeout:.1f} s") from None
        except psycopg.ProgrammingError as exc:
            if not connected:
                # A malformed conninfo: its message may quote the DSN, so say nothing more.
                raise FlagBackendError("the flag table's DSN is invalid") from None
            raise FlagBackendError(self._sql_error(exc)) from None
        except psycopg.Error as exc:
            if not connected:
                cause = self._connect_cause(exc)
                if cause == "authentication failed" or "does not exist" in cause:
                    raise FlagBackendError(f"{_LOGIN_REFUSED} ({cause})") from None
                raise FlagBackendError(f"{_UNREACHABLE} ({cause})") from None
            raise FlagBackendError(self._sql_error(exc)) from None

    def _connect_cause(self, exc: psycopg.Error) -> str:
        """Why connecting failed, e.g. "connection refused" or 'role "x" does not exist' (the budget is in _run)."""
        return scrub_credentials(postgres_error_detail(exc, host=None, timeout=None), self._password)

    def _sql_error(self, exc: psycopg.Error) -> str:
        """The server's primary message ('relation "feature_flags" does not exist'), one line, no secrets."""
        message = exc.diag.message_primary if exc.diag is not None else None
        return scrub_credentials(first_line(message or str(exc), 200), self._password) or type(exc).__name__
