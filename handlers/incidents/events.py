"""An incident as the bot knows it: every stored PagerDuty event folded into the incident's newest snapshot (by
`occurred_at`, so events that arrive out of order still leave the right state), what its root shows (`view_of`),
and which channels hear of it (`channels_for`)."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from bot.context import BotContext
from handlers.incidents.model import IncidentView
from integrations.pagerduty_envelope import decode_body
from integrations.pagerduty_webhooks import IncidentSnapshot, WebhookEvent, parse_webhook

log = logging.getLogger(__name__)


#: incidents.number is a bigint (migration 0008); PagerDuty's number is an integer JSON may make any size.
BIGINT = range(-(2**63), 2**63)


#: What Postgres text cannot hold: NUL, and a lone surrogate (UTF-8 cannot encode it; psycopg raises
#: UnicodeEncodeError). Valid JSON carries either only as a `\u` escape (raw, it is a control character or
#: invalid UTF-8, and the body is malformed), so a body without such an escape needs no cleaning.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def storable(value: Any) -> Any:
    """`value` with every string (keys too) cleaned for Postgres text and Slack: NUL dropped, a lone surrogate
    replaced by U+FFFD. PagerDuty text never has them; a hostile payload might, and one such title or note used
    to fail the whole batch's fold on every attempt, its neighbours' incidents with it."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def event_from(body: bytes) -> WebhookEvent:
    """The event of a stored webhook (kept byte for byte), its outside text made storable: the one place where
    the delivery side turns a body into an event, so Postgres and Slack only ever see clean text. Raises
    MalformedWebhook as `parse_webhook` does."""
    if not _UNSTORABLE_ESCAPE.search(body):
        return parse_webhook(body)
    return parse_webhook(json.dumps(storable(decode_body(body))).encode())


def snapshot_json(snapshot: IncidentSnapshot) -> dict[str, Any]:
    return storable(_snapshot_fields(snapshot))  # type: ignore[no-any-return]


def _snapshot_fields(snapshot: IncidentSnapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "number": snapshot.number,
        "title": snapshot.title,
        "status": snapshot.status,
        "urgency": snapshot.urgency,
        "priority": snapshot.priority,
        "service_id": snapshot.service_id,
        "service_name": snapshot.service_name,
        "assignees": [{"id": p.id, "name": p.name, "email": p.email} for p in snapshot.assignees],
        "escalation_policy": snapshot.escalation_policy,
        "conference_url": snapshot.conference_url,
        "conference_number": snapshot.conference_number,
        "html_url": snapshot.html_url,
        "created_at": snapshot.created_at.isoformat() if snapshot.created_at else None,
    }


def view_of(bot: BotContext, row: dict[str, Any]) -> IncidentView:
    snap = row["snapshot"]
    service = bot.catalog.find(row["service"]) if row.get("service") else None
    return IncidentView(
        id=row["id"],
        number=snap.get("number"),
        title=snap.get("title") or "(untitled incident)",
        status=row.get("status"),
        urgency=snap.get("urgency"),
        priority=snap.get("priority"),
        service_name=service.display_name if service else (snap.get("service_name") or "unknown service"),
        assignees=tuple(a.get("name") or a.get("id") or "?" for a in snap.get("assignees") or []),
        escalation_policy=snap.get("escalation_policy"),
        conference_url=snap.get("conference_url"),
        conference_number=snap.get("conference_number"),
        html_url=snap.get("html_url"),
        triggered_at=row.get("triggered_at"),
        acknowledged_at=row.get("acknowledged_at"),
        resolved_at=row.get("resolved_at"),
        service=service,
    )


async def incident_row(conn: AsyncConnection[Any], incident_id: str) -> dict[str, Any] | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute("SELECT * FROM incidents WHERE id = %s", (incident_id,))
    return await cursor.fetchone()


# --- state ------------------------------------------------------------------------------------------------------

STATUS_BY_EVENT = {
    "incident.triggered": "triggered",
    "incident.acknowledged": "acknowledged",
    "incident.unacknowledged": "triggered",
    "incident.resolved": "resolved",
    "incident.reopened": "triggered",
}


async def priority_before(bot: BotContext, event: WebhookEvent) -> str | None:
    """The incident's priority just before `event`, from the events that happened earlier — not from the newest
    snapshot, which may already be later than this event when events arrive out of order."""
    async with bot.storage.autocommit() as conn:
        cursor = await conn.execute(
            """SELECT body FROM pd_webhooks WHERE incident_id = %s AND occurred_at < %s AND event_id <> %s
               AND status IN ('pending', 'delivered') ORDER BY occurred_at DESC, id DESC LIMIT 20""",
            (event.incident_id, event.occurred_at, event.event_id),
        )
        earlier = await cursor.fetchall()
    for (body,) in earlier:
        parsed = event_from(bytes(body))
        if parsed.incident is not None:
            return parsed.incident.priority
    return None


def storable_number(number: Any) -> int | None:
    """The incident number for its column, or None when a bigint cannot hold it: the snapshot (jsonb) keeps it
    and the incident is delivered all the same, instead of failing its INSERT on every attempt."""
    return number if isinstance(number, int) and number in BIGINT else None


def shown_state(row: dict[str, Any]) -> tuple[Any, ...]:
    """What the root displays, to tell whether an event changed it."""
    return (row["status"], row["snapshot"], row["triggered_at"], row["acknowledged_at"], row["resolved_at"])


def triggered_at_of(event: WebhookEvent) -> datetime | None:
    """When the incident began: PagerDuty's created_at, else the trigger event's own time, else unknown yet."""
    if event.incident and event.incident.created_at:
        return event.incident.created_at
    return event.occurred_at if event.event_type == "incident.triggered" else None


def channels_for(bot: BotContext, view: IncidentView) -> list[str]:
    """Alerts and incidents channel: the service's own when the catalog names them, else the bot-wide ones."""
    service = view.service
    alerts = (service.channels.alerts if service else None) or bot.settings.alerts_channel
    incidents = (service.channels.incidents if service else None) or bot.settings.incidents_channel
    if service and service.channels.incidents_urgency == "high" and view.urgency == "low":
        return [alerts]
    return list(dict.fromkeys([alerts, incidents]))


async def resolution_note(bot: BotContext, incident_id: str) -> str | None:
    async with bot.storage.autocommit() as conn:
        row = await (
            await conn.execute(
                """SELECT detail FROM incident_actions WHERE incident_id = %s AND action = 'resolve'
                   AND detail IS NOT NULL ORDER BY id DESC LIMIT 1""",
                (incident_id,),
            )
        ).fetchone()
    return str(row[0]) if row else None
