"""Stored PagerDuty events through their incidents, as the delivery worker hands them over (bot/delivery.py).

First the whole claimed batch is folded (`fold`): every incident's state in a few statements (fold.py), its SLA
timers set or cancelled in two more (timers.py), and the roots already posted read in one. Then each event is
delivered (`deliver`), in its incident's order: make sure each channel has its root (threads.py), reply once,
draft the post-mortem on resolve (once, in the alerts thread, linked from the others). A root posted in the pass
shows the state the batch left; a root posted before it is marked for one debounced edit (`flush_roots`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks, lines
from handlers.incidents.events import channels_for, priority_before, resolution_note, view_of
from handlers.incidents.fold import Folded, apply_events
from handlers.incidents.postmortem import post_postmortem
from handlers.incidents.threads import Root, ensure_root, mark_digest_dirty, mark_root_dirty, post_once
from handlers.incidents.timers import schedule_timers, timer_plan
from integrations.pagerduty_webhooks import MalformedWebhook, WebhookEvent, parse_webhook

log = logging.getLogger(__name__)

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
    digests_marked: set[int] = field(default_factory=set)


async def fold(bot: BotContext, bodies: list[bytes], now: datetime) -> Batch:
    """Fold a claimed batch into its incidents. A malformed body is left out here; its own delivery says so."""
    events: list[WebhookEvent] = []
    for body in bodies:
        try:
            event = parse_webhook(body)
        except MalformedWebhook:
            continue
        if event.incident_id is not None:
            events.append(event)
    incidents = await apply_events(bot, events, now)
    batch = Batch(incidents)
    if not incidents:
        return batch
    types: dict[str, set[str]] = {}
    for event in events:
        assert event.incident_id is not None
        types.setdefault(event.incident_id, set()).add(event.event_type)
    plans = {
        incident_id: timer_plan(view_of(bot, folded.row), types[incident_id], folded.first_event_at, now)
        for incident_id, folded in incidents.items()
    }
    await schedule_timers(bot, plans, now)
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT incident_id, channel, channel_id, ts, in_digest FROM incident_roots
               WHERE incident_id = ANY(%s) AND ts IS NOT NULL""",
            (sorted(incidents),),
        )
        for incident_id, channel, channel_id, ts, in_digest in await cursor.fetchall():
            batch.roots[(incident_id, channel)] = Root(channel, channel_id, ts, in_digest)
    return batch


async def deliver(
    bot: BotContext, budget: ChannelBudget, body: bytes, now: datetime, batch: Batch | None = None
) -> None:
    """Deliver one stored event of a folded batch (folded on its own when the batch does not hold it): make sure
    each channel has its root, reply once."""
    event = parse_webhook(body)
    assert event.incident_id is not None
    if batch is None or event.incident_id not in batch.incidents:
        batch = await fold(bot, [body], now)
    folded = batch.incidents[event.incident_id]
    row, changed = folded.after_event[event.event_id]
    view = view_of(bot, row)
    triggered = event.event_type == "incident.triggered"
    roots = []
    for channel in channels_for(bot, view):
        known = batch.roots.get((view.id, channel))
        root = known or await ensure_root(bot, budget, view, channel, now, own_thread=not triggered)
        if root.ts is not None:
            batch.roots[(view.id, channel)] = root
        if changed and root.ts and (known or not root.posted_now) and not folded.marked_dirty:
            # The root shows an earlier moment (posted before this event): one debounced edit shows this one.
            await mark_root_dirty(bot, view.id, now)
            folded.marked_dirty = True
        roots.append(root)
        if root.in_digest and (changed or root.ts is None) and root.in_digest not in batch.digests_marked:
            # Listed in a storm digest: its line shows the incident's state, so the digest is edited (debounced).
            await mark_digest_dirty(bot, root.in_digest, now)
            batch.digests_marked.add(root.in_digest)
        if triggered or root.ts is None:
            continue
        previous_priority = (
            await priority_before(bot, event) if event.event_type == "incident.priority_updated" else None
        )
        resolution = await resolution_note(bot, view.id) if event.event_type == "incident.resolved" else None
        text = lines.reply_text(event, previous_priority, resolution)
        fallback = blocks.fallback_text(view, "update")
        for part, part_text in enumerate(lines.reply_parts(text), 1):
            # A reply too long for one message is several, each claimed once: the first by the event's id.
            key = event.event_id if part == 1 else f"{event.event_id}#{part}"
            await post_once(
                bot, budget, key, event.event_type, view.id, root, now, part_text, fallback=fallback
            )
    if event.event_type == "incident.resolved":
        await post_postmortem(bot, budget, view, roots, now)
