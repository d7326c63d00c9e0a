"""Realistic PagerDuty V3 webhook payloads, for the tests and the console.  Standard library and the parser only.

The shapes copy the structure of PagerDuty's documented samples (github.com/PagerDuty/developer-docs,
``docs/webhooks/01-Overview.md``, "Webhook Payload" and "Event Data Types"): the same keys, the same
``*_reference`` objects ``{html_url, id, self, summary, type}``, the same ``data.type`` per event type.  Only
the values are ours.  Two consequences worth knowing:

* references carry no email, so the email in an ``assignees`` / ``agent`` / ``responder`` tuple is accepted
  (callers can keep one user table) but is *not* put in the payload -- PagerDuty never sends it there;
* ``event.resource_type`` is the leftmost part of ``event_type`` ("The root resource type (leftmost part of
  the ``event_type``)"), and ``data`` for the non-incident shapes holds an ``incident_reference``, not the
  incident.

    >>> inc = incident(id="PABC123", title="Edge function 503s")
    >>> payload = event("incident.annotated", inc, content="Rolled back", agent=("PUSER01", "Alice Example"))
    >>> body(payload)[:9]
    b'{"event":'
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from integrations.pagerduty_webhooks import EVENT_DATA_TYPES

__all__ = [
    "API_URL",
    "DOCUMENTED_EVENT_TYPES",
    "INCIDENT_OBJECT_EVENT_TYPES",
    "WEB_URL",
    "body",
    "envelope",
    "event",
    "incident",
    "incident_reference",
    "user_reference",
]

WEB_URL = "https://mira-demo.pagerduty.com"
API_URL = "https://api.pagerduty.com"

#: Every event type in PagerDuty's V3 "Event Types" table, with its documented ``data.type``: the parser's table,
#: so the payloads built here and the payloads the bot understands cannot drift apart.
DOCUMENTED_EVENT_TYPES: dict[str, str] = EVENT_DATA_TYPES
INCIDENT_OBJECT_EVENT_TYPES = tuple(t for t, shape in DOCUMENTED_EVENT_TYPES.items() if shape == "incident")

#: (id, name) or (id, name, email); the email never reaches a payload (see the module docstring).
UserSpec = tuple[str, str] | tuple[str, str, str]

_REFERENCE_PATHS = {  # kind -> (web path, API path)
    "user": ("users", "users"),
    "service": ("services", "services"),
    "escalation_policy": ("escalation_policies", "escalation_policies"),
    "team": ("teams", "teams"),
    "incident": ("incidents", "incidents"),
    "incident_workflow": ("incident-workflows/workflows", "incident_workflows"),
}


def _pd_id(*parts: str) -> str:
    """A stable PagerDuty-looking id ("P" + 6 of [0-9A-Z]) derived from `parts`."""
    digest = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    chars = []
    for _ in range(6):
        digest, index = divmod(digest, len(alphabet))
        chars.append(alphabet[index])
    return "P" + "".join(chars)


def _reference(kind: str, ref_id: str, summary: str | None) -> dict[str, Any]:
    web, api = _REFERENCE_PATHS[kind]
    return {
        "html_url": f"{WEB_URL}/{web}/{ref_id}",
        "id": ref_id,
        "self": f"{API_URL}/{api}/{ref_id}",
        "summary": summary,
        "type": f"{kind}_reference",
    }


def user_reference(user: UserSpec) -> dict[str, Any]:
    """A ``user_reference`` for ``(id, name[, email])`` -- without the email, as PagerDuty sends it."""
    return _reference("user", user[0], user[1])


def incident_reference(inc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``incident_reference`` the note / responder / status-update shapes carry (summary = title)."""
    return _reference("incident", inc["id"], inc.get("title"))


def _timestamp(value: datetime | str | None, *, millis: bool) -> str:
    """PagerDuty's format: ``2020-10-02T18:45:22.169Z`` (occurred_at) or ``2020-04-09T15:16:27Z``
    (created_at).  A string is used as given; a naive datetime is taken as UTC; None is now."""
    if isinstance(value, str):
        return value
    moment = datetime.now(UTC) if value is None else value
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}Z" if millis else f"{text}Z"


def incident(
    id: str = "PABC123",
    number: int = 1,
    title: str = "Edge function 503s",
    status: str = "triggered",
    urgency: str = "high",
    priority: str | None = "P1",
    service_id: str = "PSVC001",
    service_name: str = "Mira Co-Pilot",
    assignees: Iterable[UserSpec] = (("PUSER01", "Alice Example", "alice@example.com"),),
    escalation_policy: str | None = "AI Squad",
    conference_url: str | None = None,
    conference_number: str | None = None,
    created_at: datetime | str | None = None,
    *,
    incident_key: str | None = None,
    incident_type: str | None = None,
    teams: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """An ``incident`` object as V3 webhooks carry it in ``event.data`` (key order as in PD's sample).

    ``priority`` / ``escalation_policy`` None give ``null``; no bridge URL or number gives
    ``"conference_bridge": null``; ``incident_key`` defaults to a stable hex key derived from ``id``;
    ``incident_type`` (e.g. "major") adds PD's newer ``incident_type: {name}``; ``created_at`` None is now.
    """
    payload: dict[str, Any] = {
        "id": id,
        "type": "incident",
        "self": f"{API_URL}/incidents/{id}",
        "html_url": f"{WEB_URL}/incidents/{id}",
        "number": number,
        "status": status,
        "incident_key": incident_key or uuid.uuid5(uuid.NAMESPACE_URL, f"{WEB_URL}/incidents/{id}").hex,
        "created_at": _timestamp(created_at, millis=False),
        "title": title,
    }
    if incident_type is not None:
        payload["incident_type"] = {"name": incident_type}
    policy = None
    if escalation_policy is not None:
        policy = _reference(
            "escalation_policy", _pd_id("escalation_policy", escalation_policy), escalation_policy
        )
    payload.update(
        {
            "service": _reference("service", service_id, service_name),
            "assignees": [user_reference(user) for user in assignees],
            "escalation_policy": policy,
            "teams": [_reference("team", team_id, name) for team_id, name in teams],
            "priority": None
            if priority is None
            else {
                "html_url": f"{WEB_URL}/account/incident_priorities",
                "id": _pd_id("priority", priority),
                "self": f"{API_URL}/priorities/{_pd_id('priority', priority)}",
                "summary": priority,
                "type": "priority_reference",
            },
            "urgency": urgency,
            "conference_bridge": None
            if conference_url is None and conference_number is None
            else {"conference_number": conference_number, "conference_url": conference_url},
            "resolve_reason": None,
        }
    )
    return payload


def envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    occurred_at: datetime | str | None = None,
    agent: UserSpec | dict[str, Any] | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """``{"event": {...}}`` around `data`.  ``event_id`` defaults to a fresh UUID (PD's sample ids are UUIDs
    and ULIDs); ``occurred_at`` to now; ``agent`` (a user tuple, or any reference dict such as a
    ``service_reference``) and ``client`` (``{"name": client}``) to ``null``, as in PD's service sample."""
    return {
        "event": {
            "id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "resource_type": event_type.split(".", 1)[0],
            "occurred_at": _timestamp(occurred_at, millis=True),
            "agent": agent if isinstance(agent, dict) or agent is None else user_reference(agent),
            "client": None if client is None else {"name": client},
            "data": data,
        }
    }


def event(event_type: str, inc: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A whole webhook payload for `event_type` about incident `inc`, with the documented ``data`` shape.

    Envelope keywords (``event_id``, ``occurred_at``, ``agent``, ``client``) go to :func:`envelope`;
    ``data=`` replaces the data outright (any type, e.g. an unknown one).  Per shape:

    * ``incident`` (triggered, acknowledged, ..., and unknown ``incident.*`` types): a copy of `inc`;
    * ``incident_note`` (annotated): ``content=``;
    * ``incident_responder`` (responder.added / .replied): ``responder=(id, name[, email])``, ``message=``,
      ``state=`` (default "pending" for added -- PD's sample -- and "accepted" for replied, a value PD's docs
      do not show);
    * ``incident_status_update``: ``message=``;
    * ``incident_conference_bridge``: ``conference_url=``, ``conference_numbers=[(label, number), ...]``
      (default: `inc`'s bridge);
    * ``incident_field_values``: ``custom_fields={name: value}``, ``changed={name: old value}``;
    * ``incident_workflow_instance`` (workflow.started / .completed): ``workflow=``, ``trigger=``;
    * ``incident_role_assignment`` (role.assigned): ``role=``, ``assignee=(id, name)`` (None: unassigned);
    * ``incident_task`` (task.*): ``task=``, ``description=``, ``task_status=``, ``assignees=``;
    * ``incident_action_invocation`` (action_invocation.*): ``action=``, ``state=``;
    * ``service`` (service.*): `inc`'s service as a ``service`` object; ``service_field_values``:
      ``custom_fields=``.
    """
    envelope_args = {k: kwargs.pop(k) for k in ("event_id", "occurred_at", "agent", "client") if k in kwargs}
    data = kwargs.pop("data") if "data" in kwargs else _data(event_type, inc, kwargs)
    if kwargs:
        raise TypeError(f"event({event_type!r}) got unexpected keywords: {', '.join(sorted(kwargs))}")
    return envelope(event_type, data, **envelope_args)


def _data(event_type: str, inc: Mapping[str, Any], kw: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` for `event_type`, consuming the keywords it uses from `kw`."""
    shape = DOCUMENTED_EVENT_TYPES.get(event_type, "incident")
    ref = incident_reference(inc)
    if shape == "incident":
        return copy.deepcopy(dict(inc))
    if shape == "incident_note":
        content = kw.pop("content", "Rolled back the edge function to the previous deploy.")
        return {
            "incident": ref,
            "id": _pd_id("note", inc["id"], content),
            "content": content,
            "trimmed": False,
            "type": "incident_note",
        }
    if shape == "incident_status_update":
        message = kw.pop("message", "Mitigated: error rate back to baseline, monitoring.")
        return {
            "incident": ref,
            "id": _pd_id("status_update", inc["id"], message),
            "message": message,
            "trimmed": False,
            "type": "incident_status_update",
        }
    if shape == "incident_responder":
        responder: UserSpec = kw.pop("responder", ("PUSER02", "Bob Example", "bob@example.com"))
        default_state = "pending" if event_type.endswith(".added") else "accepted"
        return {
            "incident": ref,
            "user": user_reference(responder),
            "escalation_policy": copy.deepcopy(inc.get("escalation_policy")),
            "message": kw.pop("message", "Please join the incident bridge."),
            "state": kw.pop("state", default_state),
            "type": "incident_responder",
        }
    if shape == "incident_conference_bridge":
        bridge = inc.get("conference_bridge") or {}
        default_numbers = [("", bridge["conference_number"])] if bridge.get("conference_number") else []
        numbers = kw.pop("conference_numbers", default_numbers)
        return {
            "incident": ref,
            "conference_numbers": [{"label": label, "number": number} for label, number in numbers],
            "conference_url": kw.pop("conference_url", bridge.get("conference_url")),
            "type": "incident_conference_bridge",
        }
    if shape == "incident_field_values":
        values: dict[str, str] = kw.pop("custom_fields", {"environment": "production"})
        changed: dict[str, str] = kw.pop("changed", {name: "staging" for name in values})
        return {
            "incident": ref,
            "custom_fields": [_field_value(name, value) for name, value in values.items()],
            "changed_custom_fields": [_field_value(name, value) for name, value in changed.items()],
            "type": "incident_field_values",
        }
    if shape == "incident_workflow_instance":
        workflow = kw.pop("workflow", "Major incident kickoff")
        trigger = kw.pop("trigger", "Manual: major incident")
        trigger_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{WEB_URL}/workflow-triggers/{trigger}"))
        return {
            "id": _pd_id("workflow_instance", inc["id"], workflow),
            "type": "incident_workflow_instance",
            "summary": f"{workflow}: {inc.get('title')}",
            "incident_workflow": _reference("incident_workflow", _pd_id("workflow", workflow), workflow),
            "workflow_trigger": {
                "html_url": None,
                "id": trigger_id,
                "self": f"{API_URL}/incident_workflows/triggers/{trigger_id}",
                "summary": trigger,
                "type": "workflow_trigger_reference",
            },
            "incident": ref,
            "service": copy.deepcopy(inc.get("service")),
        }
    if shape == "incident_role_assignment":
        role = kw.pop("role", "Incident Commander")
        holder: UserSpec | None = kw.pop("assignee", ("PUSER01", "Alice Example"))
        return {
            "type": "incident_role_assignment",
            "incident_role_assignments": [
                {
                    "assignee": None if holder is None else user_reference(holder),
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{WEB_URL}/roles/{inc['id']}/{role}")),
                    "incident": {**ref, "summary": None},
                    "old_assignee": None,
                    "role": {"id": _pd_id("role", role), "summary": role, "type": "role_reference"},
                    "status": "active" if holder is not None else "inactive",
                    "type": "role_assignment_reference",
                }
            ],
        }
    if shape == "incident_task":
        task = kw.pop("task", "Post a status update")
        return {
            "name": task,
            "description": kw.pop("description", task),
            "id": _pd_id("task", inc["id"], task),
            "summary": task,
            "type": "incident_task",
            "status": kw.pop("task_status", "completed" if event_type.endswith(".completed") else "todo"),
            "assignees": [user_reference(user) for user in kw.pop("assignees", ())],
            "incident": {**ref, "summary": None},
        }
    if shape == "incident_action_invocation":
        action = kw.pop("action", "Restart the edge function")
        invocation = _pd_id("invocation", inc["id"], action)
        return {
            "id": invocation,
            "self": f"{API_URL}/automation/invocations/{invocation}",
            "html_url": f"{WEB_URL}/rundeck-actions/invocations/{invocation}/report",
            "incident": ref,
            "action": {
                "html_url": f"{WEB_URL}/rundeck-actions/actions/{_pd_id('action', action)}",
                "id": _pd_id("action", action),
                "self": f"{API_URL}/automation/actions/{_pd_id('action', action)}",
                "summary": action,
                "type": "action_reference",
            },
            "state": kw.pop("state", event_type.rsplit(".", 1)[-1]),
            "type": "incident_action_invocation",
        }
    service = inc.get("service") or {}
    if shape == "service_field_values":
        values = kw.pop("custom_fields", {"tier": "1"})
        return {
            "service": copy.deepcopy(service),
            "custom_fields": [_field_value(name, value) for name, value in values.items()],
            "changed_custom_fields": [_field_value(name, value) for name, value in values.items()],
            "type": "service_field_values",
        }
    # shape == "service": the incident's service as the service object itself
    return {
        "html_url": service.get("html_url"),
        "id": service.get("id"),
        "self": service.get("self"),
        "summary": service.get("summary"),
        "alert_creation": "create_alerts_and_incidents",
        "teams": copy.deepcopy(inc.get("teams") or []),
        "type": "service",
    }


def _field_value(name: str, value: str) -> dict[str, Any]:
    return {
        "data_type": "string",
        "field_type": "single_value",
        "id": _pd_id("field", name),
        "name": name,
        "namespace": "incidents",
        "type": "field_value",
        "value": value,
    }


def body(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, unicode unescaped -- the exact bytes to sign and POST."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
