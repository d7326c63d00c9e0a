"""The post-mortem draft posted in the thread when an incident resolves: its timeline from the stored events, and
the runbook section to follow (FA P0 "Schedule post-mortem within 48 hours")."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks, lines
from handlers.incidents.events import resolution_note
from handlers.incidents.model import IncidentView, TimelineEntry
from handlers.incidents.threads import Root, post_once
from integrations.pagerduty_webhooks import parse_webhook

log = logging.getLogger(__name__)


async def timeline(bot: BotContext, incident_id: str) -> list[TimelineEntry]:
    """The incident's story from its stored events, for the post-mortem draft."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT body FROM pd_webhooks WHERE incident_id = %s AND status IN ('pending', 'delivered')
               ORDER BY occurred_at, id""",
            (incident_id,),
        )
        rows = await cursor.fetchall()
    entries = []
    resolution = await resolution_note(bot, incident_id)
    for (body,) in rows:
        event = parse_webhook(bytes(body))
        text = (
            "Triggered"
            if event.event_type == "incident.triggered"
            else lines.reply_text(
                event, None, resolution if event.event_type == "incident.resolved" else None
            )
        )
        entries.append(TimelineEntry(event.occurred_at, _plain(text)))
    return entries


def _plain(text: str) -> str:
    parts = text.split(" ", 1)
    return parts[1] if parts[0].startswith(":") and parts[0].endswith(":") and len(parts) > 1 else text


async def post_postmortem(
    bot: BotContext, budget: ChannelBudget, view: IncidentView, root: Root, now: datetime
) -> None:
    text, draft = blocks.render_postmortem(view, await timeline(bot, view.id))
    await post_once(
        bot,
        budget,
        f"postmortem:{view.id}",
        "postmortem",
        view.id,
        root,
        now,
        text,
        draft,
        fallback=blocks.fallback_text(view, "post-mortem draft"),
    )
