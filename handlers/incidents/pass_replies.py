"""The thread replies of one delivery pass: claimed in one statement before any is posted, their `ts` recorded in
one statement after the last (issue 16). A claim INSERT and a record UPDATE per reply, each its own transaction
(BEGIN, the statement, COMMIT and its flush), were most of the worker's round trips: a dozen per event.

Exactly once as before (bot/slack_once.py, docs/RELIABILITY.md "Effects: exactly once"): a reply is posted only
under its claim row in `incident_replies`, inserted before the post with the pass's clock as `claimed_at` and
metadata naming it on the message. What changes is when the rows are written. `claim` inserts the row of every
reply the pass expects to post (one INSERT … SELECT FROM unnest … ON CONFLICT DO NOTHING RETURNING): a row it
returns is this pass's, to post at once; any other (already there, or claimed by another worker a moment ago) goes
the one-reply path (threads.post_once), which reads it and waits, looks it up or finds it posted. `finish`, at the
end of the pass, records the `ts` of the replies posted and gives back the claims not used (their event failed,
or its channels changed), in one statement.

A worker that dies between a post and `finish` leaves its claims without `ts`, as one that died between a post and
its record always did: after STALE_CLAIM_SECONDS the next taker looks the reply up by its metadata and records it
instead of posting it again; a claim whose post never began is looked up, not found, and posted. A claim is
stamped with the pass's clock, as the one-reply claims are, so a pass still has to end within its lease (shorter
than the stale window). Until `finish`, a reply posted in the pass is known here (`posted`): a second delivery of
it in the same pass (a second resolve's post-mortem draft) finds it posted, not busy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot import slack_once
from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents import threads
from handlers.incidents.threads import ReplyClaims, Root

Where = tuple[str, str]  # (reply key, channel)

_CLAIM = """
    INSERT INTO incident_replies (event_id, channel, incident_id, kind, claimed_at)
    SELECT k, c, i, t, %s FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS w(k, c, i, t)
    ON CONFLICT DO NOTHING RETURNING event_id, channel"""
#: The posted replies' `ts` (only where none is recorded yet), and the unused claims given back (only while they are
#: still this pass's: not marked uncertain, not taken over), in one statement.
_FINISH = """
    WITH recorded AS (
        UPDATE incident_replies r SET ts = p.ts, posted_at = %(now)s
        FROM unnest(%(keys)s::text[], %(channels)s::text[], %(ts)s::text[]) AS p(k, c, ts)
        WHERE r.event_id = p.k AND r.channel = p.c AND r.ts IS NULL
        RETURNING 1),
    given_back AS (
        DELETE FROM incident_replies r
        USING unnest(%(unused_keys)s::text[], %(unused_channels)s::text[]) AS u(k, c)
        WHERE r.event_id = u.k AND r.channel = u.c AND r.ts IS NULL AND r.claimed_at = %(now)s
        RETURNING 1)
    SELECT (SELECT count(*) FROM recorded), (SELECT count(*) FROM given_back)"""


@dataclass(frozen=True)
class Wanted:
    """A reply the pass expects to post: its key (an event id, `postmortem:P…`), channel, incident and kind."""

    key: str
    channel: str
    incident_id: str
    kind: str


@dataclass
class PassReplies:
    """The replies the pass expects, by channel (`wanted`), the channels whose replies it claimed, its own claims
    (`ours`: not posted yet) and the replies it posted (`posted`: (channel ID, ts), recorded by `finish`)."""

    now: datetime
    wanted: dict[str, list[Wanted]] = field(default_factory=dict)
    channels: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    ours: set[Where] = field(default_factory=set)
    posted: dict[Where, tuple[str, str]] = field(default_factory=dict)

    def expect(self, wanted: list[Wanted]) -> None:
        for reply in dict.fromkeys(wanted):
            self.wanted.setdefault(reply.channel, []).append(reply)

    async def claim(self, bot: BotContext, channel: str) -> None:
        """Claim the pass's replies in `channel`, once per pass, in one statement. Called by the pass's first reply
        there, once the channel's storm state is known (in a storm the lines may share a timeline reply instead,
        coalesce.py, and are claimed as that)."""
        if channel not in self.channels:  # the first caller claims; the pass's other incidents wait for it
            self.channels[channel] = asyncio.ensure_future(self._claim(bot, self.wanted.pop(channel, [])))
        await asyncio.shield(self.channels[channel])

    async def _claim(self, bot: BotContext, fresh: list[Wanted]) -> None:
        if not fresh:
            return
        async with bot.storage.autocommit() as conn:  # one statement, atomic on its own
            cursor = await conn.execute(
                _CLAIM,
                (
                    self.now,
                    [w.key for w in fresh],
                    [w.channel for w in fresh],
                    [w.incident_id for w in fresh],
                    [w.kind for w in fresh],
                ),
            )
            self.ours.update((str(key), str(channel)) for key, channel in await cursor.fetchall())

    async def give_back(self, bot: BotContext, key: str, channel: str) -> None:
        """The pass claimed `key` in `channel` but it goes elsewhere (a line in a storm digest's thread, whose own
        claim row it is): the claim is deleted first."""
        if channel in self.channels:
            await asyncio.shield(self.channels[channel])
        if (key, channel) not in self.ours:
            return
        self.ours.discard((key, channel))
        await ReplyClaims(bot, key, channel, "", "").release(self.now)

    async def finish(self, bot: BotContext) -> None:
        """Record what the pass posted and give back what it claimed and did not post: one statement."""
        await asyncio.gather(*self.channels.values(), return_exceptions=True)  # no claim still on its way
        posted, unused = list(self.posted.items()), sorted(self.ours)
        self.posted, self.ours = {}, set()
        if not posted and not unused:
            return
        params: dict[str, Any] = {
            "now": self.now,
            "keys": [key for (key, _), _ in posted],
            "channels": [channel for (_, channel), _ in posted],
            "ts": [ts for _, (_, ts) in posted],
            "unused_keys": [key for key, _ in unused],
            "unused_channels": [channel for _, channel in unused],
        }
        async with bot.storage.autocommit() as conn:
            await conn.execute(_FINISH, params)


class PassClaim(ReplyClaims):
    """One reply the pass claimed: posted at once, its `ts` kept for `PassReplies.finish`. An attempt Slack refused
    or left uncertain is written at once, as for a reply of its own (rare: the row must say so before any retry)."""

    def __init__(
        self, replies: PassReplies, bot: BotContext, key: str, channel: str, incident_id: str, kind: str
    ):
        super().__init__(bot, key, channel, incident_id, kind)
        self.replies = replies

    async def claim(self, now: datetime) -> slack_once.ClaimState:
        return slack_once.ClaimState(ours=True)

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        self.replies.posted[(self.key, self.channel)] = (channel_id, ts)


async def post_once(
    bot: BotContext,
    budget: ChannelBudget,
    replies: PassReplies | None,
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
    """threads.post_once, under the pass's claim when it holds one for `key` in the root's channel (`claim` it
    first for the channel)."""
    where = (key, root.channel)
    if replies is not None and where in replies.posted:
        return slack_once.Posted("already", *replies.posted[where])
    if replies is None or where not in replies.ours or now != replies.now:
        return await threads.post_once(
            bot, budget, key, kind, incident_id, root, now, text, blocks_, fallback=fallback
        )
    replies.ours.discard(where)  # used: posted, refused (released) or uncertain (marked), never again as ours
    assert root.ts is not None and root.channel_id is not None
    return await slack_once.post_once(
        bot,
        budget,
        PassClaim(replies, bot, key, root.channel, incident_id, kind),
        root.channel_id,
        threads.reply_key(key, root.channel),
        now,
        content={"text": text, "blocks": blocks_},
        fallback=fallback,
        thread_ts=root.ts,
    )
