"""Storm digests: when more incidents arrive in a channel than STORM_THRESHOLD a minute, new ones join one digest
message instead of each posting a root, within Slack's per-channel rate. While the storm lasts an incident listed
in the digest stays there: its line shows its current state (the digest is edited at most every DIGEST_EDIT_EVERY,
the longest-dirty digest first within the workspace's edit allowance) and its events are lines in the digest's
thread, many incidents per reply (digest_thread.py). When the storm has passed its still-open incidents get their
own roots a few at a time, saying that their earlier events are in the digest's thread; the resolved ones stay."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from bot import slack_once
from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks, digest_thread
from handlers.incidents.events import view_of
from handlers.incidents.model import IncidentView, RetryLater
from handlers.incidents.threads import digest_key, ensure_root, mark_digest_dirty

log = logging.getLogger(__name__)


STORM_QUIET = timedelta(minutes=1)  # a storm has passed when its digest got nothing new for this long
DIGEST_EDIT_EVERY = timedelta(seconds=2)
PROMOTE_PER_PASS = 5  # after a storm, incidents leave the digest for their own root a few at a time


async def flush_digests(
    bot: BotContext, budget: ChannelBudget, now: datetime, *, edits_only: bool = False
) -> None:
    """Post or edit each dirty storm digest (at most every DIGEST_EDIT_EVERY; the longest-dirty first, so when
    the edit allowance is short no digest starves), post the next reply of each digest's thread, and end the
    storms that passed, giving their still-open incidents their own roots. `edits_only`: the edits alone (while
    a long delivery pass lasts: the state shown without waiting for the pass's posts)."""
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT * FROM storm_digests d WHERE ended_at IS NULL OR dirty_since IS NOT NULL
                   OR EXISTS (SELECT 1 FROM incident_replies q WHERE q.digest_id = d.id AND q.ts IS NULL)
               ORDER BY dirty_since NULLS LAST, id"""
        )
        digests = await cursor.fetchall()
    for index, digest in enumerate(digests):
        if digest["dirty_since"] is not None and (
            digest["ts"] is None or digest["dirty_since"] <= now - DIGEST_EDIT_EVERY
        ):
            await render_digest(bot, budget, digest, now)
            if digest["ts"] is None:  # just posted: its thread can start
                digests[index] = await _reload(bot, digest["id"]) or digest
    if edits_only:
        return
    for digest in digests:
        await digest_thread.flush_thread(bot, budget, digest, now)
        if digest["ended_at"] is None and await _storm_passed(bot, digest, now):
            await _end_storm(bot, budget, digest, now)


async def _reload(bot: BotContext, digest_id: int) -> dict[str, Any] | None:
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute("SELECT * FROM storm_digests WHERE id = %s", (digest_id,))
        return await cursor.fetchone()


async def digest_views(bot: BotContext, digest_id: int) -> list[IncidentView]:
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT i.* FROM incidents i JOIN incident_roots r ON r.incident_id = i.id
               WHERE r.in_digest = %s ORDER BY i.triggered_at NULLS LAST, i.id""",
            (digest_id,),
        )
        return [view_of(bot, row) for row in await cursor.fetchall()]


async def render_digest(
    bot: BotContext, budget: ChannelBudget, digest: dict[str, Any], now: datetime
) -> None:
    """Post the dirty digest, or edit it when the workspace's edit allowance has room (else it stays dirty).
    Claimed before the allowance is asked: two replicas may try the same digest at once, and each loser of the
    claim spent an edit of the minute's allowance for nothing (with delivery passes side by side, tried in issue 16,
    the storm's resolves waited a minute for the next one)."""
    async with bot.storage.pool.connection() as conn:
        claimed = await conn.execute(
            "UPDATE storm_digests SET dirty_since = NULL WHERE id = %s AND dirty_since = %s",
            (digest["id"], digest["dirty_since"]),
        )
        if claimed.rowcount != 1:
            return
        if digest["ts"] is not None and not await budget.allow_update():
            await conn.execute(  # keeps its place in line, as a root's edit does
                """UPDATE storm_digests SET dirty_since = LEAST(COALESCE(dirty_since, %s), %s)
                   WHERE id = %s""",
                (digest["dirty_since"], digest["dirty_since"], digest["id"]),
            )
            return
    try:
        await _show_digest(bot, budget, digest, now)
    except Exception as exc:
        if slack_once.permanently_refused(exc):  # even the fallback: another try would be refused too
            log.error("storm digest refused by Slack", exc_info=True, extra={"digest": digest["id"]})
            return
        await mark_digest_dirty(bot, digest["id"], now)  # edited on a later pass instead of lost
        if not isinstance(exc, RetryLater):
            log.warning("storm digest not shown yet", exc_info=True, extra={"digest": digest["id"]})


async def _show_digest(bot: BotContext, budget: ChannelBudget, digest: dict[str, Any], now: datetime) -> None:
    """Post the digest once (claimed by `posting_at`, found by its metadata after a crash), or edit it."""
    views = await digest_views(bot, digest["id"])
    text, digest_blocks, listed = blocks.render_digest_listing(views)
    fallback = blocks.digest_fallback(views)
    channel_id, ts = digest["channel_id"], digest["ts"]
    if ts is None:
        outcome = await slack_once.post_once(
            bot,
            budget,
            DigestClaims(bot, digest),
            digest["channel"],
            digest_key(digest["id"]),
            now,
            content={"text": text, "blocks": digest_blocks},
            fallback=fallback,
        )
        if outcome.status == "busy":
            raise RetryLater(f"digest {digest['id']} is being posted")
        if outcome.status != "found":
            await _listed(bot, digest, [view.id for view in views[:listed]], now)
            return
        channel_id, ts = outcome.channel_id, outcome.ts  # posted by an earlier attempt: shown as it is now
    await slack_once.update(bot, budget, channel_id, ts, fallback=fallback, text=text, blocks=digest_blocks)
    await _listed(bot, digest, [view.id for view in views[:listed]], now)


async def _listed(bot: BotContext, digest: dict[str, Any], incident_ids: list[str], now: datetime) -> None:
    """The digest shows these incidents' lines now: their lines in the digest's thread may follow."""
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """UPDATE incident_roots SET listed_at = %s
               WHERE in_digest = %s AND channel = %s AND incident_id = ANY(%s) AND listed_at IS NULL""",
            (now, digest["id"], digest["channel"], incident_ids),
        )


class DigestClaims:
    """The claim on a storm digest's post: its `storm_digests` row (`posting_at` while a post is under way)."""

    def __init__(self, bot: BotContext, digest: dict[str, Any]) -> None:
        self.bot, self.digest = bot, digest

    async def claim(self, now: datetime) -> slack_once.ClaimState:
        return slack_once.ClaimState(
            ts=self.digest["ts"], channel_id=self.digest["channel_id"], attempted_at=self.digest["posting_at"]
        )

    async def take(self, now: datetime, attempted_at: datetime | None) -> bool:
        async with self.bot.storage.pool.connection() as conn:
            taken = await conn.execute(
                """UPDATE storm_digests SET posting_at = %s
                   WHERE id = %s AND ts IS NULL AND posting_at IS NOT DISTINCT FROM %s""",
                (now, self.digest["id"], attempted_at),
            )
        return taken.rowcount == 1

    async def _restamp(self, now: datetime, attempted: datetime | None) -> None:
        async with self.bot.storage.pool.connection() as conn:
            await conn.execute(
                "UPDATE storm_digests SET posting_at = %s WHERE id = %s AND ts IS NULL AND posting_at = %s",
                (attempted, self.digest["id"], now),
            )

    async def mark_uncertain(self, now: datetime, claimed: datetime) -> None:
        await self._restamp(now, claimed)

    async def release(self, now: datetime) -> None:
        await self._restamp(now, None)

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        async with self.bot.storage.pool.connection() as conn:
            await conn.execute(
                "UPDATE storm_digests SET channel_id = %s, ts = %s WHERE id = %s",
                (channel_id, ts, self.digest["id"]),
            )


async def _storm_passed(bot: BotContext, digest: dict[str, Any], now: datetime) -> bool:
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT max(claimed_at) FROM incident_roots WHERE in_digest = %s", (digest["id"],)
            )
        ).fetchone()
    last = row[0] if row and row[0] else digest["started_at"]
    return bool(last <= now - STORM_QUIET)


async def _end_storm(bot: BotContext, budget: ChannelBudget, digest: dict[str, Any], now: datetime) -> None:
    """The storm passed: give the still-open incidents of the digest their own roots, a few per pass and only
    while the channel's post slot is free (`ChannelBudget.idle`), so the worker keeps delivering new incidents and
    state changes at Slack's rate meanwhile, and close the digest once none is left. An incident is promoted once
    its lines queued for the digest's thread are posted; its root says its earlier events are there (threads.py),
    and its later events go to its own thread. Resolved incidents stay in the digest, their line showing it."""
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT i.* FROM incidents i JOIN incident_roots r ON r.incident_id = i.id
               WHERE r.in_digest = %s AND r.ts IS NULL AND i.status <> 'resolved'
               ORDER BY i.triggered_at NULLS LAST, i.id LIMIT %s""",
            (digest["id"], PROMOTE_PER_PASS),
        )
        waiting = await cursor.fetchall()
        if not waiting:
            await conn.execute(
                "UPDATE storm_digests SET ended_at = %s WHERE id = %s AND ended_at IS NULL",
                (now, digest["id"]),
            )
            return
    for row in waiting:
        if not await budget.idle(digest["channel"]):
            break  # the channel's rate goes to new incidents and their changes first; the rest on a later pass
        if await digest_thread.waiting_lines(bot, row["id"], digest["id"]):
            continue  # its earlier events reach the digest's thread first, then its own root takes the later ones
        try:
            await ensure_root(bot, budget, view_of(bot, row), digest["channel"], now, own_thread=True)
        except RetryLater:
            continue  # another worker is posting it
