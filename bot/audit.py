"""The audit trail: one row per mutation or refusal — who, what, before, after, when, and the backend's answer.

Shared by every capability that changes production (flags now, rollbacks later), so that "who turned Mira off at
02:14" has one answer in one table.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


async def audit(
    db: AsyncConnectionPool | AsyncConnection[Any],
    *,
    actor: str,
    action: str,
    outcome: str,
    service: str | None = None,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
    detail: Any = None,
) -> int:
    """Write one audit row and return its id. Pass a connection to write inside the caller's transaction."""
    sql = """INSERT INTO audit_log (actor, action, service, target, before, after, outcome, detail)
             VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"""
    params = (actor, action, service, target, Jsonb(before), Jsonb(after), outcome, Jsonb(detail))
    if isinstance(db, AsyncConnectionPool):
        async with db.connection() as conn:
            row = await (await conn.execute(sql, params)).fetchone()
    else:
        row = await (await db.execute(sql, params)).fetchone()
    assert row is not None
    return int(row[0])
