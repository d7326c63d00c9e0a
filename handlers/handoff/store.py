"""The weekly handoff checklist in Postgres: the claim on a rotation's post, ticks, and claimed thread replies.

Exactly once is decided here, by rows rather than by flags in a process (Grafana OnCall's
`UPDATE … WHERE sent = false`): the replica whose `INSERT INTO handoffs` went in posts the rotation's checklist;
a claim whose poster died (no `ts` after `stale`) is taken over by a conditional UPDATE; each thread reply is
claimed by `(handoff, key)` in `handoff_replies` before it is posted (bot/reply_claims.py). A tick or untick
changes one row under the checklist's row lock, bumps `version` and writes its audit row in the same
transaction, so concurrent clicks serialize and the message edits can converge on the newest version (see handlers/handoff/checklist.py `refresh_message`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.audit import audit


@dataclass(frozen=True)
class Tick:
    item: int
    by: str
    at: datetime


@dataclass(frozen=True)
class HandoffRecord:
    id: int
    rotation: datetime
    channel: str
    channel_id: str | None
    ts: str | None
    claimed_at: datetime
    posted_at: datetime | None
    posted_by: str | None
    items: tuple[dict[str, Any], ...]
    roster: dict[str, Any] | None
    evidence: dict[str, Any] | None
    version: int
    completed_at: datetime | None
    ticks: dict[int, Tick] = field(default_factory=dict)

    @property
    def numbers(self) -> list[int]:
        return list(range(1, len(self.items) + 1))

    @property
    def open_items(self) -> list[int]:
        return [n for n in self.numbers if n not in self.ticks]

    @property
    def complete(self) -> bool:
        return not self.open_items

    def text_of(self, item: int) -> str:
        return str(self.items[item - 1].get("text", ""))


@dataclass(frozen=True)
class TickChange:
    """What a tick or untick did: `changed` False when the item already was in the asked state."""

    record: HandoffRecord
    changed: bool
    before: Tick | None
    after: Tick | None
    completed_now: bool


async def _ticks(conn: AsyncConnection[Any], handoff_id: int) -> dict[int, Tick]:
    cursor = await conn.execute(
        "SELECT item, ticked_by, ticked_at FROM handoff_ticks WHERE handoff_id = %s ORDER BY item",
        (handoff_id,),
    )
    return {item: Tick(item, by, at) for item, by, at in await cursor.fetchall()}


_RECORD_BY = {
    "id": "SELECT * FROM handoffs WHERE id = %s",
    "rotation": "SELECT * FROM handoffs WHERE rotation = %s",
}


async def _record(conn: AsyncConnection[Any], where: str, value: Any) -> HandoffRecord | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(_RECORD_BY[where], (value,))
    row = await cursor.fetchone()
    if row is None:
        return None
    return HandoffRecord(
        id=row["id"],
        rotation=row["rotation"],
        channel=row["channel"],
        channel_id=row["channel_id"],
        ts=row["ts"],
        claimed_at=row["claimed_at"],
        posted_at=row["posted_at"],
        posted_by=row["posted_by"],
        items=tuple(row["items"]),
        roster=row["roster"],
        evidence=row["evidence"],
        version=row["version"],
        completed_at=row["completed_at"],
        ticks=await _ticks(conn, row["id"]),
    )


async def by_rotation(pool: AsyncConnectionPool, rotation: datetime) -> HandoffRecord | None:
    async with pool.connection() as conn:
        return await _record(conn, "rotation", rotation)


async def by_id(pool: AsyncConnectionPool, handoff_id: int) -> HandoffRecord | None:
    async with pool.connection() as conn:
        return await _record(conn, "id", handoff_id)


async def by_message(pool: AsyncConnectionPool, channel_id: str, ts: str) -> HandoffRecord | None:
    """The checklist a click came from, by the message it is on."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT id FROM handoffs WHERE channel_id = %s AND ts = %s", (channel_id, ts))
        ).fetchone()
        return await _record(conn, "id", row[0]) if row else None


async def claim(
    pool: AsyncConnectionPool,
    rotation: datetime,
    *,
    channel: str,
    items: list[dict[str, Any]],
    owner: str,
    now: datetime,
) -> tuple[HandoffRecord, bool]:
    """The rotation's checklist and whether this caller inserted its row (and so must post it)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            """INSERT INTO handoffs (rotation, channel, claimed_by, claimed_at, items)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT (rotation) DO NOTHING""",
            (rotation, channel, owner, now, Jsonb(items)),
        )
        record = await _record(conn, "rotation", rotation)
    assert record is not None
    return record, cursor.rowcount == 1


async def take(
    pool: AsyncConnectionPool,
    rotation: datetime,
    *,
    channel: str,
    items: list[dict[str, Any]],
    owner: str,
    now: datetime,
    attempted_at: datetime,
) -> HandoffRecord | None:
    """Take over a claim that was never posted, as long as it is still the attempt of `attempted_at`: the record
    as taken, or None when another caller took it first."""
    async with pool.connection() as conn:
        taken = await conn.execute(
            """UPDATE handoffs SET claimed_by = %s, claimed_at = %s, channel = %s, items = %s
               WHERE rotation = %s AND ts IS NULL AND claimed_at = %s""",
            (owner, now, channel, Jsonb(items), rotation, attempted_at),
        )
        return await _record(conn, "rotation", rotation) if taken.rowcount == 1 else None


async def mark_uncertain(
    pool: AsyncConnectionPool, handoff_id: int, now: datetime, claimed: datetime
) -> None:
    """The post begun at `now` may have been stored by Slack: the claim stays, looked up once `claimed` is stale."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE handoffs SET claimed_at = %s WHERE id = %s AND ts IS NULL AND claimed_at = %s",
            (claimed, handoff_id, now),
        )


async def release(pool: AsyncConnectionPool, handoff_id: int) -> None:
    """Give up a claim whose post failed, so `/oncall handoff` (or the next run) can post at once."""
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM handoffs WHERE id = %s AND ts IS NULL", (handoff_id,))


async def mark_posted(
    pool: AsyncConnectionPool,
    handoff_id: int,
    *,
    channel_id: str,
    ts: str,
    roster: dict[str, Any],
    evidence: dict[str, Any],
    posted_at: datetime,
    posted_by: str | None,
) -> HandoffRecord:
    async with pool.connection() as conn:
        await conn.execute(
            """UPDATE handoffs SET channel_id = %s, ts = %s, roster = %s, evidence = %s, posted_at = %s,
                   posted_by = %s
               WHERE id = %s""",
            (channel_id, ts, Jsonb(roster), Jsonb(evidence), posted_at, posted_by, handoff_id),
        )
        record = await _record(conn, "id", handoff_id)
    assert record is not None
    return record


async def bump(pool: AsyncConnectionPool, handoff_id: int) -> None:
    """Something the message shows changed outside the ticks (a test result): edits must catch up."""
    async with pool.connection() as conn:
        await conn.execute("UPDATE handoffs SET version = version + 1 WHERE id = %s", (handoff_id,))


async def update_evidence(
    pool: AsyncConnectionPool, handoff_id: int, kind: str, part: dict[str, Any]
) -> None:
    """Replace one kind of the stored evidence (the alerts after a PagerDuty test proved them) and bump the version,
    so the message edits catch up."""
    async with pool.connection() as conn:
        await conn.execute(
            """UPDATE handoffs SET evidence = jsonb_set(COALESCE(evidence, '{}'::jsonb), %s, %s),
                   version = version + 1
               WHERE id = %s""",
            ([kind], Jsonb(part), handoff_id),
        )


async def version(pool: AsyncConnectionPool, handoff_id: int) -> int | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT version FROM handoffs WHERE id = %s", (handoff_id,))
        ).fetchone()
    return int(row[0]) if row else None


async def set_tick(
    pool: AsyncConnectionPool, handoff_id: int, item: int, ticked: bool, *, actor: str, now: datetime
) -> TickChange | None:
    """Tick or untick `item` for `actor`; None when the checklist or the item does not exist. Audited."""
    async with pool.connection() as conn, conn.transaction():
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            "SELECT rotation, items, completed_at FROM handoffs WHERE id = %s FOR UPDATE", (handoff_id,)
        )
        row = await cursor.fetchone()
        if row is None or not 1 <= item <= len(row["items"]):
            return None
        existing = (await _ticks(conn, handoff_id)).get(item)
        after: Tick | None = existing
        if ticked and existing is None:
            after = Tick(item, actor, now)
            await conn.execute(
                "INSERT INTO handoff_ticks (handoff_id, item, ticked_by, ticked_at) VALUES (%s, %s, %s, %s)",
                (handoff_id, item, actor, now),
            )
        elif not ticked and existing is not None:
            after = None
            await conn.execute(
                "DELETE FROM handoff_ticks WHERE handoff_id = %s AND item = %s", (handoff_id, item)
            )
        changed = after is not existing
        completed_now = False
        if changed:
            count = len(await _ticks(conn, handoff_id))
            complete = count == len(row["items"])
            completed_now = complete and row["completed_at"] is None
            await conn.execute(
                """UPDATE handoffs SET version = version + 1,
                       completed_at = CASE WHEN %s THEN COALESCE(completed_at, %s) END
                   WHERE id = %s""",
                (complete, now, handoff_id),
            )
            await audit(
                conn,
                actor=actor,
                action="handoff.tick" if ticked else "handoff.untick",
                outcome="ok",
                target=f"handoff {row['rotation']:%Y-%m-%d %H:%M} item {item}",
                before=_tick_json(existing),
                after=_tick_json(after),
                detail={"handoff_id": handoff_id, "item": item, "text": row["items"][item - 1].get("text")},
            )
        record = await _record(conn, "id", handoff_id)
    assert record is not None
    return TickChange(record, changed, existing, after, completed_now)


def _tick_json(tick: Tick | None) -> dict[str, Any]:
    if tick is None:
        return {"ticked": False}
    return {"ticked": True, "by": tick.by, "at": tick.at.isoformat()}
