"""What a PagerDuty V3 webhook says about itself: its envelope, read from the decoded body once.

The webhook route stores every signed body and files it by a handful of fields — the event's id, type and time,
the incident, the service and the incident key — before it answers PagerDuty. It needs nothing else, and building
the whole :class:`~integrations.pagerduty_webhooks.WebhookEvent` (the snapshot, its assignees, the agent) cost
more than the rest of the route's own work together; the delivery worker builds that later, from the stored
bytes. So the envelope is read here, on its own, and :func:`~integrations.pagerduty_webhooks.parse_webhook`
builds its event on the same :func:`read_envelope`: the columns the route stores are, by construction, the
fields the worker's parse gives (tests/test_pagerduty_webhooks.py checks the two agree on every fuzzed body).

Where the fields come from (PagerDuty's developer docs, ``docs/webhooks/01-Overview.md``) is told in
:mod:`integrations.pagerduty_webhooks`. The readers below take any JSON value and never raise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = ["EVENT_DATA_TYPES", "MalformedWebhook", "WebhookEnvelope", "parse_envelope", "read_envelope"]

#: ``event_type`` -> the ``data.type`` PagerDuty documents for it (01-Overview.md, "Event Types").  Used only
#: when ``data.type`` itself is missing; an event type not listed here is parsed generically.
EVENT_DATA_TYPES: dict[str, str] = {
    "incident.acknowledged": "incident",
    "incident.annotated": "incident_note",
    "incident.conference_bridge.updated": "incident_conference_bridge",
    "incident.custom_field_values.updated": "incident_field_values",
    "incident.delegated": "incident",
    "incident.escalated": "incident",
    "incident.incident_type.changed": "incident",
    "incident.priority_updated": "incident",
    "incident.reassigned": "incident",
    "incident.reopened": "incident",
    "incident.resolved": "incident",
    "incident.responder.added": "incident_responder",
    "incident.responder.replied": "incident_responder",
    "incident.role.assigned": "incident_role_assignment",
    "incident.service_updated": "incident",
    "incident.status_update_published": "incident_status_update",
    "incident.task.completed": "incident_task",
    "incident.task.created": "incident_task",
    "incident.task.updated": "incident_task",
    "incident.triggered": "incident",
    "incident.unacknowledged": "incident",
    "incident.action_invocation.created": "incident_action_invocation",
    "incident.action_invocation.terminated": "incident_action_invocation",
    "incident.action_invocation.updated": "incident_action_invocation",
    "incident.workflow.started": "incident_workflow_instance",
    "incident.workflow.completed": "incident_workflow_instance",
    "service.created": "service",
    "service.custom_field_values.updated": "service_field_values",
    "service.deleted": "service",
    "service.updated": "service",
}

#: Longest timestamp string worth handing to ``fromisoformat`` (real ones are ~24 characters).
_MAX_TIMESTAMP_CHARS = 64


class MalformedWebhook(ValueError):
    """The body is not a PagerDuty V3 envelope: not JSON, not an object, or ``event`` lacks a usable
    ``id`` / ``event_type`` (non-empty strings) or ``occurred_at`` (an ISO 8601 string)."""


class WebhookEnvelope(NamedTuple):
    """The fields a webhook is stored and filed by. A named tuple: the route builds one per webhook, and a
    tuple is the cheapest immutable record Python has."""

    event_id: str
    event_type: str
    occurred_at: datetime
    shape: str | None  # data.type, else the documented one for the event type
    incident_id: str | None  # data.id (incident object) or data.incident.id (every other incident.* shape)
    service_id: str | None  # the snapshot's or data.service, else data.incident.service, else a service's id
    service_name: str | None  # the snapshot's service, else data.service's summary (workflow events)
    incident_key: str | None  # the incident object's incident_key (the handoff's test events are known by it)


def parse_envelope(body: bytes) -> WebhookEnvelope:
    """The envelope of a V3 webhook body. Raises :class:`MalformedWebhook` and nothing else."""
    return read_envelope(decode_body(body))


def decode_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        raise MalformedWebhook(f"body is not JSON ({type(exc).__name__})") from None


def read_envelope(payload: Any) -> WebhookEnvelope:
    """The envelope of a decoded body; :class:`MalformedWebhook` when it is not a V3 envelope."""
    if not isinstance(payload, dict):
        raise MalformedWebhook(f"body is a JSON {type(payload).__name__}, not an object")
    event = payload.get("event")
    if not isinstance(event, dict):
        raise MalformedWebhook("no `event` object")
    event_id = as_text(event.get("id"))
    if event_id is None:
        raise MalformedWebhook("`event.id` is missing or not a non-empty string")
    event_type = as_text(event.get("event_type"))
    if event_type is None:
        raise MalformedWebhook("`event.event_type` is missing or not a non-empty string")
    occurred_at = as_timestamp(event.get("occurred_at"))
    if occurred_at is None:
        raise MalformedWebhook("`event.occurred_at` is missing or not an ISO 8601 timestamp")

    data = as_object(event.get("data")) or {}
    shape = as_text(data.get("type")) or EVENT_DATA_TYPES.get(event_type)
    # A full incident object (what parse_webhook turns into a snapshot) is one with an id.
    snapshot_id = as_text(data.get("id")) if shape == "incident" else None
    incident_ref = as_object(data.get("incident"))
    if incident_ref is None and shape == "incident_role_assignment":
        # The role-assignment shape has no top-level `incident`: each assignment names it.
        items = data.get("incident_role_assignments")
        first = items[0] if isinstance(items, list) and items else None
        incident_ref = as_object(first.get("incident")) if isinstance(first, dict) else None
    incident_id = snapshot_id or (as_text(incident_ref.get("id")) if incident_ref else None)

    service = data.get("service")
    service_id = ref_id(service)
    service_name = ref_name(service) if shape != "service" else None
    if service_id is None and incident_ref:
        service_id = ref_id(incident_ref.get("service"))
    if service_id is None and shape == "service":
        service_id = as_text(data.get("id"))
    return WebhookEnvelope(
        event_id,
        event_type,
        occurred_at,
        shape,
        incident_id,
        service_id,
        service_name,
        as_text(data.get("incident_key")) if snapshot_id else None,
    )


# --- field readers: each takes any JSON value and never raises ------------------------------------------------


def as_object(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def as_text(value: object) -> str | None:
    """A non-blank string, else None."""
    return value if isinstance(value, str) and value.strip() else None


def ref_id(value: object) -> str | None:
    ref = as_object(value)
    return as_text(ref.get("id")) if ref else None


def ref_name(value: object) -> str | None:
    """A reference's ``summary`` (full objects: ``name``)."""
    ref = as_object(value)
    return (as_text(ref.get("summary")) or as_text(ref.get("name"))) if ref else None


def as_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > _MAX_TIMESTAMP_CHARS:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00+01:00 has no UTC equivalent
        return moment
