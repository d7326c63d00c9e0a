"""Scheduled checks in Postgres: the claim on a report's message per slot (each diagnostic in its thread is claimed
in `report_replies` through bot/reply_claims.py).

Exactly once is decided by rows (the handoff's pattern, Grafana OnCall's `UPDATE … WHERE sent = false`): the
caller whose `INSERT INTO report_posts` went in posts the slot's message; a claim without a `ts` is an attempt
whose outcome is unknown since `claimed_at`, taken over only by a conditional UPDATE on that very `claimed_at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True)
class ReportSlot:
    """Which message: a service's report at one cron slot (UTC)."""

    service: str
    report: str
    slot: datetime

    @property
    def key(self) -> tuple[str, str, datetime]:
        return self.service, self.report, self.slot


@dataclass(frozen=True)
class PostRow:
    """The slot's claim as stored: `ts` once posted; `failed` the failing checks once evaluated (None: not yet)."""

    claimed_at: datetime
    channel_id: str | None
    ts: str | None
    failed: tuple[str, ...] | None


async def claim(
    pool: AsyncConnectionPool, slot: ReportSlot, *, channel: str, owner: str, now: datetime
) -> tuple[bool, PostRow]:
    """(inserted, the row): the caller whose row went in posts the message."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            """INSERT INTO report_posts (service, report, slot, channel, claimed_by, claimed_at)
               VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            (*slot.key, channel, owner, now),
        )
    found = await row(pool, slot)
    assert found is not None
    return cursor.rowcount == 1, found


async def row(pool: AsyncConnectionPool, slot: ReportSlot) -> PostRow | None:
    async with pool.connection() as conn:
        found = await (
            await conn.execute(
                """SELECT claimed_at, channel_id, ts, failed FROM report_posts
                   WHERE service = %s AND report = %s AND slot = %s""",
                slot.key,
            )
        ).fetchone()
    if found is None:
        return None
    claimed_at, channel_id, ts, failed = found
    return PostRow(claimed_at, channel_id, ts, tuple(failed) if failed is not None else None)


async def take(
    pool: AsyncConnectionPool, slot: ReportSlot, *, owner: str, now: datetime, was: datetime
) -> bool:
    """Take over an unposted claim whose attempt began at `was`; True for the one caller that did."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE report_posts SET claimed_by = %s, claimed_at = %s
               WHERE service = %s AND report = %s AND slot = %s AND ts IS NULL AND claimed_at = %s""",
            (owner, now, *slot.key, was),
        )
        return cursor.rowcount == 1


async def restamp(pool: AsyncConnectionPool, slot: ReportSlot, *, was: datetime, claimed: datetime) -> None:
    """The attempt begun at `was` may have been stored by Slack: looked up once `claimed` is stale."""
    async with pool.connection() as conn:
        await conn.execute(
            """UPDATE report_posts SET claimed_at = %s
               WHERE service = %s AND report = %s AND slot = %s AND ts IS NULL AND claimed_at = %s""",
            (claimed, *slot.key, was),
        )


async def release(pool: AsyncConnectionPool, slot: ReportSlot, *, was: datetime) -> None:
    """Slack refused the attempt begun at `was`: nothing was posted, the next run may post at once."""
    async with pool.connection() as conn:
        await conn.execute(
            """DELETE FROM report_posts
               WHERE service = %s AND report = %s AND slot = %s AND ts IS NULL AND claimed_at = %s""",
            (*slot.key, was),
        )


async def evaluated(pool: AsyncConnectionPool, slot: ReportSlot, failed: list[str]) -> None:
    """What the message about to be posted says failed: a replica that later finds the message (rather than
    posting it) still knows whether its thread needs the diagnostics."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE report_posts SET failed = %s WHERE service = %s AND report = %s AND slot = %s",
            (failed, *slot.key),
        )


async def posted(
    pool: AsyncConnectionPool, slot: ReportSlot, *, channel_id: str, ts: str, now: datetime
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            """UPDATE report_posts SET channel_id = %s, ts = %s, posted_at = %s
               WHERE service = %s AND report = %s AND slot = %s""",
            (channel_id, ts, now, *slot.key),
        )


async def unfinished(
    pool: AsyncConnectionPool, *, since: datetime, stale_before: datetime
) -> list[tuple[ReportSlot, bool, list[str]]]:
    """Slots since `since` whose work may be unfinished: (slot, posted, thread diagnostics posted). Unposted
    ones only when their attempt began before `stale_before` (a live poster is left alone); posted ones only
    when a check failed (their thread may lack a diagnostic)."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                """SELECT p.service, p.report, p.slot, p.ts IS NOT NULL,
                          COALESCE(array_agg(r.query) FILTER (WHERE r.ts IS NOT NULL), '{}')
                   FROM report_posts p
                   LEFT JOIN report_replies r USING (service, report, slot)
                   WHERE p.slot >= %s
                     AND ((p.ts IS NULL AND p.claimed_at < %s) OR (p.ts IS NOT NULL AND p.failed <> '{}'))
                   GROUP BY p.service, p.report, p.slot, p.ts""",
                (since, stale_before),
            )
        ).fetchall()
    return [
        (ReportSlot(service, report, slot), posted, list(done))
        for service, report, slot, posted, done in rows
    ]
