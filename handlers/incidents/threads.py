"""PagerDuty incidents in Slack: one living root per incident and channel, one reply per event, each posted once.

The delivery worker (bot/delivery.py) hands the stored events of one incident at a time, oldest `occurred_at`
first, to pipeline.py, which posts through here. Every Slack effect is claimed in Postgres before it happens — a
root by `(incident, channel)`, a reply by `(event, channel)` — so a redelivery, a retry after a crash or a second
replica never posts twice. A claim whose post began but has no `ts` after STALE_CLAIM_SECONDS was abandoned by a
worker that died: the message is looked up in Slack by its metadata before it is posted again (bot/slack_once.py).
The root shows the incident as of its newest `occurred_at`, so events that arrive out of order (a resolve before
its trigger) still leave the right root. Root edits are debounced: a burst of events marks the root dirty and one
chat.update follows (root_edits.py). During a storm a new incident joins the channel's digest (storm.py) instead.

The rest of the capability: events.py (the incident's state), storm.py, timers.py (SLA nudges), postmortem.py,
buttons.py (Acknowledge / Resolve / Note in PagerDuty), escalate.py, lines.py (the words of each reply),
blocks.py (Block Kit), summary.py (what others may read).

Runbooks: Mira §1 Responsibilities (watch #mira-copilot-alerts, respond within 15 minutes, resolve critical issues
within 1 hour, post-mortem); Mira LLM outage "Post update in #incidents"; FA On-Call "Acknowledge within 5 minutes",
P0 "Schedule post-mortem within 48 hours"; the escalation paths in each runbook.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from bot import slack_once
from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks
from handlers.incidents.model import IncidentView, InGroup, RetryLater

log = logging.getLogger(__name__)


STORM_WINDOW = timedelta(minutes=1)


# --- Slack effects, each claimed once ---------------------------------------------------------------------------


ROOT_POST = "mira_incident_root"
REPLY_POST = "mira_incident_reply"
DIGEST_POST = "mira_storm_digest"


def root_key(incident_id: str, channel: str) -> slack_once.PostKey:
    return slack_once.PostKey(ROOT_POST, {"incident_id": incident_id, "channel": channel})


def reply_key(key: str, channel: str) -> slack_once.PostKey:
    return slack_once.PostKey(REPLY_POST, {"key": key, "channel": channel})


def digest_key(digest_id: int) -> slack_once.PostKey:
    return slack_once.PostKey(DIGEST_POST, {"digest_id": str(digest_id)})


@dataclass
class Root:
    channel: str
    channel_id: str | None
    ts: str | None
    in_digest: int | None
    posted_now: bool = False


async def root_row(bot: BotContext, incident_id: str, channel: str) -> dict[str, Any] | None:
    async with bot.storage.autocommit() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            "SELECT * FROM incident_roots WHERE incident_id = %s AND channel = %s", (incident_id, channel)
        )
        return await cursor.fetchone()


async def in_storm(bot: BotContext, channel: str, now: datetime) -> bool:
    threshold = bot.settings.storm_threshold
    if threshold <= 0:
        return False
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT count(*) FROM incident_roots
               WHERE channel = %s AND claimed_at > %s AND in_digest IS NULL""",
            (channel, now - STORM_WINDOW),
        )
        row = await cursor.fetchone()
        open_digest = await (
            await conn.execute(
                "SELECT 1 FROM storm_digests WHERE channel = %s AND ended_at IS NULL", (channel,)
            )
        ).fetchone()
    return open_digest is not None or (row is not None and row[0] >= threshold)


async def join_digest(bot: BotContext, incident_id: str, channel: str, now: datetime) -> int | None:
    """Represent the incident in the channel's open storm digest (opening one if needed)."""
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """INSERT INTO storm_digests (channel, started_at, dirty_since) VALUES (%s, %s, %s)
               ON CONFLICT (channel) WHERE ended_at IS NULL DO NOTHING""",
            (channel, now, now),
        )
        digest = await (
            await conn.execute(
                "SELECT id FROM storm_digests WHERE channel = %s AND ended_at IS NULL", (channel,)
            )
        ).fetchone()
        assert digest is not None
        cursor = await conn.execute(
            """INSERT INTO incident_roots (incident_id, channel, claimed_by, claimed_at, in_digest)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            (incident_id, channel, bot.replica, now, digest[0]),
        )
        if cursor.rowcount == 1:
            await conn.execute(
                "UPDATE storm_digests SET dirty_since = COALESCE(dirty_since, %s) WHERE id = %s",
                (now, digest[0]),
            )
            return int(digest[0])
    return None


async def ensure_root(
    bot: BotContext,
    budget: ChannelBudget,
    view: IncidentView,
    channel: str,
    now: datetime,
    *,
    own_thread: bool,
    rows: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> Root:
    """The incident's root in `channel`, posted once. During a storm a new incident joins the digest instead,
    unless it needs its own thread now (`own_thread`: someone acted on it). `rows`: the `incident_roots` rows the
    delivery pass read with its batch, by (incident, channel) (a claim made since is found by the claim itself)."""
    row = rows.get((view.id, channel)) if rows is not None else await root_row(bot, view.id, channel)
    if row is None and not own_thread and await in_storm(bot, channel, now):
        digest = await join_digest(bot, view.id, channel, now)
        if digest is not None:
            return Root(channel, None, None, digest)
        row = await root_row(bot, view.id, channel)
    if row is not None and row["ts"]:
        return Root(channel, row["channel_id"], row["ts"], row["in_digest"])
    if row is not None and row["in_digest"] and not own_thread:
        return Root(channel, None, None, row["in_digest"])
    text, attachments = blocks.render_root(view, now, from_digest=bool(row and row["in_digest"]))
    outcome = await slack_once.post_once(
        bot,
        budget,
        RootClaims(bot, view.id, channel, row),
        channel,
        root_key(view.id, channel),
        now,
        content={"text": text, "attachments": attachments},
        fallback=blocks.fallback_text(view),
    )
    if outcome.status == "busy":
        raise RetryLater(f"root of {view.id} in {channel} is being posted")
    assert outcome.channel_id is not None and outcome.ts is not None
    return Root(
        channel, outcome.channel_id, outcome.ts, row["in_digest"] if row else None, outcome.posted_now
    )


class RootClaims:
    """The claim on an incident's root in a channel: its `incident_roots` row (`posting_at` while a post is under
    way; NULL for a storm digest member never posted on its own)."""

    def __init__(self, bot: BotContext, incident_id: str, channel: str, row: dict[str, Any] | None) -> None:
        self.bot, self.incident_id, self.channel, self.row = bot, incident_id, channel, row

    async def claim(self, now: datetime) -> slack_once.ClaimState:
        if self.row is not None:
            return slack_once.ClaimState(
                ts=self.row["ts"], channel_id=self.row["channel_id"], attempted_at=self.row["posting_at"]
            )
        async with self.bot.storage.autocommit() as conn:
            cursor = await conn.execute(
                """INSERT INTO incident_roots (incident_id, channel, claimed_by, claimed_at, posting_at)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (self.incident_id, self.channel, self.bot.replica, now, now),
            )
        if cursor.rowcount != 1:
            raise RetryLater(f"root of {self.incident_id} in {self.channel} is being posted")
        return slack_once.ClaimState(ours=True)

    async def take(self, now: datetime, attempted_at: datetime | None) -> bool:
        async with self.bot.storage.autocommit() as conn:
            cursor = await conn.execute(
                """UPDATE incident_roots SET posting_at = %s, claimed_by = %s
                   WHERE incident_id = %s AND channel = %s AND ts IS NULL AND posting_at IS NOT DISTINCT FROM %s""",
                (now, self.bot.replica, self.incident_id, self.channel, attempted_at),
            )
        return cursor.rowcount == 1

    async def _restamp(self, now: datetime, attempted: datetime | None) -> None:
        async with self.bot.storage.autocommit() as conn:
            await conn.execute(
                """UPDATE incident_roots SET posting_at = %s
                   WHERE incident_id = %s AND channel = %s AND ts IS NULL AND posting_at = %s""",
                (attempted, self.incident_id, self.channel, now),
            )

    async def mark_uncertain(self, now: datetime, claimed: datetime) -> None:
        await self._restamp(now, claimed)

    async def release(self, now: datetime) -> None:
        await self._restamp(now, None)

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        async with self.bot.storage.autocommit() as conn:
            await conn.execute(
                """UPDATE incident_roots SET channel_id = %s, ts = %s, posted_at = %s, claimed_by = %s
                   WHERE incident_id = %s AND channel = %s AND ts IS NULL""",
                (channel_id, ts, now, self.bot.replica, self.incident_id, self.channel),
            )


async def post_once(
    bot: BotContext,
    budget: ChannelBudget,
    key: str,
    kind: str,
    incident_id: str,
    root: Root,
    now: datetime,
    text: str,
    blocks_: list[dict[str, Any]] | None = None,
    *,
    fallback: str,
) -> slack_once.Posted:
    """A reply in the root's thread, posted once per `key` (an event id, or e.g. `nudge:PABC123`); the outcome
    says where it is (its `ts`, posted now or before: what a later message links to). RetryLater while another
    worker is posting it. `fallback` is posted instead if Slack refuses the reply as invalid (bot/slack_once.py)."""
    assert root.ts is not None and root.channel_id is not None
    outcome = await slack_once.post_once(
        bot,
        budget,
        ReplyClaims(bot, key, root.channel, incident_id, kind),
        root.channel_id,
        reply_key(key, root.channel),
        now,
        content={"text": text, "blocks": blocks_},
        fallback=fallback,
        thread_ts=root.ts,
    )
    if outcome.status == "busy":
        raise RetryLater(f"reply {key} in {root.channel} is being posted")
    return outcome


class ReplyClaims:
    """The claim on one reply in an incident's thread: its `incident_replies` row, `(event, channel)`."""

    def __init__(self, bot: BotContext, key: str, channel: str, incident_id: str, kind: str) -> None:
        self.bot, self.key, self.channel, self.incident_id, self.kind = bot, key, channel, incident_id, kind

    async def claim(self, now: datetime) -> slack_once.ClaimState:
        async with self.bot.storage.autocommit() as conn:
            cursor = await conn.execute(
                """INSERT INTO incident_replies (event_id, channel, incident_id, kind, claimed_at)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (self.key, self.channel, self.incident_id, self.kind, now),
            )
            if cursor.rowcount == 1:
                return slack_once.ClaimState(ours=True)
            existing = await (
                await conn.execute(
                    "SELECT ts, claimed_at, part_of FROM incident_replies WHERE event_id = %s AND channel = %s",
                    (self.key, self.channel),
                )
            ).fetchone()
        if existing is None:
            raise RetryLater(f"reply {self.key} in {self.channel} was given up just now")
        ts, claimed_at, part_of = existing
        if part_of is not None:  # a line of a timeline reply: looked up and posted as that, never on its own
            raise InGroup(part_of)
        return slack_once.ClaimState(ts=ts, attempted_at=claimed_at)

    async def take(self, now: datetime, attempted_at: datetime | None) -> bool:
        async with self.bot.storage.autocommit() as conn:
            taken = await conn.execute(
                """UPDATE incident_replies SET claimed_at = %s
                   WHERE event_id = %s AND channel = %s AND ts IS NULL AND claimed_at = %s""",
                (now, self.key, self.channel, attempted_at),
            )
        return taken.rowcount == 1

    async def mark_uncertain(self, now: datetime, claimed: datetime) -> None:
        async with self.bot.storage.autocommit() as conn:
            await conn.execute(
                """UPDATE incident_replies SET claimed_at = %s
                   WHERE event_id = %s AND channel = %s AND ts IS NULL AND claimed_at = %s""",
                (claimed, self.key, self.channel, now),
            )

    async def release(self, now: datetime) -> None:
        async with self.bot.storage.autocommit() as conn:
            await conn.execute(
                """DELETE FROM incident_replies
                   WHERE event_id = %s AND channel = %s AND ts IS NULL AND claimed_at = %s""",
                (self.key, self.channel, now),
            )

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        async with self.bot.storage.autocommit() as conn:
            await conn.execute(
                """UPDATE incident_replies SET ts = %s, posted_at = %s
                   WHERE event_id = %s AND channel = %s AND ts IS NULL""",
                (ts, now, self.key, self.channel),
            )


async def mark_root_dirty(bot: BotContext, incident_id: str, now: datetime) -> None:
    async with bot.storage.autocommit() as conn:
        await conn.execute(
            "UPDATE incidents SET root_dirty_since = COALESCE(root_dirty_since, %s) WHERE id = %s",
            (now, incident_id),
        )


async def mark_digest_dirty(bot: BotContext, digest_id: int, now: datetime) -> None:
    async with bot.storage.autocommit() as conn:
        await conn.execute(
            "UPDATE storm_digests SET dirty_since = COALESCE(dirty_since, %s) WHERE id = %s", (now, digest_id)
        )
