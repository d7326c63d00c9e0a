"""Stored PagerDuty events through their incidents, as the delivery worker hands them over (bot/delivery.py).

First the whole claimed batch is folded (`fold`): every incident's state in a few statements (fold.py), its SLA
timers set or cancelled in two more (timers.py), and the roots already posted read in one. Then each event is
delivered (`deliver`), in its incident's order: make sure each channel has its root (threads.py), reply once,
draft the post-mortem on resolve (once, in the alerts thread, linked from the others). A root posted for an event
shows the incident as of that event; when later events change what it shows, one debounced edit follows
(`flush_roots`). In a channel that is in a storm, an incident's waiting events of the batch share one timeline
reply (coalesce.py): there Slack's per-channel rate, not the events, is the bound."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks, digest_thread, lines
from handlers.incidents.coalesce import Line, fits, group_members, post_group
from handlers.incidents.events import channels_for, event_from, priority_before, resolution_note, view_of
from handlers.incidents.fold import Folded, apply_events
from handlers.incidents.model import IncidentView, InGroup, RetryLater
from handlers.incidents.pass_replies import PassReplies, Wanted
from handlers.incidents.pass_replies import post_once as post_reply
from handlers.incidents.postmortem import post_postmortem
from handlers.incidents.threads import (
    Root,
    ensure_root,
    in_storm,
    mark_digest_dirty,
    mark_root_dirty,
)
from handlers.incidents.timers import schedule_timers, timer_plan
from integrations.pagerduty_webhooks import MalformedWebhook, WebhookEvent

log = logging.getLogger(__name__)

#: How many of a batch's incidents look for (and post) a root not yet known at once: as many as the worker
#: delivered incidents at once before issue 16, when a storm's threshold was tuned (see `Batch.new_roots`).
NEW_ROOTS_AT_ONCE = 8

#: What an on-call needs first: a new incident and a change of its state (who holds it, whether it is over).
#: Notes, priorities, responders and the rest follow; within an incident the order is always the events'.
URGENT_EVENT_TYPES = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.escalated",
    "incident.reassigned",
    "incident.delegated",
    "incident.resolved",
    "incident.reopened",
)


@dataclass
class Batch:
    """What the fold left, for the deliveries of the pass: each incident's state and the roots known posted
    (a root's `ts`, once recorded, never changes: later events of the pass reuse it without a query)."""

    incidents: dict[str, Folded]
    roots: dict[tuple[str, str], Root] = field(default_factory=dict)
    #: Every `incident_roots` row of the batch's incidents as the fold read it (posted or not), and the roots whose
    #: row the pass may have changed without posting them (joined a digest, refused): read again when needed.
    root_rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reread: set[tuple[str, str]] = field(default_factory=set)
    lines: dict[str, Line] = field(default_factory=dict)
    #: A storm is noticed by counting the roots claimed in the last minute (threads.in_storm): incidents posting
    #: their first root all at once would all read "no storm" before any had claimed it. So however many
    #: incidents the worker delivers at once, at most NEW_ROOTS_AT_ONCE of them look for a root not yet known.
    new_roots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(NEW_ROOTS_AT_ONCE))
    digests_marked: set[int] = field(default_factory=set)
    #: Each incident's events in the order they are delivered, and the replies already claimed when the batch
    #: was folded, (event, channel) → the timeline reply it is part of (None: a reply of its own).
    events: dict[str, list[WebhookEvent]] = field(default_factory=dict)
    claimed: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: (event, channel) whose line a timeline reply of this pass already carries.
    covered: set[tuple[str, str]] = field(default_factory=set)
    storms: dict[str, bool] = field(default_factory=dict)
    #: The pass's own reply claims, made channel by channel and recorded together by `finish`.
    replies: PassReplies | None = None
    #: (incident, channel) → the open storm digest it is listed in (its events are lines in the digest's thread,
    #: digest_thread.py), and the (event, channel) whose line is queued or posted there already.
    members: dict[tuple[str, str], int] = field(default_factory=dict)
    digest_lines: set[tuple[str, str]] = field(default_factory=set)

    async def storm(self, bot: BotContext, channel: str, now: datetime) -> bool:
        """Whether `channel` is in a storm (threads.in_storm), asked once per pass: only then are an incident's
        waiting events coalesced. Outside a storm Slack's rate is no bound and each event keeps its own reply."""
        if channel not in self.storms:
            self.storms[channel] = await in_storm(bot, channel, now)
        return self.storms[channel]

    def after(self, event: WebhookEvent) -> list[WebhookEvent]:
        """The incident's events of the batch that follow `event`."""
        assert event.incident_id is not None
        queue = self.events.get(event.incident_id, [])
        ids = [e.event_id for e in queue]
        return queue[ids.index(event.event_id) + 1 :] if event.event_id in ids else []


async def fold(bot: BotContext, bodies: list[bytes], now: datetime) -> Batch:
    """Fold a claimed batch into its incidents, and claim the replies its events will post (pass_replies.py). A
    malformed body is left out here; its own delivery says so. The claims are the caller's to `finish`."""
    events: list[WebhookEvent] = []
    for body in bodies:
        try:
            event = event_from(body)
        except MalformedWebhook:
            continue
        if event.incident_id is not None:
            events.append(event)
    incidents = await apply_events(bot, events, now)
    batch = Batch(incidents)
    if not incidents:
        return batch
    for event in events:
        assert event.incident_id is not None
        batch.events.setdefault(event.incident_id, []).append(event)
    types: dict[str, set[str]] = {}
    for event in events:
        assert event.incident_id is not None
        types.setdefault(event.incident_id, set()).add(event.event_type)
    plans = {
        incident_id: timer_plan(view_of(bot, folded.row), types[incident_id], folded.first_event_at, now)
        for incident_id, folded in incidents.items()
    }
    await schedule_timers(bot, plans, now)
    async with bot.storage.autocommit() as conn:  # two reads: no transaction needed around them
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute("SELECT * FROM incident_roots WHERE incident_id = ANY(%s)", (sorted(incidents),))
        for row in await cursor.fetchall():
            batch.root_rows[(row["incident_id"], row["channel"])] = row
            if row["ts"] is not None:
                batch.roots[(row["incident_id"], row["channel"])] = Root(
                    row["channel"], row["channel_id"], row["ts"], row["in_digest"]
                )
        cursor = await conn.execute(
            "SELECT event_id, channel, part_of, digest_id FROM incident_replies WHERE event_id = ANY(%s)",
            ([event.event_id for event in events],),
        )
        for event_id, channel, part_of, digest_id in await cursor.fetchall():
            if digest_id is not None:
                batch.digest_lines.add((event_id, channel))
            else:
                batch.claimed[(event_id, channel)] = part_of
    batch.members = await digest_thread.open_memberships(bot, sorted(incidents))
    batch.replies = PassReplies(now)
    batch.replies.expect(_wanted(bot, batch))
    return batch


def _wanted(bot: BotContext, batch: Batch) -> list[Wanted]:
    """The replies the batch's events will post, each its own: an event's line in every channel of its incident
    (not a trigger: the root is its post), and a resolve's post-mortem draft and links. Those already claimed
    when the batch was folded are left to the one-reply path."""
    wanted = []
    for incident_id, queue in batch.events.items():
        folded = batch.incidents[incident_id]
        for event in queue:
            if event.event_type == "incident.triggered":
                continue
            channels = channels_for(bot, view_of(bot, folded.after_event[event.event_id][0]))
            wanted += [
                Wanted(event.event_id, channel, incident_id, event.event_type)
                for channel in channels
                if (event.event_id, channel) not in batch.claimed
            ]
            if event.event_type == "incident.resolved":
                wanted.append(Wanted(f"postmortem:{incident_id}", channels[0], incident_id, "postmortem"))
                wanted += [
                    Wanted(f"postmortem_link:{incident_id}", channel, incident_id, "postmortem_link")
                    for channel in channels[1:]
                ]
    return wanted


async def finish(bot: BotContext, batch: Batch) -> None:
    """After the pass's deliveries: record the replies it posted, give back the claims it did not use."""
    if batch.replies is not None:
        await batch.replies.finish(bot)


async def deliver(
    bot: BotContext, budget: ChannelBudget, body: bytes, now: datetime, batch: Batch | None = None
) -> None:
    """Deliver one stored event of a folded batch (folded on its own when the batch does not hold it): make sure
    each channel has its root, reply once."""
    event = event_from(body)
    assert event.incident_id is not None
    if batch is not None and event.incident_id in batch.incidents:
        await _deliver(bot, budget, event, now, batch)
        return
    own = await fold(bot, [body], now)
    try:
        await _deliver(bot, budget, event, now, own)
    finally:
        await finish(bot, own)


async def _deliver(
    bot: BotContext, budget: ChannelBudget, event: WebhookEvent, now: datetime, batch: Batch
) -> None:
    assert event.incident_id is not None
    folded = batch.incidents[event.incident_id]
    row, changed = folded.after_event[event.event_id]
    view = view_of(bot, row)
    triggered = event.event_type == "incident.triggered"

    async def in_channel(channel: str) -> Root | None:
        known = batch.roots.get((view.id, channel))
        member = batch.members.get((view.id, channel))
        if known is None and (event.event_id, channel) in batch.digest_lines:
            return (
                None  # delivered again: its line is in the storm digest's thread already (digest_thread.py)
            )
        if known is None and member is not None:  # listed in a storm digest while the storm lasts: stays
            root = Root(channel, None, None, member)
        elif known is not None:
            root = known
        else:
            rows = None if (view.id, channel) in batch.reread else batch.root_rows
            try:
                async with batch.new_roots:
                    root = await ensure_root(
                        bot, budget, view, channel, now, own_thread=not triggered, rows=rows
                    )
            except BaseException:
                batch.reread.add((view.id, channel))  # its claim may have changed (refused, released)
                raise
            if root.ts is None:
                batch.reread.add((view.id, channel))
        if root.ts is not None:
            batch.roots[(view.id, channel)] = root
        elif root.in_digest is not None:
            batch.members[(view.id, channel)] = root.in_digest
        if changed and root.ts and (known or not root.posted_now) and not folded.marked_dirty:
            # The root shows an earlier moment (posted before this event): one debounced edit shows this one.
            folded.marked_dirty = True
            await mark_root_dirty(bot, view.id, now)
        if root.in_digest and (changed or root.ts is None) and root.in_digest not in batch.digests_marked:
            # Listed in a storm digest: its line shows the incident's state, so the digest is edited (debounced).
            batch.digests_marked.add(root.in_digest)
            await mark_digest_dirty(bot, root.in_digest, now)
        if root.ts is None and root.in_digest is not None and not triggered:
            if (event.event_id, channel) not in batch.digest_lines:
                if batch.replies is not None:  # a line in the digest's thread, not a reply of its own
                    await batch.replies.give_back(bot, event.event_id, channel)
                line = await _line(bot, event, view.id)
                await digest_thread.queue(bot, root.in_digest, channel, view, line, now)
            return root
        if not triggered and root.ts is not None:
            await _reply(bot, budget, batch, event, view, root, now)
        return root

    # Channel by channel, in `channels_for`'s order (the alerts channel first): what an incident's events do in
    # Slack stays deterministic; the pass overlaps incidents instead (bot/delivery.py CONCURRENT_INCIDENTS).
    roots = [root for channel in channels_for(bot, view) if (root := await in_channel(channel)) is not None]
    if event.event_type == "incident.resolved":
        await post_postmortem(bot, budget, view, roots, now, batch.replies)


async def _line(bot: BotContext, event: WebhookEvent, incident_id: str) -> Line:
    previous_priority = (
        await priority_before(bot, event) if event.event_type == "incident.priority_updated" else None
    )
    resolution = await resolution_note(bot, incident_id) if event.event_type == "incident.resolved" else None
    return Line(event.event_id, event.event_type, lines.reply_text(event, previous_priority, resolution))


async def _reply(
    bot: BotContext,
    budget: ChannelBudget,
    batch: Batch,
    event: WebhookEvent,
    view: IncidentView,
    root: Root,
    now: datetime,
) -> None:
    """The event's line in the root's thread, once: a timeline reply with the incident's next events of the batch
    when several are waiting (coalesce.py), else a reply of its own (in parts when it is longer than a message)."""
    where = (event.event_id, root.channel)
    if (
        where in batch.covered or where in batch.digest_lines
    ):  # the latter: a line of the storm digest's thread
        return
    fallback = blocks.fallback_text(view, "update")
    if batch.claimed.get(where):
        await _group_again(bot, budget, batch, view.id, root, now, str(batch.claimed[where]), fallback)
        return
    if event.event_id not in batch.lines:  # the same words in every channel: read once (a resolve's note)
        batch.lines[event.event_id] = await _line(bot, event, view.id)
    line = batch.lines[event.event_id]
    if where not in batch.claimed and fits([], line) and await batch.storm(bot, root.channel, now):
        group = [line]
        for later in batch.after(event):
            if later.event_type == "incident.triggered" or (later.event_id, root.channel) in batch.claimed:
                break
            candidate = await _line(bot, later, view.id)
            if not fits(group, candidate):
                break
            group.append(candidate)
        if len(group) > 1:
            await post_group(bot, budget, view.id, root, now, group, fresh=True, fallback=fallback)
            batch.covered.update((member.key, root.channel) for member in group)
            return
    if batch.replies is not None and not await batch.storm(bot, root.channel, now):
        await batch.replies.claim(bot, root.channel)  # the pass's replies in this channel, in one statement
    try:
        for part, part_text in enumerate(lines.reply_parts(line.text), 1):
            # A reply too long for one message is several, each claimed once: the first by the event's id.
            key = event.event_id if part == 1 else f"{event.event_id}#{part}"
            await post_reply(
                bot,
                budget,
                batch.replies,
                key,
                event.event_type,
                view.id,
                root,
                now,
                part_text,
                fallback=fallback,
            )
    except InGroup as grouped:  # claimed as part of a timeline reply since the batch was folded
        await _group_again(bot, budget, batch, view.id, root, now, grouped.lead, fallback)


async def _group_again(
    bot: BotContext,
    budget: ChannelBudget,
    batch: Batch,
    incident_id: str,
    root: Root,
    now: datetime,
    lead: str,
    fallback: str,
) -> None:
    """A timeline reply claimed before (a redelivery, a worker that died mid-post): recorded, looked up or taken
    over as the whole group, with its lines as its claim rows list them."""
    members = await group_members(bot, lead, root.channel)
    if not members:
        raise RetryLater(f"timeline reply {lead} in {root.channel} was given up just now")
    known = {e.event_id: e for e in batch.events.get(incident_id, [])}
    missing = [key for key, _ in members if key not in known]
    if missing:
        async with bot.storage.pool.connection() as conn:
            cursor = await conn.execute("SELECT body FROM pd_webhooks WHERE event_id = ANY(%s)", (missing,))
            for (body,) in await cursor.fetchall():
                event = event_from(bytes(body))
                known[event.event_id] = event
    group = [await _line(bot, known[key], incident_id) for key, _ in members if key in known]
    if len(group) != len(members):
        raise RetryLater(f"timeline reply {lead} in {root.channel}: an event is missing")
    await post_group(bot, budget, incident_id, root, now, group, fresh=False, fallback=fallback)
    batch.covered.update((key, root.channel) for key, _ in members)
