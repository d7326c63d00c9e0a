"""The recording PagerDuty's Events API v2: ``POST /v2/enqueue`` opens, acknowledges and resolves incidents.

Split from :mod:`stand_ins.recording_pagerduty` because the Events API is a different API with its own rules and
error shape (``{"status", "message", "errors"}``, answered ``202`` on success): a 32-character routing key, a
``trigger`` with ``summary``/``source``/``severity`` opens an incident unless one is open for the same
``dedup_key``, and ``acknowledge``/``resolve`` of an unknown ``dedup_key`` is accepted and dropped, as PagerDuty
does.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from stand_ins.pagerduty_store import PagerDutyIncidentStore, _event_error, _Incident, _Invalid, _now

_ROUTING_KEY_LENGTH = 32
_SEVERITY_URGENCY = {"critical": "high", "error": "high", "warning": "low", "info": "low"}


class PagerDutyEventsApi(PagerDutyIncidentStore):
    """The Events API v2 endpoint of :class:`stand_ins.recording_pagerduty.RecordingPagerDutyServer`."""

    if TYPE_CHECKING:  # the request pipeline, in RecordingPagerDutyServer

        async def _handle(self, request: Request, handler: Any, *, rest: bool) -> Response: ...

    async def _enqueue_endpoint(self, request: Request) -> Response:
        return await self._handle(request, self._enqueue_op, rest=False)

    def _enqueue_op(
        self, request: Request, body: Any, headers: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise _Invalid(
                400,
                {
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                },
            )
        routing_key = body.get("routing_key")
        if not isinstance(routing_key, str) or len(routing_key) != _ROUTING_KEY_LENGTH:
            raise _event_error(
                f"Length of 'routing_key' is incorrect (should be {_ROUTING_KEY_LENGTH} characters)"
            )
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            raise _event_error("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
        dedup_key = body.get("dedup_key")
        if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
            raise _event_error("'dedup_key' must be a string of at most 255 characters")
        if action != "trigger" and not dedup_key:
            raise _event_error("'dedup_key' is missing or blank")
        if action == "trigger":
            dedup_key = self._trigger(routing_key, dedup_key, body.get("payload"))
        else:
            self._follow_up(routing_key, str(dedup_key), action)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}

    def _trigger(self, routing_key: str, dedup_key: str | None, payload: Any) -> str:
        if not isinstance(payload, dict):
            raise _event_error("'payload' is missing or not an object")
        problems = [
            f"'payload.{name}' is missing or blank"
            for name in ("summary", "source", "severity")
            if not isinstance(payload.get(name), str) or not payload[name].strip()
        ]
        if not problems and payload["severity"] not in _SEVERITY_URGENCY:
            problems.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
        if problems:
            raise _event_error(*problems)
        key = dedup_key or uuid.uuid4().hex
        if self._open_incident(routing_key, key) is not None:
            return key  # a new alert on the open incident: no new incident, no webhook
        service_id, service_name, users, policy = self._routing_keys.get(
            routing_key,
            (
                "PS" + hashlib.sha256(routing_key.encode()).hexdigest()[:5].upper(),
                "Events API v2 service",
                [],
                None,
            ),
        )
        number = max((i.number for i in self._incidents.values()), default=0) + 1
        incident_id = self._new_id("Q")
        while incident_id in self._incidents:
            incident_id = self._new_id("Q")
        created = _now(self.clock())
        incident = _Incident(
            id=incident_id,
            number=number,
            title=str(payload["summary"])[:1024],
            service_id=service_id,
            service_name=service_name,
            status="triggered",
            urgency=_SEVERITY_URGENCY[payload["severity"]],
            assignees=list(users),
            incident_key=key,
            created_at=created,
            escalation_policy=policy or ("PEP0001", "Default"),
            teams=[],
            priority=None,
            conference_bridge=None,
            routing_key=routing_key,
            last_status_change_at=created,
        )
        self._incidents[incident_id] = incident
        self._emit(
            "incident.triggered", incident, self._webhook_incident(incident), self._service_ref(incident)
        )
        return key

    def _follow_up(self, routing_key: str, dedup_key: str, action: str) -> None:
        incident = self._open_incident(routing_key, dedup_key)
        if incident is None:
            return  # PagerDuty accepts the event and drops it
        new_status = "acknowledged" if action == "acknowledge" else "resolved"
        now = _now(self.clock())
        incident.status = new_status
        incident.last_status_change_at = now
        incident.last_status_change_by = self._service_ref(incident)
        self._emit(
            f"incident.{new_status}", incident, self._webhook_incident(incident), self._service_ref(incident)
        )

    def _open_incident(self, routing_key: str, dedup_key: str) -> _Incident | None:
        for incident in self._incidents.values():
            if (
                incident.routing_key == routing_key
                and incident.incident_key == dedup_key
                and incident.status != "resolved"
            ):
                return incident
        return None
