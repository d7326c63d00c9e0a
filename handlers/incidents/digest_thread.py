"""The storm digest's thread: while a storm lasts, the events of the incidents listed in a digest are lines in the
DIGEST's thread, many incidents per reply.

Slack takes about one post per second per channel. A storm of 400 incidents with five events each, an incident
leaving the digest for a root of its own at its next event, is 400 roots and 1,600 replies per channel queued at
that pace: over half an hour behind. So an incident listed in a digest stays there while the storm lasts: its
state is its digest line (edited, storm.py), and its events are lines in the digest's thread, one line per event
prefixed by its incident (`*#123* :eyes: Acknowledged by Alice`), the lines of every incident of the digest
coalesced into one reply per pass, within DIGEST_REPLY_CHARS and DIGEST_REPLY_LINES: 1,600 events per channel are a
few dozen replies.

Exactly once, with every event keeping its own claim row in `incident_replies` (migration 0014):

* delivering an event only *queues* its line: its row is inserted with `digest_id`, the line's words and its place
  in the thread (`digest_seq`), `ON CONFLICT DO NOTHING` — a redelivered event, or one delivered again after a
  worker died before marking it, finds its row and queues nothing. A line longer than a message is queued as its
  parts (`key`, `key#2`, …), as a reply of its own would be posted (lines.reply_parts);
* after each pass (`flush_thread`, from storm.flush_digests), the oldest queued lines become one reply: in one
  transaction under the digest's advisory lock they get `part_of` (the first line's key) and `position`, then the
  reply is posted once through bot/slack_once.py with that key, the digest and the channel as its metadata, and
  its `ts` recorded on every line. Only one reply per digest is in flight at a time (a group without `ts` is
  finished — looked up by its metadata once stale, taken over, or recorded — before a new one is claimed), so the
  thread shows each incident's lines in their order, across replicas too;
* a reply Slack refused (nothing stored) gives its lines back to the queue; one whose outcome is unknown is looked
  up in the digest's thread before it is posted again;
* an incident's lines wait until the digest lists the incident (`incident_roots.listed_at`, set by storm.py when
  the digest is posted or edited), at most UNLISTED_WAIT: a reply about an incident the digest does not show yet
  would read as about nothing.

When the storm has passed, storm.py promotes the still-open incidents to roots of their own (once their queued
lines are posted), and their later events go to their own threads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import slack_once
from bot.context import BotContext
from bot.mrkdwn import outside
from bot.slack_budget import ChannelBudget
from handlers.incidents import lines
from handlers.incidents.coalesce import GroupClaims, Line
from handlers.incidents.model import IncidentView, RetryLater
from handlers.incidents.threads import REPLY_POST

log = logging.getLogger(__name__)

#: One reply of the digest's thread: Slack shows about 4,000 characters before "Show more" (and refuses
#: 40,000, bot/slack_limits.py); a line longer than that is a reply of its own (its parts, lines.reply_parts).
DIGEST_REPLY_CHARS = 4_000
DIGEST_REPLY_LINES = 60
NUMBER_CHARS = 20
#: An incident's lines wait until the digest lists it (storm.py records when), but no longer than this: one the
#: digest cannot list (beyond Slack's message size, or the digest shown as its text-only fallback) still has its
#: events read in the thread.
UNLISTED_WAIT = timedelta(seconds=30)


def incident_ref(view: IncidentView) -> str:
    """`*#123*`: the incident a line of the digest's thread is about (its PagerDuty number, else its id)."""
    shown = f"#{view.number}" if view.number is not None else view.id
    return f"*{outside(shown, NUMBER_CHARS)}*"


def digest_parts(view: IncidentView, line: Line) -> list[Line]:
    """The event's line as queued in the digest's thread: prefixed by its incident, in parts when it is longer
    than a message (each part its own claim row, `key#2`…, and each prefixed)."""
    ref = incident_ref(view)
    parts = lines.reply_parts(line.text)
    return [
        Line(line.key if n == 1 else f"{line.key}#{n}", line.kind, f"{ref} {part}")
        for n, part in enumerate(parts, 1)
    ]


@dataclass(frozen=True)
class Digest:
    """An open storm digest an incident is listed in, in one channel."""

    id: int
    channel: str


async def open_memberships(bot: BotContext, incident_ids: list[str]) -> dict[tuple[str, str], int]:
    """(incident, channel) → digest, for the incidents listed (and not yet promoted) in a digest whose storm is
    still on: read once per pass, with the batch's fold."""
    if not incident_ids:
        return {}
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT r.incident_id, r.channel, r.in_digest FROM incident_roots r
               JOIN storm_digests d ON d.id = r.in_digest
               WHERE r.incident_id = ANY(%s) AND r.ts IS NULL AND d.ended_at IS NULL""",
            (incident_ids,),
        )
        return {(str(i), str(c)): int(d) for i, c, d in await cursor.fetchall()}


async def queue(
    bot: BotContext, digest_id: int, channel: str, view: IncidentView, line: Line, now: datetime
) -> None:
    """Queue the event's line (its parts) for the digest's thread, once: a row already there is left as it is."""
    parts = digest_parts(view, line)
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """INSERT INTO incident_replies
                   (event_id, channel, incident_id, kind, claimed_at, digest_id, line, digest_seq)
               SELECT k, %s, %s, %s, %s, %s, t, nextval('incident_replies_digest_seq')
               FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS g(k, t, n)
               ORDER BY n
               ON CONFLICT DO NOTHING""",
            (
                channel,
                view.id,
                line.kind,
                now,
                digest_id,
                [part.key for part in parts],
                [part.text for part in parts],
            ),
        )


def _fits(group: list[Line], line: Line) -> bool:
    if not group:
        return True
    text = "\n".join([*(g.text for g in group), line.text])
    return len(group) < DIGEST_REPLY_LINES and len(text) <= DIGEST_REPLY_CHARS


class DigestReplyClaims(GroupClaims):
    """The claim on one reply of the digest's thread: its lines' rows, `part_of` its first line. Taking, marking
    uncertain and recording are a timeline reply's (coalesce.GroupClaims, keyed by `part_of` and channel); a fresh
    claim is made by `claim_next` and a refused one gives its lines back to the queue instead of deleting them."""

    def __init__(
        self, bot: BotContext, channel: str, group: list[Line], attempted_at: datetime | None
    ) -> None:
        super().__init__(bot, channel, "", group, fresh=attempted_at is None)
        self.attempted_at = attempted_at

    async def claim(self, now: datetime) -> slack_once.ClaimState:
        if self.attempted_at is None:
            return slack_once.ClaimState(ours=True)  # claimed by claim_next just now
        return slack_once.ClaimState(attempted_at=self.attempted_at)

    async def release(self, now: datetime) -> None:
        await self._rows(
            """UPDATE incident_replies SET part_of = NULL, position = NULL
               WHERE claimed_at = %s AND ts IS NULL AND part_of = %s AND channel = %s""",
            now,
        )


async def _unfinished(bot: BotContext, digest_id: int) -> tuple[list[Line], datetime] | None:
    """The digest's reply whose post began and has no `ts` (in flight, or its outcome unknown)."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT event_id, kind, line, claimed_at FROM incident_replies
               WHERE digest_id = %s AND ts IS NULL AND part_of = (
                   SELECT part_of FROM incident_replies
                   WHERE digest_id = %s AND ts IS NULL AND part_of IS NOT NULL
                   ORDER BY digest_seq LIMIT 1)
               ORDER BY position""",
            (digest_id, digest_id),
        )
        rows = await cursor.fetchall()
    if not rows:
        return None
    return [Line(str(k), str(t), str(text)) for k, t, text, _ in rows], min(r[3] for r in rows)


async def claim_next(bot: BotContext, digest_id: int, now: datetime) -> list[Line]:
    """Claim the digest's oldest queued lines as one reply (none while another reply of it is unfinished):
    under the digest's advisory lock, so two replicas never claim two replies of one digest at once."""
    async with bot.storage.pool.connection() as conn, conn.transaction():
        locked = await (
            await conn.execute(
                "SELECT pg_try_advisory_xact_lock(hashtext('digest_thread:' || %s))", (digest_id,)
            )
        ).fetchone()
        if not locked or not locked[0]:
            return []
        busy = await (
            await conn.execute(
                """SELECT 1 FROM incident_replies
                   WHERE digest_id = %s AND ts IS NULL AND part_of IS NOT NULL LIMIT 1""",
                (digest_id,),
            )
        ).fetchone()
        if busy:
            return []
        cursor = await conn.execute(
            """SELECT q.event_id, q.kind, q.line FROM incident_replies q
               JOIN incident_roots r ON r.incident_id = q.incident_id AND r.channel = q.channel
               WHERE q.digest_id = %s AND q.ts IS NULL AND q.part_of IS NULL
                 AND (r.listed_at IS NOT NULL OR q.claimed_at <= %s)
               ORDER BY q.digest_seq LIMIT %s""",
            (digest_id, now - UNLISTED_WAIT, DIGEST_REPLY_LINES),
        )
        group: list[Line] = []
        for key, kind, text in await cursor.fetchall():
            line = Line(str(key), str(kind), str(text))
            if not _fits(group, line):
                break
            group.append(line)
        if not group:
            return []
        await conn.execute(
            """UPDATE incident_replies r SET part_of = %s, position = g.p - 1, claimed_at = %s
               FROM unnest(%s::text[]) WITH ORDINALITY AS g(k, p)
               WHERE r.event_id = g.k AND r.digest_id = %s AND r.ts IS NULL AND r.part_of IS NULL""",
            (group[0].key, now, [line.key for line in group], digest_id),
        )
    return group


def reply_key(digest_id: int, channel: str, lead: str) -> slack_once.PostKey:
    return slack_once.PostKey(REPLY_POST, {"key": lead, "channel": channel, "digest_id": str(digest_id)})


async def flush_thread(bot: BotContext, budget: ChannelBudget, digest: dict[str, Any], now: datetime) -> bool:
    """Post the digest's next reply (finishing an unfinished one first); True when one was posted or found. The
    lines wait while the digest itself is not posted yet."""
    if digest["ts"] is None or digest["channel_id"] is None:
        return False
    unfinished = await _unfinished(bot, digest["id"])
    if unfinished is not None:
        group, attempted_at = unfinished
        claims = DigestReplyClaims(bot, digest["channel"], group, attempted_at)
    else:
        group = await claim_next(bot, digest["id"], now)
        if not group:
            return False
        claims = DigestReplyClaims(bot, digest["channel"], group, None)
    count = len(group)
    try:
        outcome = await slack_once.post_once(
            bot,
            budget,
            claims,
            digest["channel_id"],
            reply_key(digest["id"], digest["channel"], group[0].key),
            now,
            content={"text": "\n".join(line.text for line in group)},
            fallback=f"{count} updates of the storm's incidents: Slack could not show them; see PagerDuty.",
            thread_ts=digest["ts"],
        )
    except RetryLater:
        return False
    except Exception:
        log.warning("storm digest thread reply not posted yet", exc_info=True, extra={"digest": digest["id"]})
        return False
    return outcome.status in ("posted", "found")


async def waiting_lines(bot: BotContext, incident_id: str, digest_id: int) -> bool:
    """Whether lines of the incident still wait for the digest's thread (it is promoted only after them)."""
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                """SELECT 1 FROM incident_replies
                   WHERE incident_id = %s AND digest_id = %s AND ts IS NULL LIMIT 1""",
                (incident_id, digest_id),
            )
        ).fetchone()
    return row is not None
