"""PagerDuty V3 webhook bodies -> typed, immutable events.  Parsing only: no I/O, no signature check.

The signature (``X-PagerDuty-Signature``) is checked on the raw bytes by :mod:`bot.signing` *before* this
module sees them.  :func:`parse_webhook` then either returns a :class:`WebhookEvent` or raises
:class:`MalformedWebhook` -- never anything else, whatever the JSON holds.  Only the envelope is required;
every other field is optional and a missing, ``null`` or wrongly typed one just reads as ``None`` (or an empty
tuple), so a PagerDuty schema change degrades a message instead of dropping the event.

What this relies on, from PagerDuty's developer docs (github.com/PagerDuty/developer-docs):

* ``docs/webhooks/01-Overview.md`` ("Webhook Payload"): "Each webhook payload contains a single event
  object" -- ``{"event": {"id", "event_type", "resource_type", "occurred_at", "agent", "client", "data"}}``;
  ``event.id`` is "The unique id of the event", ``occurred_at`` "An ISO 8601 datetime", ``resource_type``
  "The root resource type (leftmost part of the ``event_type``) ... currently ``incident`` or ``service``",
  and "The inner ``event.data`` payload differs based on the ``event.event_type``".  The "Event Types" table
  gives ``data.type`` per event type (mirrored in :data:`EVENT_DATA_TYPES`); "Additional event types may be
  added to this list over time", hence the generic path for unknown types.
* Same page, "Event Data Types": an ``incident`` carries ``id, type, self, html_url, number, status,
  incident_key, created_at, title, incident_type {name}, service, assignees[], escalation_policy, teams[],
  priority, urgency, conference_bridge {conference_number, conference_url}, resolve_reason``; references
  (``service``, ``assignees[]``, ``escalation_policy``, ``priority``, ``agent``) are
  ``{html_url, id, self, summary, type: "*_reference"}`` -- the display name is ``summary`` and there is no
  email.  ``incident_note`` is ``{incident: <incident_reference>, id, content, trimmed}``;
  ``incident_status_update`` is ``{incident, id, message, trimmed}``; ``incident_responder`` is
  ``{incident, user, escalation_policy, message, state}``; ``incident_conference_bridge`` is ``{incident,
  conference_numbers: [{label, number}], conference_url}``; ``incident_field_values`` is ``{incident,
  custom_fields[], changed_custom_fields[]}``; ``incident_workflow_instance`` is ``{id, summary,
  incident_workflow, workflow_trigger, incident, service}``; ``incident_task`` is ``{name, description, id,
  summary, status, assignees, incident}``; ``incident_action_invocation`` is ``{id, incident, action, state}``;
  ``incident_role_assignment`` is ``{incident_role_assignments: [{assignee, incident, old_assignee, role,
  status}]}`` -- the one shape without a top-level ``incident``; ``service`` is the service itself.
* ``docs/webhooks/02-Behavior.md`` ("At-Least-Once Delivery"): "duplicate webhooks may be delivered ...
  Customers wishing to de-duplicate webhooks may do so by using the ``X-Webhook-Id`` header ... The value of
  this header is unique to the webhook but is repeated for each delivery attempt".  ("Ordering"): "PagerDuty
  sends webhooks for a given extension and incident combination in the order that they were generated"; a
  failing webhook is retried "for up to 48 hours" while later ones for that "subscription and resource ID"
  queue behind it.  Headers are not this module's business: the HTTP layer reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integrations.pagerduty_envelope import (
    EVENT_DATA_TYPES,
    MalformedWebhook,
    decode_body,
    read_envelope,
)
from integrations.pagerduty_envelope import as_object as _obj
from integrations.pagerduty_envelope import as_text as _text
from integrations.pagerduty_envelope import as_timestamp as _timestamp
from integrations.pagerduty_envelope import ref_id as _ref_id
from integrations.pagerduty_envelope import ref_name as _ref_name

__all__ = [
    "EVENT_DATA_TYPES",
    "INCIDENT_OBJECT_EVENTS",
    "IncidentSnapshot",
    "MalformedWebhook",
    "Person",
    "RoleAssignment",
    "WebhookEvent",
    "parse_webhook",
]

#: Event types whose ``data`` is a full incident object (so :attr:`WebhookEvent.incident` is set).
INCIDENT_OBJECT_EVENTS: frozenset[str] = frozenset(t for t, d in EVENT_DATA_TYPES.items() if d == "incident")


@dataclass(frozen=True)
class Person:
    """A user (or, for ``agent``, possibly a service/integration) reference.  ``name`` is the reference's
    ``summary`` (``name`` on full objects).  V3 references carry no ``email``; it is read when present."""

    id: str | None
    name: str | None
    email: str | None = None
    html_url: str | None = None


@dataclass(frozen=True)
class IncidentSnapshot:
    """The incident as a V3 ``incident`` payload carried it at ``occurred_at``."""

    id: str
    number: int | None
    title: str | None
    status: str | None
    urgency: str | None
    priority: str | None  # the priority reference's summary (name on a full object), e.g. "P1"
    service_id: str | None
    service_name: str | None
    assignees: tuple[Person, ...]
    escalation_policy: str | None  # summary / name
    conference_url: str | None
    conference_number: str | None
    html_url: str | None
    created_at: datetime | None
    incident_key: str | None
    incident_type: str | None = None  # incident_type.name (newer payloads), e.g. "major"


@dataclass(frozen=True)
class RoleAssignment:
    """One entry of ``incident_role_assignments[]`` (``incident.role.assigned``): the role's ``summary``, who holds
    it now (``None`` when it was unassigned) and who held it before."""

    role: str | None
    assignee: Person | None
    old_assignee: Person | None = None
    status: str | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """One V3 webhook.  ``raw`` is the whole decoded body (``raw["event"]["data"]`` for anything not lifted
    out here, e.g. ``conference_numbers`` or ``changed_custom_fields``); it is excluded from ``==``/``hash``."""

    event_id: str
    event_type: str
    resource_type: str | None
    occurred_at: datetime
    incident_id: str | None  # data.id (incident object) or data.incident.id (every other incident.* shape)
    service_id: (
        str | None
    )  # snapshot's service, else data.service / data.incident.service, else a service's id
    agent: Person | None
    incident: IncidentSnapshot | None  # only when `data` is a full incident object
    service_name: str | None = None  # the snapshot's service, else data.service's summary (workflow events)
    note: str | None = None  # incident.annotated: data.content
    status_update: str | None = None  # incident.status_update_published: data.message
    responder: Person | None = None  # incident.responder.*: data.user
    responder_message: str | None = None  # incident.responder.*: data.message (the request's message)
    responder_state: str | None = None  # incident.responder.*: data.state ("pending" in PD's sample)
    conference_url: str | None = None  # incident.conference_bridge.updated: data.conference_url
    conference_number: str | None = (
        None  # …: data.conference_numbers[].number, joined (labelled when labelled)
    )
    role_assignments: tuple[
        RoleAssignment, ...
    ] = ()  # incident.role.assigned: data.incident_role_assignments[]
    workflow: str | None = None  # incident.workflow.*: data.incident_workflow.summary (else data.summary)
    task: str | None = None  # incident.task.*: data.name (else data.summary)
    task_status: str | None = None  # incident.task.*: data.status ("todo" in PD's sample)
    action: str | None = None  # incident.action_invocation.*: data.action.summary
    action_state: str | None = None  # incident.action_invocation.*: data.state ("created" in PD's sample)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def parse_webhook(body: bytes) -> WebhookEvent:
    """Parse a V3 webhook body.  Raises :class:`MalformedWebhook` and nothing else.

    Which ``data`` shape applies comes from ``data.type`` when it is a string, else from
    :data:`EVENT_DATA_TYPES`; an unknown event type still gets ``incident_id`` / ``service_id`` from
    ``data.incident`` / ``data.service`` when present, and a snapshot when ``data.type == "incident"``.
    Timestamps are ISO 8601 (``Z`` or an offset) and come back in UTC; a naive one is taken as UTC.
    """
    payload = decode_body(body)
    envelope = read_envelope(payload)  # the fields the route stored this webhook by, read the same way
    event = payload["event"]
    data = _obj(event.get("data")) or {}
    shape = envelope.shape
    incident = _incident(data) if shape == "incident" else None
    roles = _role_assignments(data) if shape == "incident_role_assignment" else ()

    responder = shape == "incident_responder"
    return WebhookEvent(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        resource_type=_text(event.get("resource_type")),
        occurred_at=envelope.occurred_at,
        incident_id=envelope.incident_id,
        service_id=envelope.service_id,
        agent=_person(event.get("agent")),
        incident=incident,
        service_name=envelope.service_name,
        note=_text(data.get("content")) if shape == "incident_note" else None,
        status_update=_text(data.get("message")) if shape == "incident_status_update" else None,
        responder=_person(data.get("user")) if responder else None,
        responder_message=_text(data.get("message")) if responder else None,
        responder_state=_text(data.get("state")) if responder else None,
        **_details(shape, data),
        role_assignments=roles,
        raw=payload,
    )


def _details(shape: str | None, data: dict[str, Any]) -> dict[str, Any]:
    """The fields of the bridge, workflow, task and action-invocation shapes that a thread line names."""
    if shape == "incident_conference_bridge":
        numbers = data.get("conference_numbers")
        shown = []
        for entry in numbers if isinstance(numbers, list) else []:
            entry = _obj(entry) or {}
            number, label = _text(entry.get("number")), _text(entry.get("label"))
            if number:
                shown.append(f"{label}: {number}" if label else number)
        return {
            "conference_url": _text(data.get("conference_url")),
            "conference_number": ", ".join(shown) or None,
        }
    if shape == "incident_workflow_instance":
        return {"workflow": _ref_name(data.get("incident_workflow")) or _text(data.get("summary"))}
    if shape == "incident_task":
        return {
            "task": _text(data.get("name")) or _text(data.get("summary")),
            "task_status": _text(data.get("status")),
        }
    if shape == "incident_action_invocation":
        return {"action": _ref_name(data.get("action")), "action_state": _text(data.get("state"))}
    return {}


def _role_assignments(data: dict[str, Any]) -> tuple[RoleAssignment, ...]:
    items = data.get("incident_role_assignments")
    found = []
    for item in items if isinstance(items, list) else []:
        entry = _obj(item)
        if entry is None:
            continue
        found.append(
            RoleAssignment(
                role=_ref_name(entry.get("role")),
                assignee=_person(entry.get("assignee")),
                old_assignee=_person(entry.get("old_assignee")),
                status=_text(entry.get("status")),
            )
        )
    return tuple(found)


# --- field readers: each takes any JSON value and never raises ------------------------------------------------


def _person(value: object) -> Person | None:
    ref = _obj(value)
    if ref is None:
        return None
    person = Person(
        id=_text(ref.get("id")),
        name=_ref_name(ref),
        email=_text(ref.get("email")),
        html_url=_text(ref.get("html_url")),
    )
    return None if person == Person(None, None) else person


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _assignees(incident: dict[str, Any]) -> tuple[Person, ...]:
    """``assignees[]`` (V3); the REST API's ``assignments[].assignee`` as a fallback."""
    items = incident.get("assignees")
    if not isinstance(items, list):
        assignments = incident.get("assignments")
        items = (
            [a.get("assignee") for a in assignments if isinstance(a, dict)]
            if isinstance(assignments, list)
            else []
        )
    people = (_person(item) for item in items)
    return tuple(person for person in people if person is not None)


def _incident(data: dict[str, Any]) -> IncidentSnapshot | None:
    incident_id = _text(data.get("id"))
    if incident_id is None:
        return None
    bridge = _obj(data.get("conference_bridge")) or {}
    return IncidentSnapshot(
        id=incident_id,
        number=_int(data.get("number")),
        title=_text(data.get("title")),
        status=_text(data.get("status")),
        urgency=_text(data.get("urgency")),
        priority=_ref_name(data.get("priority")),
        service_id=_ref_id(data.get("service")),
        service_name=_ref_name(data.get("service")),
        assignees=_assignees(data),
        escalation_policy=_ref_name(data.get("escalation_policy")),
        conference_url=_text(bridge.get("conference_url")),
        conference_number=_text(bridge.get("conference_number")),
        html_url=_text(data.get("html_url")),
        created_at=_timestamp(data.get("created_at")),
        incident_key=_text(data.get("incident_key")),
        incident_type=_ref_name(data.get("incident_type")),
    )
