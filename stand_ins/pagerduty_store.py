"""The recording PagerDuty's incident store: users, incidents, routing keys, on-calls, and their JSON shapes.

Split from :mod:`stand_ins.recording_pagerduty` so that the state every endpoint shares sits in one place with the
two shapes an incident takes on the wire: the REST API v2 ``incident`` object and the V3 webhook's incident data
object, field for field as PagerDuty's docs show them. Tests seed the store (:meth:`add_incident`,
:meth:`set_oncalls`, …) and read it back (:meth:`incident`, :meth:`notes`) without recording a call.
Also here: the errors PagerDuty answers with (:class:`_Invalid`, REST ``{"error": {...}}`` and Events API shapes).
"""

from __future__ import annotations

import hashlib
import random
import string
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stand_ins.pagerduty_records import _Incident, _User
from stand_ins.pagerduty_webhook_sender import PagerDutyWebhookSender

# REST API v2 error codes (developer docs, "Errors").
_REST_ERRORS: dict[int, tuple[str, int | None]] = {
    400: ("Invalid Input Provided", 2001),
    401: ("Authentication failed", 2006),
    402: ("Missing Account Ability", 2014),
    403: ("Access Denied", 2010),
    404: ("Not Found", 2100),
    408: ("The request took too long to process", 2016),
    429: ("Rate Limit Exceeded", 2020),
    500: ("An internal error has occurred. PagerDuty team has been notified.", 2000),
}


class _Invalid(Exception):
    """A request PagerDuty would refuse: ``status`` and the JSON body to answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _rest_error(status: int, *errors: str, message: str | None = None) -> _Invalid:
    default, code = _REST_ERRORS.get(status, ("Error", None))
    error: dict[str, Any] = {"message": message or default}
    if code is not None:
        error["code"] = code
    if errors:
        error["errors"] = list(errors)
    return _Invalid(status, {"error": error})


def _event_error(*errors: str) -> _Invalid:
    return _Invalid(
        400, {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}
    )


def _now(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def oncall_entry(
    user: tuple[str, str],
    *,
    schedule: tuple[str, str] | None = None,
    escalation_policy: tuple[str, str] = ("PEP0001", "Default"),
    escalation_level: int = 1,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """An on-call entry shaped like ``GET /oncalls``'s, for :meth:`RecordingPagerDutyServer.set_oncalls`.

    ``user``/``schedule``/``escalation_policy`` are ``(id, name)``; ``start``/``end`` ISO 8601 (``None``: an
    always-on-call rule, as PagerDuty answers for a user targeted directly by an escalation rule).
    """
    user_id, user_name = user

    def ref(kind: str, path: str, ref_id: str, summary: str) -> dict[str, Any]:
        return {
            "id": ref_id,
            "type": f"{kind}_reference",
            "summary": summary,
            "self": f"https://api.pagerduty.com/{path}/{ref_id}",
            "html_url": f"https://mira.pagerduty.com/{path}/{ref_id}",
        }

    return {
        "user": ref("user", "users", user_id, user_name),
        "schedule": ref("schedule", "schedules", *schedule) if schedule else None,
        "escalation_policy": ref("escalation_policy", "escalation_policies", *escalation_policy),
        "escalation_level": escalation_level,
        "start": start,
        "end": end,
    }


class PagerDutyIncidentStore(PagerDutyWebhookSender):
    """The state of :class:`stand_ins.recording_pagerduty.RecordingPagerDutyServer`, seeded and read by tests."""

    subdomain: str
    _rng: random.Random
    _incidents: dict[str, _Incident]
    _users: dict[str, _User]
    _routing_keys: dict[str, tuple[str, str, list[_User], tuple[str, str] | None]]
    _oncalls: list[dict[str, Any]]

    # -------------------------------------------------------------------------------------- configuration

    def add_user(self, user_id: str, name: str, email: str) -> None:
        """A PagerDuty user; a ``From`` with this email makes them the webhook's agent."""
        self._users[email.lower()] = _User(user_id, name, email)

    def add_incident(
        self,
        id: str,
        number: int,
        title: str,
        service_id: str,
        status: str = "triggered",
        urgency: str = "high",
        assignees: Sequence[tuple[str, str, str]] = (),
        *,
        service_name: str | None = None,
        incident_key: str | None = None,
        escalation_policy: tuple[str, str] = ("PEP0001", "Default"),
        teams: Sequence[tuple[str, str]] = (),
        priority: tuple[str, str] | None = None,
        conference_bridge: dict[str, Any] | None = None,
        created_at: str | None = None,
        routing_key: str | None = None,
    ) -> dict[str, Any]:
        """Put an incident in the store (no webhook: it is the state before the test).  Returns its REST form.

        ``assignees`` are ``(user_id, name, email)`` and become known users; ``escalation_policy``, ``teams``
        and ``priority`` are ``(id, name)``.
        """
        if status not in ("triggered", "acknowledged", "resolved"):
            raise ValueError("status must be triggered, acknowledged or resolved")
        users = [self._known_user(*assignee) for assignee in assignees]
        created = created_at or _now(self.clock())
        incident = _Incident(
            id=id,
            number=number,
            title=title,
            service_id=service_id,
            service_name=service_name or service_id,
            status=status,
            urgency=urgency,
            assignees=users,
            incident_key=incident_key or uuid.uuid4().hex,
            created_at=created,
            escalation_policy=escalation_policy,
            teams=list(teams),
            priority=priority,
            conference_bridge=conference_bridge,
            routing_key=routing_key,
            last_status_change_at=created,
        )
        if status == "acknowledged" and users:
            incident.acknowledgements.append((created, users[0]))
        self._incidents[id] = incident
        return self._rest_incident(incident)

    def add_routing_key(
        self,
        routing_key: str,
        service_id: str,
        service_name: str | None = None,
        *,
        assignees: Sequence[tuple[str, str, str]] = (),
        escalation_policy: tuple[str, str] | None = None,
    ) -> None:
        """Route Events API events with ``routing_key`` to this service (unknown keys get a service of their own)."""
        users = [self._known_user(*assignee) for assignee in assignees]
        self._routing_keys[routing_key] = (service_id, service_name or service_id, users, escalation_policy)

    def set_oncalls(self, oncalls: Sequence[dict[str, Any]]) -> None:
        """What ``GET /oncalls`` answers (see :func:`oncall_entry`), in this order."""
        self._oncalls = [dict(entry) for entry in oncalls]

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """The incident as ``GET /incidents/{id}`` would answer it (without recording a call)."""
        incident = self._incidents.get(incident_id)
        return self._rest_incident(incident) if incident else None

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident, by number."""
        return [self._rest_incident(i) for i in sorted(self._incidents.values(), key=lambda i: i.number)]

    def resolution(self, incident_id: str) -> str | None:
        """The ``resolution`` sent with the resolve (PagerDuty keeps it in the resolve log entry)."""
        incident = self._incidents.get(incident_id)
        return incident.resolution if incident else None

    def notes(self, incident_id: str) -> list[dict[str, Any]]:
        incident = self._incidents.get(incident_id)
        return [dict(note) for note in incident.notes] if incident else []

    def _new_id(self, prefix: str = "P") -> str:
        alphabet = string.ascii_uppercase + string.digits
        return prefix + "".join(self._rng.choice(alphabet) for _ in range(6))

    def _known_user(self, user_id: str, name: str, email: str) -> _User:
        user = self._users.get(email.lower())
        if user is None or user.id != user_id:
            user = self._users[email.lower()] = _User(user_id, name, email)
        return user

    def _user_for(self, email: str) -> _User:
        """The user behind a ``From`` email: a known one, else one synthesized (stable per address)."""
        user = self._users.get(email.lower())
        if user is None:
            local = email.split("@")[0]
            name = " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part) or email
            digest = hashlib.sha256(email.lower().encode()).hexdigest()[:6].upper()
            user = self._users[email.lower()] = _User(f"PU{digest}", name, email)
        return user

    # ------------------------------------------------------------------------------------ representations

    @property
    def _api(self) -> str:
        return self.base_url if self._port is not None else "https://api.pagerduty.com"

    @property
    def _web(self) -> str:
        return f"https://{self.subdomain}.pagerduty.com"

    def _ref(self, kind: str, path: str, ref_id: str, summary: str) -> dict[str, Any]:
        return {
            "html_url": f"{self._web}/{path}/{ref_id}",
            "id": ref_id,
            "self": f"{self._api}/{path}/{ref_id}",
            "summary": summary,
            "type": f"{kind}_reference",
        }

    def _user_ref(self, user: _User) -> dict[str, Any]:
        return self._ref("user", "users", user.id, user.name)

    def _service_ref(self, incident: _Incident) -> dict[str, Any]:
        return self._ref("service", "services", incident.service_id, incident.service_name)

    def _incident_ref(self, incident: _Incident) -> dict[str, Any]:
        return self._ref("incident", "incidents", incident.id, incident.title)

    def _rest_incident(self, incident: _Incident) -> dict[str, Any]:
        """``GET``/``PUT /incidents/{id}``'s ``incident`` object (REST API v2 shape)."""
        open_ = incident.status != "resolved"
        return {
            "id": incident.id,
            "type": "incident",
            "summary": f"[#{incident.number}] {incident.title}",
            "self": f"{self._api}/incidents/{incident.id}",
            "html_url": f"{self._web}/incidents/{incident.id}",
            "incident_number": incident.number,
            "title": incident.title,
            "created_at": incident.created_at,
            "status": incident.status,
            "incident_key": incident.incident_key,
            "service": self._service_ref(incident),
            "assignments": [
                {"at": incident.created_at, "assignee": self._user_ref(user)} for user in incident.assignees
            ]
            if open_
            else [],
            "acknowledgements": [
                {"at": at, "acknowledger": self._user_ref(user)} for at, user in incident.acknowledgements
            ]
            if incident.status == "acknowledged"
            else [],
            "last_status_change_at": incident.last_status_change_at,
            "last_status_change_by": incident.last_status_change_by or self._service_ref(incident),
            "escalation_policy": self._ref(
                "escalation_policy", "escalation_policies", *incident.escalation_policy
            ),
            "teams": [self._ref("team", "teams", team_id, name) for team_id, name in incident.teams],
            "priority": self._priority(incident),
            "urgency": incident.urgency,
            "conference_bridge": incident.conference_bridge,
            "resolve_reason": None,
        }

    def _priority(self, incident: _Incident) -> dict[str, Any] | None:
        if incident.priority is None:
            return None
        priority_id, name = incident.priority
        return {
            "html_url": f"{self._web}/account/incident_priorities",
            "id": priority_id,
            "self": f"{self._api}/priorities/{priority_id}",
            "summary": name,
            "type": "priority_reference",
        }

    def _webhook_incident(self, incident: _Incident) -> dict[str, Any]:
        """The V3 webhook ``incident`` data object, field for field as PagerDuty's webhook docs show it."""
        return {
            "id": incident.id,
            "type": "incident",
            "self": f"{self._api}/incidents/{incident.id}",
            "html_url": f"{self._web}/incidents/{incident.id}",
            "number": incident.number,
            "status": incident.status,
            "incident_key": incident.incident_key,
            "created_at": incident.created_at,
            "title": incident.title,
            "service": self._service_ref(incident),
            "assignees": [self._user_ref(u) for u in incident.assignees]
            if incident.status != "resolved"
            else [],
            "escalation_policy": self._ref(
                "escalation_policy", "escalation_policies", *incident.escalation_policy
            ),
            "teams": [self._ref("team", "teams", team_id, name) for team_id, name in incident.teams],
            "priority": self._priority(incident),
            "urgency": incident.urgency,
            "conference_bridge": incident.conference_bridge,
            "resolve_reason": None,
        }
