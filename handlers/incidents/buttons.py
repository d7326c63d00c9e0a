"""The buttons on an incident's root: Acknowledge, Resolve (with a resolution note), Add note, and the post-mortem
draft's "Post-mortem scheduled".

They act in PagerDuty through its REST API with `From` set to the clicking user's email (Slack `users.info`;
PAGERDUTY_FROM_EMAIL as fallback). The click is answered ephemerally at once; the thread itself is updated by the
webhook PagerDuty sends back, so Slack and PagerDuty never disagree. A PagerDuty error is shown to the clicking
user in PagerDuty's words. A short lock per incident and action (Redis, else Postgres) turns a double click
into one call.

PagerDuty that does not answer a write in time (PAGERDUTY_TIMEOUT_SECONDS) may still have applied it -- under load
it acts at once and answers late -- so that is never told as a failure. The clicker is told what is known ("no
answer yet — it may still apply"), then the bot reads the incident back (`GET /incidents/{id}`, or its notes) and
tells the clicker, ephemerally, what PagerDuty shows. Ephemeral because the outcome concerns the click: the
thread already hears of an applied change from PagerDuty's webhook, and a failed click is nobody else's news.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.exceptions
from slack_sdk.errors import SlackApiError

from bot import mrkdwn, slack_replays
from bot.audit import audit
from bot.commands import Action, Modal
from bot.context import ActionContext, BotContext, ViewContext
from handlers.incidents import blocks, threads
from handlers.incidents.model import RetryLater
from integrations.pagerduty import PagerDutyClient, PagerDutyError

log = logging.getLogger(__name__)

RESOLVE_MODAL = "incident_resolve_modal"
NOTE_MODAL = "incident_note_modal"
CLICK_LOCK_SECONDS = 10
#: Reads of the incident after a write without an answer; between two, PAGERDUTY_TIMEOUT_SECONDS pass.
READ_BACKS = 3
_WANTED = {"acknowledge": "acknowledged", "resolve": "resolved"}
_CHANGE = {"acknowledge": "acknowledgement", "resolve": "resolution", "note": "note"}

Say = Callable[[str], Awaitable[Any]]


async def email_of(bot: BotContext, user_id: str) -> str | None:
    try:
        info = await bot.slack.users_info(user=user_id)
    except SlackApiError:
        return None
    return ((info.get("user") or {}).get("profile") or {}).get("email")


def _client(bot: BotContext) -> PagerDutyClient | None:
    return bot.pagerduty


async def click_once(bot: BotContext, key: str, user_id: str) -> bool:
    """The first click within CLICK_LOCK_SECONDS: in Redis, or — when Redis does not answer — in Postgres
    (bot/slack_replays.py's fallback table), so a double click reaches PagerDuty once either way."""
    try:
        return bool(await bot.storage.redis.set(key, user_id, nx=True, ex=CLICK_LOCK_SECONDS))
    except redis.exceptions.RedisError:
        return await slack_replays.claim(bot, key, CLICK_LOCK_SECONDS) is not None


async def record(
    bot: BotContext,
    incident_id: str,
    actor: str,
    action: str,
    detail: str | None,
    ok: bool,
    *,
    outcome: str | None = None,
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
        outcome=outcome or ("ok" if ok else "failed"),
        target=incident_id,
        after=detail,
    )


async def _act(
    bot: BotContext, user_id: str, incident_id: str, action: str, detail: str | None, say: Say
) -> None:
    """Call PagerDuty and tell the clicking user (`say`) what happened -- or, without an answer, what is known
    and then what reading the incident back showed."""
    client = _client(bot)
    if client is None:
        await say(
            ":warning: PagerDuty is not configured: set PAGERDUTY_API_TOKEN (and PAGERDUTY_FROM_EMAIL)."
        )
        return
    if not await click_once(bot, f"incident:{incident_id}:click:{action}", user_id):
        await say(f"Already asking PagerDuty to {action} this incident.")
        return
    email = await email_of(bot, user_id)
    try:
        if action == "acknowledge":
            await client.acknowledge(incident_id, from_email=email)
        elif action == "resolve":
            await client.resolve(incident_id, from_email=email, resolution=detail)
        else:
            await client.add_note(incident_id, from_email=email, content=detail or "")
    except PagerDutyError as exc:
        if not exc.may_have_applied:
            await record(bot, incident_id, user_id, action, detail, ok=False)
            await say(f":x: {mrkdwn.escape(exc)}")  # PagerDuty's words are outside text
            return
        await say(
            f":hourglass_flowing_sand: {mrkdwn.escape(exc)}: no answer yet — it may still apply. "
            f"Reading the incident back from PagerDuty…"
        )
        await say(await _read_back(bot, client, user_id, incident_id, action, detail))
        return
    await record(bot, incident_id, user_id, action, detail, ok=True)
    done = {"acknowledge": "acknowledged", "resolve": "resolved", "note": "noted"}[action]
    await say(f"PagerDuty {done} it; the thread updates when PagerDuty confirms.")


async def _shows(
    client: PagerDutyClient, incident_id: str, action: str, detail: str | None
) -> tuple[bool | None, str]:
    """(applied?, what PagerDuty shows): the incident's status, or whether the note is among its notes. Applied is
    None when it no longer matters: an incident resolved meanwhile leaves an acknowledgement nothing to do."""
    if action == "note":
        notes = await client.notes(incident_id)
        applied = any(n.get("content") == detail for n in notes)
        return applied, "your note on the incident" if applied else "no such note on the incident"
    status = (await client.incident(incident_id)).get("status")
    shown = f"the incident {mrkdwn.escape(status) if status else 'without a status'}"
    if action == "acknowledge" and status == "resolved":
        return None, shown
    return status == _WANTED[action], shown


async def _read_back(
    bot: BotContext, client: PagerDutyClient, user_id: str, incident_id: str, action: str, detail: str | None
) -> str:
    """Read the incident back up to READ_BACKS times (PagerDuty may apply the write late); the outcome in words,
    recorded and audited as it turned out."""
    change = _CHANGE[action]
    try:
        for attempt in range(READ_BACKS):
            if attempt:
                await asyncio.sleep(client.timeout)
            applied, shown = await _shows(client, incident_id, action, detail)
            if applied is not False:
                break
    except PagerDutyError as exc:
        await record(bot, incident_id, user_id, action, detail, ok=False, outcome="unknown")
        return (
            f":warning: I could not read the incident back ({mrkdwn.escape(exc)}): your {change} may or may not have applied. "
            "Check the incident in PagerDuty before trying again."
        )
    if applied is None:
        await record(bot, incident_id, user_id, action, detail, ok=False, outcome="superseded")
        return f":information_source: PagerDuty shows {shown}: there is nothing left for your {change} to do."
    await record(bot, incident_id, user_id, action, detail, ok=applied)
    if not applied:
        return f":x: PagerDuty shows {shown}: your {change} did not apply. Try again."
    return (
        f":white_check_mark: PagerDuty shows {shown}: your {change} applied after all. "
        "The thread updates when PagerDuty confirms."
    )


async def acknowledge(ctx: ActionContext) -> None:
    if ctx.value:
        await _act(ctx.bot, ctx.user_id, ctx.value, "acknowledge", None, ctx.reply.ephemeral)


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
    await _act(ctx.bot, ctx.user_id, incident_id, action, text, ctx.reply.ephemeral)


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
                """UPDATE incident_timers SET cancelled_at = %s
                   WHERE incident_id = %s AND kind = 'postmortem_reminder' AND fired_at IS NULL""",
                (bot.clock(), incident_id),
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
        root = threads.Root(ctx.channel_id, ctx.channel_id, _thread_of(ctx), None)
        with contextlib.suppress(SlackApiError, RetryLater):
            await threads.post_once(
                bot,
                bot.budget,
                f"postmortem_scheduled:{incident_id}",
                "postmortem_scheduled",
                incident_id,
                root,
                bot.clock(),
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
