"""Several pending events of one incident in one thread reply: a short timeline, one line per event as lines.py
words it.

Slack's limit is posts per channel (about one a second), not events: a storm of 400 incidents with five events
each is 2,000 replies per channel one at a time, over half an hour behind; as one reply per incident and pass, it
is a few hundred. So when the pass holds several events of an incident that are not posted yet, the first one's
delivery posts them all, in their order, and the others' deliveries find their lines already there.

Exactly once, as for a single reply (bot/slack_once.py), with every event keeping its own claim row in
`incident_replies` (migration 0012): the group's rows are inserted together (all or none: one already claimed
elsewhere gives the others back and the events are tried again), `part_of` naming the group's first event, whose
key, with the channel and the list of keys, is the message's metadata. A row found later with `part_of` (a
redelivered event, a worker that died after posting) is the group's: it is looked up, taken over and recorded as
the group, never posted again as a reply of its own (`ReplyClaims` raises `InGroup`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot import slack_once
from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents.model import RetryLater
from handlers.incidents.threads import REPLY_POST, Root

#: A timeline reply stays short: at most this many events and characters (a longer line is a reply of its own,
#: cut into parts as before, bot/slack_limits.py).
GROUP_EVENTS = 10
GROUP_CHARS = 3_000


@dataclass(frozen=True)
class Line:
    key: str  # the event's id: its claim row
    kind: str  # the event type
    text: str  # lines.reply_text, escaped


def group_key(lead: str, channel: str, keys: list[str]) -> slack_once.PostKey:
    return slack_once.PostKey(REPLY_POST, {"key": lead, "channel": channel, "keys": ",".join(keys)})


def timeline_text(lines: list[Line]) -> str:
    return "\n".join(line.text for line in lines)


def fits(lines: list[Line], line: Line) -> bool:
    """Whether `line` can join the group `lines` (the next event of the same incident)."""
    return len(lines) < GROUP_EVENTS and len(timeline_text([*lines, line])) <= GROUP_CHARS


class GroupClaims:
    """The claim on one timeline reply: its events' `incident_replies` rows, all `part_of` the first. `fresh`:
    no row exists yet (insert them all); otherwise the rows are there, from an attempt whose outcome is unknown."""

    def __init__(
        self, bot: BotContext, channel: str, incident_id: str, lines: list[Line], *, fresh: bool
    ) -> None:
        self.bot, self.channel, self.incident_id, self.lines, self.fresh = (
            bot,
            channel,
            incident_id,
            lines,
            fresh,
        )
        self.lead = lines[0].key

    async def claim(self, now: datetime) -> slack_once.ClaimState:
        async with self.bot.storage.pool.connection() as conn:
            if not self.fresh:
                row = await (
                    await conn.execute(
                        "SELECT ts, claimed_at FROM incident_replies WHERE event_id = %s AND channel = %s",
                        (self.lead, self.channel),
                    )
                ).fetchone()
                if row is None:
                    raise RetryLater(f"timeline reply {self.lead} in {self.channel} was given up just now")
                return slack_once.ClaimState(ts=row[0], attempted_at=row[1])
            cursor = await conn.execute(
                """INSERT INTO incident_replies (event_id, channel, incident_id, kind, claimed_at, part_of, position)
                   SELECT k, %s, %s, t, %s, %s, p FROM unnest(%s::text[], %s::text[], %s::smallint[]) AS g(k, t, p)
                   ON CONFLICT DO NOTHING RETURNING event_id""",
                (
                    self.channel,
                    self.incident_id,
                    now,
                    self.lead,
                    [line.key for line in self.lines],
                    [line.kind for line in self.lines],
                    list(range(len(self.lines))),
                ),
            )
            inserted = [row[0] for row in await cursor.fetchall()]
            if len(inserted) == len(self.lines):
                return slack_once.ClaimState(ours=True)
            await conn.execute(  # one of them is someone else's: give ours back, try again later
                """DELETE FROM incident_replies WHERE event_id = ANY(%s) AND channel = %s AND ts IS NULL
                   AND claimed_at = %s""",
                (inserted, self.channel, now),
            )
        raise RetryLater(f"a reply of {self.incident_id} in {self.channel} is claimed elsewhere")

    async def _rows(self, sql: str, *args: object) -> int:
        async with self.bot.storage.pool.connection() as conn:
            cursor = await conn.execute(sql, (*args, self.lead, self.channel))
        return cursor.rowcount

    async def take(self, now: datetime, attempted_at: datetime | None) -> bool:
        taken = await self._rows(
            """UPDATE incident_replies SET claimed_at = %s
               WHERE claimed_at = %s AND ts IS NULL AND part_of = %s AND channel = %s""",
            now,
            attempted_at,
        )
        return taken == len(self.lines)

    async def mark_uncertain(self, now: datetime, claimed: datetime) -> None:
        await self._rows(
            """UPDATE incident_replies SET claimed_at = %s
               WHERE claimed_at = %s AND ts IS NULL AND part_of = %s AND channel = %s""",
            claimed,
            now,
        )

    async def release(self, now: datetime) -> None:
        await self._rows(
            """DELETE FROM incident_replies WHERE claimed_at = %s AND ts IS NULL AND part_of = %s
               AND channel = %s""",
            now,
        )

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        await self._rows(
            """UPDATE incident_replies SET ts = %s, posted_at = %s
               WHERE ts IS NULL AND part_of = %s AND channel = %s""",
            ts,
            now,
        )


async def post_group(
    bot: BotContext,
    budget: ChannelBudget,
    incident_id: str,
    root: Root,
    now: datetime,
    lines: list[Line],
    *,
    fresh: bool,
    fallback: str,
) -> slack_once.Posted:
    """The timeline reply of `lines` in the root's thread, posted once (RetryLater while it is someone else's)."""
    assert root.ts is not None and root.channel_id is not None
    outcome = await slack_once.post_once(
        bot,
        budget,
        GroupClaims(bot, root.channel, incident_id, lines, fresh=fresh),
        root.channel_id,
        group_key(lines[0].key, root.channel, [line.key for line in lines]),
        now,
        content={"text": timeline_text(lines)},
        fallback=fallback,
        thread_ts=root.ts,
    )
    if outcome.status == "busy":
        raise RetryLater(f"timeline reply {lines[0].key} in {root.channel} is being posted")
    return outcome


async def group_members(bot: BotContext, lead: str, channel: str) -> list[tuple[str, str]]:
    """(event id, event type) of the timeline reply led by `lead`, in its order."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT event_id, kind FROM incident_replies WHERE part_of = %s AND channel = %s
               ORDER BY position""",
            (lead, channel),
        )
        return [(str(key), str(kind)) for key, kind in await cursor.fetchall()]
