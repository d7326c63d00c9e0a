"""One stored PagerDuty event through its incident, as the delivery worker hands it over (bot/delivery.py): fold
it into the incident (events.py), make sure each channel has its root (threads.py), reply once, draft the
post-mortem on resolve (once, in the alerts thread, linked from the others), and set or cancel the SLA
timers."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks, lines
from handlers.incidents.events import apply_event, channels_for, resolution_note, view_of
from handlers.incidents.postmortem import post_postmortem
from handlers.incidents.threads import ensure_root, mark_digest_dirty, mark_root_dirty, post_once
from handlers.incidents.timers import schedule_timers
from integrations.pagerduty_webhooks import parse_webhook

log = logging.getLogger(__name__)


# --- delivery -----------------------------------------------------------------------------------------------------


async def deliver(bot: BotContext, budget: ChannelBudget, body: bytes, now: datetime) -> None:
    """Deliver one stored event: fold it into the incident, make sure each channel has its root, reply once."""
    event = parse_webhook(body)
    row, previous_priority, changed = await apply_event(bot, event, now)
    view = view_of(bot, row)
    triggered = event.event_type == "incident.triggered"
    roots = []
    for channel in channels_for(bot, view):
        root = await ensure_root(bot, budget, view, channel, now, own_thread=not triggered)
        roots.append(root)
        if changed and not root.posted_now and root.ts:
            await mark_root_dirty(bot, view.id, now)
        if triggered or root.ts is None:
            if root.in_digest:
                await mark_digest_dirty(bot, root.in_digest, now)
            continue
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
    await schedule_timers(bot, view, event, now)
