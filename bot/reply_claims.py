"""A `ClaimStore` (bot/slack_once.py) over one row of a capability's table of claimed thread replies.

The handoff checklist's reminders and summary (`handoff_replies`) and a scheduled check's thread diagnostics
(`report_replies`) claim each reply the same way: a row per reply, keyed by the capability's own columns, with
`claimed_at` (when an attempt began) and `ts` (set once posted). The caller whose INSERT went in posts; a row
without a `ts` is an attempt of unknown outcome since `claimed_at`, taken over only by an UPDATE conditional on
that very `claimed_at`. Each capability keeps its table (and its migration); this module is the one copy of the
SQL, composed from identifiers so no outside text reaches it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from bot.slack_once import ClaimState


class RowReplyClaims:
    """The claim on one reply: the row of `table` whose `key` columns hold the given values."""

    def __init__(self, pool: AsyncConnectionPool, table: str, key: dict[str, Any]) -> None:
        self.pool = pool
        self._table = sql.Identifier(table)
        self._columns = sql.SQL(", ").join(sql.Identifier(column) for column in key)
        self._where = sql.SQL(" AND ").join(
            sql.SQL("{} = %s").format(sql.Identifier(column)) for column in key
        )
        self._values = tuple(key.values())

    async def claim(self, now: datetime) -> ClaimState:
        """Insert the claim (ours) or read the one there is."""
        insert = sql.SQL("INSERT INTO {} ({}, claimed_at) VALUES ({}, %s) ON CONFLICT DO NOTHING").format(
            self._table, self._columns, sql.SQL(", ").join(sql.Placeholder() for _ in self._values)
        )
        select = sql.SQL("SELECT ts, claimed_at FROM {} WHERE {}").format(self._table, self._where)
        async with self.pool.connection() as conn:
            if (await conn.execute(insert, (*self._values, now))).rowcount == 1:
                return ClaimState(ours=True)
            row = await (await conn.execute(select, self._values)).fetchone()
        if row is None:  # released just now: the next attempt claims it afresh
            return ClaimState(attempted_at=now)
        return ClaimState(ts=row[0], attempted_at=row[1])

    async def _restamp(self, was: datetime | None, claimed: datetime | None) -> bool:
        """Move the unposted claim from `was` to `claimed` (None: drop it); True when it moved."""
        if claimed is None:
            statement = sql.SQL("DELETE FROM {} WHERE {} AND ts IS NULL AND claimed_at = %s").format(
                self._table, self._where
            )
            params: tuple[Any, ...] = (*self._values, was)
        else:
            statement = sql.SQL(
                "UPDATE {} SET claimed_at = %s WHERE {} AND ts IS NULL AND claimed_at = %s"
            ).format(self._table, self._where)
            params = (claimed, *self._values, was)
        async with self.pool.connection() as conn:
            return (await conn.execute(statement, params)).rowcount == 1

    async def take(self, now: datetime, attempted_at: datetime | None) -> bool:
        return await self._restamp(attempted_at, now)

    async def mark_uncertain(self, now: datetime, claimed: datetime) -> None:
        await self._restamp(now, claimed)

    async def release(self, now: datetime) -> None:
        await self._restamp(now, None)

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        statement = sql.SQL("UPDATE {} SET ts = %s WHERE {} AND ts IS NULL").format(self._table, self._where)
        async with self.pool.connection() as conn:
            await conn.execute(statement, (ts, *self._values))
