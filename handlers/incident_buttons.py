"""The buttons on an incident's root: Acknowledge, Resolve (with a resolution note), Add note, and the post-mortem
draft's "Post-mortem scheduled".

They act in PagerDuty through its REST API with `From` set to the clicking user's email (Slack `users.info`;
PAGERDUTY_FROM_EMAIL as fallback). The click is answered ephemerally at once; the thread itself is updated by the
webhook PagerDuty sends back, so Slack and PagerDuty never disagree. A PagerDuty error is shown to the clicking
user in PagerDuty's words. A short Redis lock per incident and action turns a double click into one call.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import redis.exceptions
from slack_sdk.errors import SlackApiError

from bot.audit import audit
from bot.commands import Action, Modal
from bot.context import ActionContext, BotContext, ViewContext
from bot.scheduler import utc_now
from bot.slack_budget import ChannelBudget
from handlers import incidents
from handlers import incidents_blocks as blocks
from integrations.pagerduty import PagerDutyClient, PagerDutyError

log = logging.getLogger(__name__)

RESOLVE_MODAL = "incident_resolve_modal"
NOTE_MODAL = "incident_note_modal"
CLICK_LOCK_SECONDS = 10


async def _email(bot: BotContext, user_id: str) -> str | None:
    try:
        info = await bot.slack.users_info(user=user_id)
    except SlackApiError:
        return None
    return ((info.get("user") or {}).get("profile") or {}).get("email")


def _client(bot: BotContext) -> PagerDutyClient | None:
    return bot.pagerduty


async def _once(bot: BotContext, key: str, user_id: str) -> bool:
    try:
        return bool(await bot.storage.redis.set(key, user_id, nx=True, ex=CLICK_LOCK_SECONDS))
    except redis.exceptions.RedisError:
        return True  # without Redis a double click may reach PagerDuty twice; PagerDuty answers the second


async def _record(
    bot: BotContext, incident_id: str, actor: str, action: str, detail: str | None, ok: bool
) -> None:
    async with bot.storage.pool.connection() as conn:
        if ok:
            await conn.execute(
                "INSERT INTO incident_actions (incident_id, actor, action, detail) VALUES (%s, %s, %s, %s)",
                (incident_id, actor, action, detail),
            )
    await audit(
        bot.storage.pool,
        actor=actor,
        action=f"incident.{action}",
        outcome="ok" if ok else "failed",
        target=incident_id,
        after=detail,
    )


async def _act(bot: BotContext, user_id: str, incident_id: str, action: str, detail: str | None) -> str:
    """Call PagerDuty; return what the clicking user is told."""
    client = _client(bot)
    if client is None:
        return ":warning: PagerDuty is not configured: set PAGERDUTY_API_TOKEN (and PAGERDUTY_FROM_EMAIL)."
    if not await _once(bot, f"incident:{incident_id}:click:{action}", user_id):
        return f"Already asking PagerDuty to {action} this incident."
    email = await _email(bot, user_id)
    try:
        if action == "acknowledge":
            await client.acknowledge(incident_id, from_email=email)
        elif action == "resolve":
            await client.resolve(incident_id, from_email=email, resolution=detail)
        else:
            await client.add_note(incident_id, from_email=email, content=detail or "")
    except PagerDutyError as exc:
        await _record(bot, incident_id, user_id, action, detail, ok=False)
        return f":x: {exc}"
    await _record(bot, incident_id, user_id, action, detail, ok=True)
    done = {"acknowledge": "acknowledged", "resolve": "resolved", "note": "noted"}[action]
    return f"PagerDuty {done} it; the thread updates when PagerDuty confirms."


async def acknowledge(ctx: ActionContext) -> None:
    if ctx.value:
        await ctx.reply.ephemeral(await _act(ctx.bot, ctx.user_id, ctx.value, "acknowledge", None))


def _modal(
    callback_id: str, title: str, submit: str, label: str, metadata: dict[str, Any], *, optional: bool
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "text",
                "optional": optional,
                "label": {"type": "plain_text", "text": label},
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
            }
        ],
    }


async def _open(
    ctx: ActionContext, callback_id: str, title: str, submit: str, label: str, optional: bool
) -> None:
    trigger = ctx.payload.get("trigger_id")
    if not ctx.value or not trigger:
        return
    metadata = {"incident": ctx.value, "channel": ctx.channel_id, "ts": ctx.message_ts}
    await ctx.bot.slack.views_open(
        trigger_id=trigger, view=_modal(callback_id, title, submit, label, metadata, optional=optional)
    )


async def open_resolve(ctx: ActionContext) -> None:
    await _open(
        ctx, RESOLVE_MODAL, "Resolve incident", "Resolve", "Resolution note (optional)", optional=True
    )


async def open_note(ctx: ActionContext) -> None:
    await _open(ctx, NOTE_MODAL, "Add a note", "Add note", "Note", optional=False)


async def _submitted(ctx: ViewContext, action: str) -> None:
    metadata = json.loads(ctx.private_metadata or "{}")
    incident_id = metadata.get("incident")
    if not incident_id:
        return
    text = (ctx.values.get("text") or "").strip() or None
    await ctx.reply.ephemeral(await _act(ctx.bot, ctx.user_id, incident_id, action, text))


async def resolve_submitted(ctx: ViewContext) -> None:
    await _submitted(ctx, "resolve")


async def note_submitted(ctx: ViewContext) -> None:
    await _submitted(ctx, "note")


async def postmortem_scheduled(ctx: ActionContext) -> None:
    """Mark the post-mortem as scheduled: once, said in the thread, and the 48-hour reminder is cancelled."""
    incident_id = ctx.value
    if not incident_id:
        return
    bot = ctx.bot
    async with bot.storage.pool.connection() as conn:
        exists = await (
            await conn.execute(
                """SELECT actor FROM incident_actions WHERE incident_id = %s AND action = 'postmortem_scheduled'""",
                (incident_id,),
            )
        ).fetchone()
        if exists is None:
            await conn.execute(
                "INSERT INTO incident_actions (incident_id, actor, action) VALUES (%s, %s, 'postmortem_scheduled')",
                (incident_id, ctx.user_id),
            )
            await conn.execute(
                """UPDATE incident_timers SET cancelled_at = now()
                   WHERE incident_id = %s AND kind = 'postmortem_reminder' AND fired_at IS NULL""",
                (incident_id,),
            )
    if exists is not None:
        await ctx.reply.ephemeral(f"Already marked as scheduled by <@{exists[0]}>.")
        return
    await audit(
        bot.storage.pool,
        actor=ctx.user_id,
        action="incident.postmortem_scheduled",
        outcome="ok",
        target=incident_id,
    )
    if ctx.message_ts:
        root = incidents.Root(ctx.channel_id, ctx.channel_id, _thread_of(ctx), None)
        with contextlib.suppress(SlackApiError, incidents.RetryLater):
            await incidents.post_once(
                bot,
                ChannelBudget(bot.storage.redis, per_second=bot.settings.slack_posts_per_second),
                f"postmortem_scheduled:{incident_id}",
                "postmortem_scheduled",
                incident_id,
                root,
                utc_now(),
                f":spiral_calendar_pad: Post-mortem scheduled by <@{ctx.user_id}>.",
                fallback=f":spiral_calendar_pad: Post-mortem scheduled by <@{ctx.user_id}>.",  # text only already
            )
    await ctx.reply.ephemeral("Marked as scheduled; no reminder will follow.")


def _thread_of(ctx: ActionContext) -> str | None:
    message = ctx.payload.get("message") or {}
    return message.get("thread_ts") or ctx.message_ts


ACTIONS = (
    Action(blocks.ACK_ACTION, acknowledge),
    Action(blocks.RESOLVE_ACTION, open_resolve),
    Action(blocks.NOTE_ACTION, open_note),
    Action(blocks.POSTMORTEM_ACTION, postmortem_scheduled),
)
MODALS = (Modal(RESOLVE_MODAL, resolve_submitted), Modal(NOTE_MODAL, note_submitted))
