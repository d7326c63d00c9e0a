"""What other capabilities may know about incidents, read from the incidents' own tables.

The handoff checklist shows the open incidents, last week's counts and when each service's last PagerDuty webhook
came, and whether its PagerDuty test came back; the console waits until nothing is left to deliver. They ask here (through `handlers.incidents`) instead of
reading `incidents`, `incident_roots` and `pd_webhooks` themselves, so the tables can change with this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import dict_row

from bot.context import BotContext
from integrations.pagerduty_webhooks import MalformedWebhook, parse_webhook


@dataclass(frozen=True)
class OpenIncident:
    """An incident not resolved yet, with its first posted root (None until one is posted)."""

    id: str
    number: int | None
    title: str | None
    status: str | None
    service: str | None
    triggered_at: datetime | None
    channel_id: str | None
    ts: str | None


@dataclass(frozen=True)
class IncidentCounts:
    triggered: int
    resolved: int


async def open_incidents(bot: BotContext) -> list[OpenIncident]:
    """Every incident not resolved, oldest trigger first."""
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT i.id, i.number, i.title, i.status, i.service, i.triggered_at, r.channel_id, r.ts
               FROM incidents i
               LEFT JOIN LATERAL (
                   SELECT channel_id, ts FROM incident_roots
                   WHERE incident_id = i.id AND ts IS NOT NULL ORDER BY posted_at NULLS LAST LIMIT 1
               ) r ON true
               WHERE i.status IS DISTINCT FROM 'resolved'
               ORDER BY i.triggered_at NULLS LAST, i.id""",
        )
        return [OpenIncident(**row) for row in await cursor.fetchall()]


async def triggered_between(bot: BotContext, start: datetime, end: datetime) -> IncidentCounts:
    """How many incidents triggered in [start, end), and how many of those are resolved."""
    async with bot.storage.pool.connection() as conn:
        week = await (
            await conn.execute(
                """SELECT count(*), count(*) FILTER (WHERE status = 'resolved') FROM incidents
                   WHERE triggered_at >= %s AND triggered_at < %s""",
                (start, end),
            )
        ).fetchone()
    return IncidentCounts(int(week[0]) if week else 0, int(week[1]) if week else 0)


async def last_webhooks(bot: BotContext) -> dict[str, tuple[datetime, str]]:
    """The newest stored PagerDuty webhook per catalog service name (matched by PagerDuty service ID, else its
    name): when it was received and its event type."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT DISTINCT ON (service_id) service_id, received_at, event_type, body FROM pd_webhooks
               WHERE service_id IS NOT NULL AND event_id IS NOT NULL
               ORDER BY service_id, received_at DESC"""
        )
        rows = await cursor.fetchall()
    newest: dict[str, tuple[datetime, str]] = {}
    for service_id, received_at, event_type, body in rows:
        try:
            service_name = parse_webhook(bytes(body)).service_name
        except MalformedWebhook:
            service_name = None
        service = bot.catalog.for_pagerduty(service_id, service_name)
        if service is not None and (service.name not in newest or newest[service.name][0] < received_at):
            newest[service.name] = (received_at, event_type)
    return newest


@dataclass(frozen=True)
class StoredTrigger:
    """The stored `incident.triggered` webhook of an incident key."""

    webhook_id: int
    received_at: datetime
    incident_id: str | None


async def trigger_with_key(bot: BotContext, incident_key: str) -> StoredTrigger | None:
    """The first stored `incident.triggered` webhook whose incident has this key (PagerDuty's dedup_key), if any:
    how the handoff's PagerDuty test knows its event came back."""
    async with bot.storage.pool.connection() as conn:
        match = await (
            await conn.execute(
                """SELECT id, received_at, incident_id FROM pd_webhooks
                   WHERE incident_key = %s AND event_type = 'incident.triggered' ORDER BY id LIMIT 1""",
                (incident_key,),
            )
        ).fetchone()
    return StoredTrigger(*match) if match is not None else None


async def undelivered(bot: BotContext) -> int:
    """Stored events not delivered yet plus roots waiting for their debounced edit: 0 when Slack is up to date."""
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                """SELECT (SELECT count(*) FROM pd_webhooks WHERE status = 'pending')
                        + (SELECT count(*) FROM incidents WHERE root_dirty_since IS NOT NULL)"""
            )
        ).fetchone()
    return int(row[0]) if row is not None else 0
