"""The post-mortem draft posted when an incident resolves: its timeline from the stored events, and what the
incident's own service's runbook asks next (catalog `postmortem`: Mira §1 "Document incidents in post-mortem
template", Ivy "Post-Incident", FA P0 "Schedule post-mortem within 48 hours"). One draft per incident, in the
alerts thread; the incidents thread links to it."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.context import BotContext
from bot.replies import permalink
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks, lines
from handlers.incidents.events import event_from, resolution_note
from handlers.incidents.model import IncidentView, TimelineEntry
from handlers.incidents.pass_replies import PassReplies, post_once
from handlers.incidents.threads import Root

log = logging.getLogger(__name__)


async def timeline(bot: BotContext, incident_id: str) -> list[TimelineEntry]:
    """The incident's story from its stored events, for the post-mortem draft."""
    async with bot.storage.autocommit() as conn:
        cursor = await conn.execute(
            """SELECT body FROM pd_webhooks WHERE incident_id = %s AND status IN ('pending', 'delivered')
               ORDER BY occurred_at, id""",
            (incident_id,),
        )
        rows = await cursor.fetchall()
    entries = []
    resolution = await resolution_note(bot, incident_id)
    for (body,) in rows:
        event = event_from(bytes(body))
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
    bot: BotContext,
    budget: ChannelBudget,
    view: IncidentView,
    roots: list[Root],
    now: datetime,
    replies: PassReplies | None = None,
) -> None:
    """One draft per incident, in its first channel's thread (the alerts channel: `channels_for` lists it first),
    and in every other channel's thread a line linking to it. Each is claimed once (threads.post_once over
    bot/slack_once.py), so a redelivered resolve, a retry or a second replica neither posts a second draft nor a
    second link; the link is found again from the draft's recorded `ts`. `replies`: the delivery pass's claims
    (pass_replies.py), when it claimed these with its events' replies."""
    threads_ = [root for root in roots if root.ts is not None]
    if not threads_:
        return
    home, others = threads_[0], threads_[1:]
    text, draft = blocks.render_postmortem(view, await timeline(bot, view.id))
    posted = await post_once(
        bot,
        budget,
        replies,
        f"postmortem:{view.id}",
        "postmortem",
        view.id,
        home,
        now,
        text,
        draft,
        fallback=blocks.fallback_text(view, "post-mortem draft"),
    )
    if not others:
        return
    where = await permalink(bot.slack, posted.channel_id or home.channel_id, posted.ts)
    line = blocks.postmortem_link_text(view, home.channel, where)
    for root in others:
        await post_once(
            bot,
            budget,
            replies,
            f"postmortem_link:{view.id}",
            "postmortem_link",
            view.id,
            root,
            now,
            line,
            fallback=line,
        )
