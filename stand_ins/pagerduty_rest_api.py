"""The recording PagerDuty's REST API v2: incidents (acknowledge, resolve, read), notes, users and on-calls.

Split from :mod:`stand_ins.recording_pagerduty` (routing, faults, authentication, the call record). Each
``*_op`` takes the decoded request and answers ``(status, body)`` or raises :class:`_Invalid` with PagerDuty's
error shape (``{"error": {"message", "code", "errors"}}``): writes need a ``From`` email, a resolved incident
cannot be acknowledged or resolved again (``Incident Already Resolved``), ``GET /oncalls`` pages classically
(``limit`` capped at ``page_size``, ``offset``, ``more``, ``total``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from stand_ins.pagerduty_store import PagerDutyIncidentStore, _Incident, _now, _rest_error, _User

_DEFAULT_PAGE = 25


class PagerDutyRestApi(PagerDutyIncidentStore):
    """The REST API v2 endpoints of :class:`stand_ins.recording_pagerduty.RecordingPagerDutyServer`."""

    if TYPE_CHECKING:  # the request pipeline and settings, in RecordingPagerDutyServer
        page_size: int

        async def _handle(self, request: Request, handler: Any, *, rest: bool) -> Response: ...

    def _require_from(self, headers: dict[str, str]) -> _User:
        email = headers.get("from", "").strip()
        if not email or "@" not in email:
            raise _rest_error(400, "A valid user email address is required in the From header")
        return self._user_for(email)

    def _require_incident(self, request: Request) -> _Incident:
        incident = self._incidents.get(request.path_params["id"])
        if incident is None:
            raise _rest_error(404, "Incident Not Found")
        return incident

    async def _incident_endpoint(self, request: Request) -> Response:
        return await self._handle(request, self._incident_op, rest=True)

    def _incident_op(
        self, request: Request, body: Any, headers: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        incident = self._require_incident(request)
        if request.method.upper() == "GET":
            return 200, {"incident": self._rest_incident(incident)}
        user = self._require_from(headers)
        change = _update_body(body)
        if "escalation_level" in change:
            return self._escalate(incident, change["escalation_level"], user)
        new_status = change.get("status")
        if new_status is None:
            return 200, {"incident": self._rest_incident(incident)}
        if new_status not in ("acknowledged", "resolved"):
            raise _rest_error(400, "Invalid Status Provided")
        if incident.status == "resolved":
            raise _rest_error(400, "Incident Already Resolved")
        resolution = change.get("resolution")
        if resolution is not None and not isinstance(resolution, str):
            raise _rest_error(400, "resolution must be a string")
        now = _now(self.clock())
        incident.status = new_status
        incident.last_status_change_at = now
        incident.last_status_change_by = self._user_ref(user)
        if new_status == "acknowledged":
            incident.acknowledgements.append((now, user))
        else:
            incident.resolution = resolution or None
        self._emit(f"incident.{new_status}", incident, self._webhook_incident(incident), self._user_ref(user))
        return 200, {"incident": self._rest_incident(incident)}

    def _escalate(self, incident: _Incident, level: int, user: _User) -> tuple[int, Any]:
        """``escalation_level``: assign the incident to whoever is on call at that level of its policy (what
        :meth:`set_oncalls` configured) and send ``incident.escalated``. A level the policy does not have, or a
        resolved incident, is refused."""
        if incident.status == "resolved":
            raise _rest_error(400, "Incident Already Resolved")
        policy_id = incident.escalation_policy[0]
        entries = [e for e in self._oncalls if (e.get("escalation_policy") or {}).get("id") == policy_id]
        levels = {e.get("escalation_level") for e in entries}
        if level not in levels:
            top = max((lv for lv in levels if isinstance(lv, int)), default=0)
            raise _rest_error(
                400, f"Escalation level {level} is not a level of the escalation policy (1-{top})"
            )
        on_call = []
        for entry in entries:
            ref = entry.get("user") or {}
            known = next((u for u in self._users.values() if u.id == ref.get("id")), None)
            if entry.get("escalation_level") == level and known is not None and known not in on_call:
                on_call.append(known)
        incident.escalation_level = level
        incident.assignees = on_call
        incident.last_status_change_by = self._user_ref(user)
        self._emit("incident.escalated", incident, self._webhook_incident(incident), self._user_ref(user))
        return 200, {"incident": self._rest_incident(incident)}

    async def _notes_endpoint(self, request: Request) -> Response:
        return await self._handle(request, self._notes_op, rest=True)

    def _notes_op(
        self, request: Request, body: Any, headers: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        incident = self._require_incident(request)
        if request.method.upper() == "GET":
            return 200, {"notes": [dict(note) for note in incident.notes]}
        user = self._require_from(headers)
        note = body.get("note") if isinstance(body, dict) else None
        content = note.get("content") if isinstance(note, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise _rest_error(400, "Note content can't be blank")
        stored = {
            "id": self._new_id(),
            "user": self._user_ref(user),
            "content": content,
            "created_at": _now(self.clock()),
        }
        incident.notes.append(stored)
        data = {
            "incident": self._incident_ref(incident),
            "id": stored["id"],
            "content": content,
            "trimmed": False,
            "type": "incident_note",
        }
        self._emit("incident.annotated", incident, data, self._user_ref(user))
        return 200, {"note": dict(stored)}

    async def _user_endpoint(self, request: Request) -> Response:
        return await self._handle(request, self._user_op, rest=True)

    def _user_op(
        self, request: Request, body: Any, headers: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        user_id = request.path_params["id"]
        user = next((u for u in self._users.values() if u.id == user_id), None)
        if user is None:
            return 404, {"error": {"message": "Not Found", "code": 2100}}
        return 200, {
            "user": {
                "id": user.id,
                "type": "user",
                "name": user.name,
                "email": user.email,
                "summary": user.name,
            }
        }

    async def _oncalls_endpoint(self, request: Request) -> Response:
        return await self._handle(request, self._oncalls_op, rest=True)

    def _oncalls_op(
        self, request: Request, body: Any, headers: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        def ids(name: str) -> set[str]:
            return {
                v
                for key in (f"{name}[]", name)
                for value in query.get(key, [])
                for v in value.split(",")
                if v
            }

        schedules, policies, users = ids("schedule_ids"), ids("escalation_policy_ids"), ids("user_ids")

        def keep(entry: dict[str, Any]) -> bool:
            schedule = entry.get("schedule") or {}
            policy = entry.get("escalation_policy") or {}
            user = entry.get("user") or {}
            return (
                (not schedules or schedule.get("id") in schedules)
                and (not policies or policy.get("id") in policies)
                and (not users or user.get("id") in users)
            )

        selected = [entry for entry in self._oncalls if keep(entry)]
        try:
            limit = int(query.get("limit", [str(_DEFAULT_PAGE)])[0])
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            raise _rest_error(400, "limit and offset must be integers") from None
        if limit < 1 or offset < 0:
            raise _rest_error(400, "limit must be positive and offset not negative")
        limit = min(limit, self.page_size)
        page = selected[offset : offset + limit]
        total = query.get("total", ["false"])[0].lower() == "true"
        return 200, {
            "oncalls": [dict(entry) for entry in page],
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(selected),
            "total": len(selected) if total else None,
        }

    async def _unknown_endpoint(self, request: Request) -> Response:
        def not_found(
            request: Request, body: Any, headers: dict[str, str], query: dict[str, list[str]]
        ) -> tuple[int, Any]:
            raise _rest_error(
                404, f"{request.method.upper()} {request.url.path} is not implemented by this fake"
            )

        return await self._handle(request, not_found, rest=True)


#: ``PUT /incidents/{id}``'s body as the REST API's OpenAPI (``updateIncident``) gives it: each property's type and,
#: where it has one, its enum. ``incident`` and its ``type`` are required.
_UPDATE_ENUMS = {
    "type": ("incident", "incident_reference"),
    "status": ("resolved", "acknowledged", "triggered"),
    "urgency": ("high", "low"),
}
_UPDATE_TYPES: dict[str, tuple[type, ...]] = {
    "type": (str,),
    "status": (str,),
    "priority": (dict, str),
    "resolution": (str,),
    "title": (str,),
    "escalation_level": (int,),
    "assignments": (list,),
    "incident_type": (dict,),
    "escalation_policy": (dict,),
    "urgency": (str,),
    "conference_bridge": (dict,),
    "service": (dict,),
}


def _update_body(body: Any) -> dict[str, Any]:
    """The ``incident`` of an update, checked against the schema (PagerDuty answers 400 Invalid Input Provided)."""
    change = body.get("incident") if isinstance(body, dict) else None
    if not isinstance(change, dict):
        raise _rest_error(400, "incident is required")
    if "type" not in change:
        raise _rest_error(400, "incident type is required")
    for name, value in change.items():
        allowed = _UPDATE_TYPES.get(name)
        if allowed is None:
            continue  # not in the schema: PagerDuty ignores it
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise _rest_error(400, f"incident {name} must be {' or '.join(t.__name__ for t in allowed)}")
        if name in _UPDATE_ENUMS and value not in _UPDATE_ENUMS[name]:
            raise _rest_error(400, f"incident {name} must be one of {', '.join(_UPDATE_ENUMS[name])}")
    if "escalation_level" in change and change["escalation_level"] < 1:
        raise _rest_error(400, "incident escalation_level must be a level of the escalation policy")
    for name in ("priority", "service"):
        ref = change.get(name)
        if isinstance(ref, dict) and not (
            isinstance(ref.get("id"), str) and isinstance(ref.get("type"), str)
        ):
            raise _rest_error(400, f"incident {name} needs an id and a type")
    return change
