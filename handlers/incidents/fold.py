"""Folding stored PagerDuty events into their incidents, a whole claimed batch at once.

The delivery worker claims up to a hundred events per pass (bot/delivery.py). Folding each in its own transaction
(an advisory lock, a read, up to six UPDATEs, a read back) made the state, not Slack, the bound: a dozen statements
per event. Here the rules of the fold are plain Python over the incident's row (`fold_event`), applied to every
event of the batch in `occurred_at` order, and the batch is read and written back in one transaction of three
statements whatever its size: the incidents' advisory locks (in one fixed order, so two workers folding
overlapping batches never deadlock), one SELECT, one INSERT … ON CONFLICT DO UPDATE from arrays (as ingest writes
its batches, bot/pagerduty_ingest.py). An event delivered on its own is a batch of one: one set of rules.

The fold is idempotent: the newest snapshot wins by `occurred_at`, the timestamps are first-seen / latest-seen,
so an event folded twice (a worker killed before it marked the event delivered, the event redelivered to another
worker) leaves the same row, and events that arrive out of order leave the row a sorted stream would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from bot.context import BotContext
from handlers.incidents.events import (
    STATUS_BY_EVENT,
    shown_state,
    snapshot_json,
    storable,
    storable_number,
    triggered_at_of,
)
from integrations.pagerduty_webhooks import WebhookEvent

_COLUMNS = (
    "id",
    "service",
    "number",
    "title",
    "status",
    "urgency",
    "priority",
    "snapshot",
    "snapshot_at",
    "triggered_at",
    "acknowledged_at",
    "resolved_at",
    "root_dirty_since",
    "last_event_at",
)
_TYPES = (
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "jsonb",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
)
#: One statement for any batch: the rows travel as arrays. `root_dirty_since` carries the pass's clock for an
#: incident whose roots must be edited, and never moves a dirty mark later (the debounce counts from the first).
#: The incidents' rows before the batch, and whether each has a posted root (built once, from the constants).
_SELECT = f"""
    SELECT {", ".join(_COLUMNS)},
           EXISTS (SELECT 1 FROM incident_roots r WHERE r.incident_id = incidents.id AND r.ts IS NOT NULL) AS has_root
    FROM incidents WHERE id = ANY(%s)"""
_UPSERT = f"""
    INSERT INTO incidents ({", ".join(_COLUMNS)})
    SELECT * FROM unnest({", ".join(f"%s::{kind}[]" for kind in _TYPES)})
    ON CONFLICT (id) DO UPDATE SET
        {", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:] if c != "root_dirty_since")},
        root_dirty_since = COALESCE(incidents.root_dirty_since, EXCLUDED.root_dirty_since)"""


@dataclass
class Folded:
    """One incident after the batch: its row, whether what its root shows changed, the earliest event of the
    batch (the SLA timers start from the trigger, else from it), whether its posted roots were marked for an
    edit, and each event's own moment: the row just after it and whether it changed what the root shows (a
    root posted for an event shows the incident as of that event; the later ones edit it)."""

    row: dict[str, Any]
    changed: bool
    first_event_at: datetime
    marked_dirty: bool
    after_event: dict[str, tuple[dict[str, Any], bool]]


def fold_event(
    row: dict[str, Any] | None, event: WebhookEvent, service: str | None, now: datetime
) -> dict[str, Any]:
    """The incident's row after `event` (a new dict; `row` is the row before it, None for a new incident). The
    newest snapshot by `occurred_at` wins; `service` is the catalog service of a new incident."""
    assert event.incident_id is not None
    snapshot = event.incident
    newer = row is None or event.occurred_at >= row["snapshot_at"]
    when = event.occurred_at
    new: dict[str, Any]
    if row is None:
        data = snapshot_json(snapshot) if snapshot else {"id": event.incident_id}
        status = (snapshot.status if snapshot else None) or STATUS_BY_EVENT.get(event.event_type, "triggered")
        new = {
            "id": event.incident_id,
            "service": service,
            "number": storable_number(data.get("number")),
            "title": data.get("title"),
            "status": status,
            "urgency": data.get("urgency"),
            "priority": data.get("priority"),
            "snapshot": data,
            "snapshot_at": when,
            "triggered_at": triggered_at_of(event),
            "acknowledged_at": None,
            "resolved_at": None,
            "root_dirty_since": None,
            "last_event_at": now,
        }
    else:
        new = dict(row, last_event_at=now)
        if newer and snapshot is not None:
            data = snapshot_json(snapshot)
            new.update(
                snapshot=data,
                snapshot_at=when,
                number=storable_number(data.get("number")),
                title=data.get("title"),
                urgency=data.get("urgency"),
                priority=data.get("priority"),
                status=snapshot.status or new["status"],
                triggered_at=new["triggered_at"] or snapshot.created_at,
            )
    kind = event.event_type
    if kind == "incident.triggered":
        new["triggered_at"] = min(new["triggered_at"] or when, when)
    elif kind == "incident.acknowledged":
        new["acknowledged_at"] = new["acknowledged_at"] or when
    elif kind == "incident.resolved":
        new["resolved_at"] = max(new["resolved_at"] or when, when)
    elif kind == "incident.reopened" and newer:
        new["resolved_at"] = None
    if newer and snapshot is None and kind == "incident.conference_bridge.updated":
        # The bridge event carries the bridge, not the incident: the root shows the new one from now on.
        bridge = storable(
            {"conference_url": event.conference_url, "conference_number": event.conference_number}
        )
        new.update(snapshot={**new["snapshot"], **bridge}, snapshot_at=when)
    if newer and snapshot is None and kind in STATUS_BY_EVENT:
        new.update(status=STATUS_BY_EVENT[kind], snapshot_at=when)
    return new


async def apply_events(bot: BotContext, events: list[WebhookEvent], now: datetime) -> dict[str, Folded]:
    """Fold the events (of any incidents) into their incidents' rows in one transaction; what each incident is
    now. An incident whose shown state changed and that had a posted root is marked for a debounced root edit
    (`flush_roots`) in the same statement; a root posted later in the pass shows the folded state already."""
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.event_id))
    ids = sorted({e.incident_id for e in ordered if e.incident_id is not None})
    if not ids:
        return {}
    async with bot.storage.pool.connection() as conn, conn.transaction():
        await conn.execute(
            """SELECT pg_advisory_xact_lock(h) FROM (
                   SELECT DISTINCT hashtext('incident:' || i) AS h FROM unnest(%s::text[]) AS i ORDER BY h) AS l""",
            (ids,),
        )
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(_SELECT, (ids,))
        before = {row["id"]: row for row in await cursor.fetchall()}
        after: dict[str, dict[str, Any]] = {}
        first: dict[str, datetime] = {}
        moments: dict[str, dict[str, tuple[dict[str, Any], bool]]] = {}
        for event in ordered:
            assert event.incident_id is not None
            current = after.get(event.incident_id) or before.get(event.incident_id)
            service = None
            if current is None:
                found = bot.catalog.for_pagerduty(event.service_id, event.service_name)
                service = found.name if found else None
            row = after[event.incident_id] = fold_event(current, event, service, now)
            first.setdefault(event.incident_id, event.occurred_at)
            changed_now = current is None or shown_state(current) != shown_state(row)
            moments.setdefault(event.incident_id, {})[event.event_id] = (row, changed_now)
        folded: dict[str, Folded] = {}
        dirty_now: dict[str, datetime | None] = {}
        for incident_id, row in after.items():
            old = before.get(incident_id)
            changed = old is None or shown_state(old) != shown_state(row)
            # Only a new mark travels: a mark `flush_roots` cleared meanwhile is not put back.
            dirty_now[incident_id] = now if changed and old is not None and old["has_root"] else None
            row.pop("has_root", None)
            if dirty_now[incident_id] is not None:
                row["root_dirty_since"] = row["root_dirty_since"] or now
            folded[incident_id] = Folded(
                row, changed, first[incident_id], dirty_now[incident_id] is not None, moments[incident_id]
            )
        order = sorted(folded)
        columns = [
            [
                json.dumps(folded[i].row["snapshot"])
                if c == "snapshot"
                else dirty_now[i]
                if c == "root_dirty_since"
                else folded[i].row[c]
                for i in order
            ]
            for c in _COLUMNS
        ]
        await conn.execute(_UPSERT, columns)
    return folded
