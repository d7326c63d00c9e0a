"""The SLA nudge's **Escalate** button: the incident to the next level of its escalation policy in PagerDuty.

The runbooks' escalation paths (Mira: AI Squad → Backend Team → Engineering Manager; FA: primary → secondary →
manager → VP Engineering) say who comes next when the on-call does not answer; the nudge offers Escalate beside
Acknowledge so the next level is one click away. PagerDuty's `PUT /incidents/{id}` takes `escalation_level`
("Escalate the incident to this level in the escalation policy", REST API `updateIncident`), but its incident
object does not say which level the incident is at. So the level is read from PagerDuty itself: the incident
(`GET /incidents/{id}`: its policy and assignees) and who is on call at each level of that policy (`GET
/oncalls`); the incident is at the lowest level whose on-calls include every assignee, and goes to the next one.
At the policy's top level already, nothing is sent and the clicker and the thread are told so.

Guarded like Acknowledge and Resolve (buttons.py): PagerDuty not configured → how to configure it; `From` is the
clicker's Slack email (PAGERDUTY_FROM_EMAIL as fallback); a short lock per incident (Redis, else Postgres) turns a
double click, or the same click on a second replica, into one escalation; every outcome is recorded and audited.
A write without an answer is not told as a failure: the level is read back. The outcome goes to the clicker
(ephemeral) and, once per level, in the thread the button is in; PagerDuty's `incident.escalated` webhook then
adds its own line, naming who now has the incident, as for any escalation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import mrkdwn
from bot.commands import Action
from bot.context import ActionContext
from handlers.incidents import blocks, buttons, threads
from handlers.incidents.model import RetryLater
from integrations.pagerduty import PagerDutyClient, PagerDutyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Levels:
    """Where an incident stands in its escalation policy, from PagerDuty."""

    current: int | None  # None: its assignees are on call at no level of the policy (reassigned by hand)
    top: int
    on_call: dict[int, tuple[str, ...]]  # level → the names on call there
    status: str | None


def _ids(refs: Iterable[Any], key: str) -> list[str]:
    found = []
    for item in refs:
        ref = item.get(key) if isinstance(item, dict) else None
        if isinstance(ref, dict) and isinstance(ref.get("id"), str):
            found.append(ref["id"])
    return found


def levels_of(incident: dict[str, Any], oncalls: list[dict[str, Any]]) -> Levels:
    """The incident's level: the lowest level of its policy whose on-calls include all its assignees."""
    assignees = set(_ids(incident.get("assignments") or [], "assignee"))
    by_level: dict[int, dict[str, str]] = {}
    for entry in oncalls:
        level = entry.get("escalation_level")
        user = entry.get("user") or {}
        if isinstance(level, int) and not isinstance(level, bool) and isinstance(user.get("id"), str):
            by_level.setdefault(level, {})[user["id"]] = str(user.get("summary") or user["id"])
    matching = [level for level, users in sorted(by_level.items()) if assignees and assignees <= set(users)]
    return Levels(
        current=matching[0] if matching else None,
        top=max(by_level, default=0),
        on_call={level: tuple(users.values()) for level, users in by_level.items()},
        status=incident.get("status"),
    )


async def read_levels(client: PagerDutyClient, incident_id: str) -> Levels:
    incident = await client.incident(incident_id)
    policy = (incident.get("escalation_policy") or {}).get("id")
    oncalls = await client.oncalls(escalation_policy_ids=[policy]) if isinstance(policy, str) else []
    return levels_of(incident, oncalls)


def _names(levels: Levels, level: int) -> str:
    names = levels.on_call.get(level) or ()
    return mrkdwn.listed([mrkdwn.outside(name, 100) for name in names], 500, empty="nobody on call")


async def _tell_thread(ctx: ActionContext, incident_id: str, key: str, text: str) -> None:
    """The outcome in the thread the button is in, once per `key` (bot/slack_once.py through threads.py)."""
    message = ctx.payload.get("message") or {}
    thread_ts = message.get("thread_ts") or ctx.message_ts
    if not thread_ts:
        return
    root = threads.Root(ctx.channel_id, ctx.channel_id, thread_ts, None)
    with contextlib.suppress(SlackApiError, RetryLater):
        await threads.post_once(
            ctx.bot, ctx.bot.budget, key, "escalate", incident_id, root, ctx.bot.clock(), text, fallback=text
        )


async def escalate(ctx: ActionContext) -> None:
    incident_id = ctx.value
    if not incident_id:
        return
    bot, say = ctx.bot, ctx.reply.ephemeral
    client = bot.pagerduty
    if client is None:
        await say(
            ":warning: PagerDuty is not configured: set PAGERDUTY_API_TOKEN (and PAGERDUTY_FROM_EMAIL)."
        )
        return
    if not await buttons.click_once(bot, f"incident:{incident_id}:click:escalate", ctx.user_id):
        await say("Already asking PagerDuty to escalate this incident.")
        return
    try:
        levels = await read_levels(client, incident_id)
    except PagerDutyError as exc:
        await buttons.record(bot, incident_id, ctx.user_id, "escalate", None, ok=False)
        await say(f":x: Could not read the incident's escalation level: {mrkdwn.escape(exc)}")
        return
    if levels.status == "resolved":
        await buttons.record(bot, incident_id, ctx.user_id, "escalate", None, ok=False, outcome="superseded")
        await say(
            ":information_source: PagerDuty shows the incident resolved: there is nobody left to escalate to."
        )
        return
    if levels.current is None:
        await buttons.record(bot, incident_id, ctx.user_id, "escalate", None, ok=False, outcome="unknown")
        await say(
            ":warning: PagerDuty's on-calls do not tell which level of its escalation policy this incident is at "
            "(it was reassigned by hand?): escalate it in PagerDuty, or reassign it there."
        )
        return
    if levels.current >= levels.top:
        detail = f"level {levels.current} of {levels.top}"
        await buttons.record(bot, incident_id, ctx.user_id, "escalate", detail, ok=False, outcome="top_level")
        text = (
            f":warning: <@{ctx.user_id}> asked to escalate, but the incident is already at the top level of its "
            f"escalation policy ({detail}: {_names(levels, levels.current)}). Nobody is above it in PagerDuty."
        )
        await say(text)
        await _tell_thread(ctx, incident_id, f"escalate:{incident_id}:top", text)
        return
    target = levels.current + 1
    detail = f"level {levels.current} → {target}"
    try:
        await client.escalate(
            incident_id, from_email=await buttons.email_of(bot, ctx.user_id), escalation_level=target
        )
    except PagerDutyError as exc:
        if not exc.may_have_applied:
            await buttons.record(bot, incident_id, ctx.user_id, "escalate", detail, ok=False)
            await say(f":x: {mrkdwn.escape(exc)}")  # PagerDuty's words are outside text
            return
        await say(
            f":hourglass_flowing_sand: {mrkdwn.escape(exc)}: no answer yet — it may still apply. "
            "Reading the incident back from PagerDuty…"
        )
        if not await _applied(client, incident_id, target):
            await buttons.record(
                bot, incident_id, ctx.user_id, "escalate", detail, ok=False, outcome="unknown"
            )
            await say(
                f":x: PagerDuty does not show the incident at level {target}: your escalation did not apply, "
                "or not yet. Check the incident in PagerDuty before trying again."
            )
            return
    await buttons.record(bot, incident_id, ctx.user_id, "escalate", detail, ok=True)
    who = _names(levels, target)
    await say(f"PagerDuty escalated it to level {target} of {levels.top} ({who}).")
    await _tell_thread(
        ctx,
        incident_id,
        f"escalate:{incident_id}:{target}",
        f":arrow_double_up: <@{ctx.user_id}> escalated the incident in PagerDuty: level {levels.current} → "
        f"{target} of {levels.top} ({who}).",
    )


async def _applied(client: PagerDutyClient, incident_id: str, target: int) -> bool:
    """Read the level back up to buttons.READ_BACKS times (PagerDuty may apply a write late)."""
    for attempt in range(buttons.READ_BACKS):
        if attempt:
            await asyncio.sleep(client.timeout)
        try:
            if (await read_levels(client, incident_id)).current == target:
                return True
        except PagerDutyError:
            log.warning("could not read the escalation back", exc_info=True, extra={"incident": incident_id})
    return False


ESCALATE = Action(blocks.ESCALATE_ACTION, escalate)
