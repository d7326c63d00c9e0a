"""SLA timers from the runbooks' escalation paths: the acknowledge nudge (Mira "respond within 15 minutes", FA
"Acknowledge within 5 minutes"), the 1-hour resolve reminder for high-urgency incidents, and the 48-hour
post-mortem reminder. Each fires once across replicas: claimed by `fired_at`, finished by `done_at`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import slack_once
from bot.context import BotContext
from bot.mrkdwn import outside
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks
from handlers.incidents.events import channels_for, incident_row, view_of
from handlers.incidents.model import IncidentView, RetryLater
from handlers.incidents.threads import ensure_root, post_once
from integrations.pagerduty import PagerDutyError

log = logging.getLogger(__name__)


#: When the service's runbook sets no post-mortem deadline (catalog `postmortem.within_hours`), the reminder comes
#: after this long: the bot's default, the same as FA's "Schedule post-mortem within 48 hours".
POSTMORTEM_WITHIN = timedelta(hours=48)


def postmortem_within(view: IncidentView) -> timedelta:
    postmortem = view.service.postmortem if view.service else None
    hours = postmortem.within_hours if postmortem else None
    return timedelta(hours=hours) if hours else POSTMORTEM_WITHIN


MENTIONS = 10  # a nudge mentions this many assignees, then counts the rest


# --- timers -------------------------------------------------------------------------------------------------------


def is_high(view: IncidentView) -> bool:
    return view.urgency == "high" or (view.priority or "").upper() == "P1"


def timer_plan(
    view: IncidentView, event_types: set[str], started: datetime, now: datetime
) -> tuple[list[tuple[str, datetime]], list[str]]:
    """The timers to set (kind, due) and to cancel (kinds) after a batch of the incident's events, from the state
    the batch left (`view`) and the types of its events; `started` is when the incident began, if it is not
    known yet the batch's earliest event."""
    escalation = view.service.escalation if view.service else None
    ack_within = timedelta(minutes=escalation.ack_within_minutes if escalation else 15)
    resolve_within = timedelta(minutes=escalation.resolve_within_minutes if escalation else 60)
    started = view.triggered_at or started
    sets: list[tuple[str, datetime]] = []
    cancels: list[str] = []
    if view.status == "triggered" and view.acknowledged_at is None:
        sets.append(("ack_nudge", started + ack_within))
    if view.status != "resolved" and is_high(view):
        sets.append(("resolve_reminder", started + resolve_within))
    if "incident.acknowledged" in event_types:
        cancels.append("ack_nudge")
    if "incident.resolved" in event_types:
        cancels.extend(("ack_nudge", "resolve_reminder"))
        sets.append(("postmortem_reminder", (view.resolved_at or now) + postmortem_within(view)))
    return sets, cancels


async def schedule_timers(
    bot: BotContext, plans: dict[str, tuple[list[tuple[str, datetime]], list[str]]], now: datetime
) -> None:
    """Set and cancel the timers of a batch's incidents (`timer_plan` of each): two statements for the batch. A
    timer set once is never set again (a cancelled one stays cancelled)."""
    sets = [(incident, kind, due) for incident, (due_list, _) in plans.items() for kind, due in due_list]
    cancels = list(
        dict.fromkeys((incident, kind) for incident, (_, kinds) in plans.items() for kind in kinds)
    )
    async with bot.storage.pool.connection() as conn:
        if sets:
            await conn.execute(
                """INSERT INTO incident_timers (incident_id, kind, due_at)
                   SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) ON CONFLICT DO NOTHING""",
                [list(column) for column in zip(*sets, strict=True)],
            )
        if cancels:
            await conn.execute(
                """UPDATE incident_timers t SET cancelled_at = %s
                   FROM unnest(%s::text[], %s::text[]) AS c(incident_id, kind)
                   WHERE t.incident_id = c.incident_id AND t.kind = c.kind
                     AND t.fired_at IS NULL AND t.cancelled_at IS NULL""",
                [now, *[list(column) for column in zip(*cancels, strict=True)]],
            )


async def fire_timers(bot: BotContext, budget: ChannelBudget, now: datetime) -> list[tuple[str, str]]:
    """Nudges and reminders that are due: each claimed by `fired_at` and finished by `done_at`, so it fires once
    across replicas; a claim whose worker died (older than the stale window, not done) is taken over, and its
    reply, keyed by timer, is still posted only once."""
    async with bot.storage.autocommit() as conn:
        cursor = await conn.execute(
            """UPDATE incident_timers SET fired_at = %s
               WHERE done_at IS NULL AND cancelled_at IS NULL AND due_at <= %s
                 AND (fired_at IS NULL OR fired_at <= %s)
               RETURNING incident_id, kind""",
            (now, now, now - slack_once.stale_window(bot)),
        )
        due = await cursor.fetchall()
    fired = []
    for incident_id, kind in due:
        try:
            if await _fire_timer(bot, budget, incident_id, kind, now):
                fired.append((incident_id, kind))
        except Exception as exc:
            if not isinstance(exc, RetryLater):
                log.warning(
                    "timer not fired yet", exc_info=True, extra={"incident": incident_id, "kind": kind}
                )
            continue  # taken over once its claim is stale
        async with bot.storage.autocommit() as conn:
            await conn.execute(
                "UPDATE incident_timers SET done_at = %s WHERE incident_id = %s AND kind = %s",
                (now, incident_id, kind),
            )
    return fired


async def _fire_timer(
    bot: BotContext, budget: ChannelBudget, incident_id: str, kind: str, now: datetime
) -> bool:
    async with bot.storage.pool.connection() as conn:
        row = await incident_row(conn, incident_id)
    if row is None:
        return False
    view = view_of(bot, row)
    text = await timer_text(bot, view, kind, now)
    if text is None:
        return False
    for channel in channels_for(bot, view):
        root = await ensure_root(bot, budget, view, channel, now, own_thread=True)
        await post_once(
            bot,
            budget,
            f"{kind}:{incident_id}",
            kind,
            incident_id,
            root,
            now,
            text,
            blocks.nudge_blocks(text, incident_id) if kind == "ack_nudge" else None,
            fallback=blocks.fallback_text(view, "reminder"),
        )
    return True


async def _assignee_email(bot: BotContext, assignee: dict[str, Any]) -> str | None:
    """Webhooks carry user references without emails: ask PagerDuty's users API when we can."""
    if assignee.get("email"):
        return str(assignee["email"])
    if bot.pagerduty is None or not assignee.get("id"):
        return None
    try:
        return await bot.pagerduty.user_email(assignee["id"])
    except PagerDutyError:
        log.warning("could not read an assignee's email from PagerDuty", exc_info=True)
        return None


async def slack_mentions(bot: BotContext, view: IncidentView, row_snapshot: dict[str, Any]) -> str:
    everyone = row_snapshot.get("assignees") or []
    mentions = []
    for assignee in everyone[:MENTIONS]:  # each one is a PagerDuty and a Slack lookup
        email = await _assignee_email(bot, assignee)
        user = None
        if email:
            try:
                user = (await bot.slack.users_lookupByEmail(email=email))["user"]["id"]
            except SlackApiError:
                user = None
        # The mention is built from the Slack ID Slack gave us; a PagerDuty name is outside text.
        name = assignee.get("name") or assignee.get("id") or "?"
        mentions.append(f"<@{user}>" if user else outside(name, blocks.NAME_CHARS))
    more = f" and {len(everyone) - len(mentions)} more" if len(everyone) > len(mentions) else ""
    return ", ".join(mentions) + more if mentions else "the on-call"


async def timer_text(bot: BotContext, view: IncidentView, kind: str, now: datetime) -> str | None:
    async with bot.storage.pool.connection() as conn:
        row = await incident_row(conn, view.id)
    assert row is not None
    if kind == "ack_nudge":
        if view.acknowledged_at is not None or view.status != "triggered":
            return None
        who = await slack_mentions(bot, view, row["snapshot"])
        minutes = view.service.escalation.ack_within_minutes if view.service else 15
        return (
            f":bell: {who}: not acknowledged {minutes} minutes after it triggered. The runbook asks for a "
            "response within that time; acknowledge it or escalate."
        )
    if kind == "resolve_reminder":
        if view.status == "resolved":
            return None
        path = (
            " → ".join(level.name for level in view.service.escalation.levels)
            if view.service
            else "the manager"
        )
        return (
            f":hourglass_flowing_sand: Open for {blocks.duration(view.triggered_at, now)}, past the 1-hour "
            f"resolution SLA for high urgency. Escalation path: {path}."
        )
    if kind == "postmortem_reminder":
        async with bot.storage.pool.connection() as conn:
            marked = await (
                await conn.execute(
                    "SELECT 1 FROM incident_actions WHERE incident_id = %s AND action = 'postmortem_scheduled'",
                    (view.id,),
                )
            ).fetchone()
        if marked:
            return None
        hours = int(postmortem_within(view).total_seconds() // 3600)
        return (
            f":spiral_calendar_pad: Resolved {hours} hours ago and no post-mortem is marked as scheduled. "
            "Schedule it, then press *Post-mortem scheduled* on the draft."
        )
    return None
