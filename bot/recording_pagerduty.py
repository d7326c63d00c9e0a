"""A recording fake of PagerDuty -- REST API v2, Events API v2 and V3 webhooks -- served over real HTTP on loopback.

The sibling of :mod:`bot.recording_slack` and :mod:`bot.recording_supabase`: :class:`integrations.pagerduty.
PagerDutyClient` (the official ``pagerduty`` package underneath) and :func:`integrations.pagerduty.send_event` are
pointed at ``server.base_url`` unchanged, so what is tested is the real request -- method, path, JSON body,
``Authorization: Token token=…``, ``From`` -- and the real handling of PagerDuty's answers.

It keeps a real in-memory incident store:

* ``PUT /incidents/{id}`` (acknowledge / resolve; resolving or acknowledging a resolved incident is
  ``400 {"error": {"message": "Invalid Input Provided", "code": 2001, "errors": ["Incident Already Resolved"]}}``),
  ``GET /incidents/{id}``;
* ``POST /incidents/{id}/notes`` (``200 {"note": {...}}``), ``GET /incidents/{id}/notes``;
* ``GET /oncalls``: what :meth:`RecordingPagerDutyServer.set_oncalls` configured, filtered by ``schedule_ids[]``,
  ``escalation_policy_ids[]`` and ``user_ids[]``, with classic pagination (``limit`` -- at most ``page_size`` --,
  ``offset``, ``more``, ``total``);
* ``POST /v2/enqueue`` (Events API v2): a ``trigger`` for a routing key opens an incident (unless one is open for
  the same ``dedup_key``), ``acknowledge``/``resolve`` with that ``dedup_key`` change it; answered
  ``202 {"status": "success", "message": "Event processed", "dedup_key": …}``.

Faults: :meth:`RecordingPagerDutyServer.fail_next` answers a status, :meth:`~RecordingPagerDutyServer.hang_next`
never answers (nothing applied), :meth:`~RecordingPagerDutyServer.slow_next` applies at once and answers late.

REST calls need ``Authorization: Token token=<token>`` (else ``401 {"error": {"message": "Authentication failed",
"code": 2006}}``) and writes a ``From`` header.  Error bodies follow PagerDuty's documented shapes (REST:
``{"error": {"message", "code", "errors"}}``; Events API: ``{"status", "message", "errors"}``); the exact wording
of the validation errors is this fake's.

**Webhook echo.**  With :meth:`send_webhooks_to` (or ``webhook_url``/``webhook_secrets``), every state change made
through the APIs -- acknowledge, resolve, note, Events API trigger/acknowledge/resolve -- makes the server POST a
signed V3 webhook to that URL, the way PagerDuty would: ``{"event": {"id", "event_type", "resource_type":
"incident", "occurred_at", "agent", "client": null, "data"}}`` with the incident data object of PagerDuty's V3
docs (``incident.annotated`` carries an ``incident_note``), ``X-PagerDuty-Signature: v1=<hmac>[,v1=…]`` (one per
secret, :func:`bot.signing.sign_pagerduty_webhook`), ``X-Webhook-Id``, ``X-Webhook-Subscription``,
``User-Agent: PagerDuty-Webhook/V3.0``.  The body is a snapshot taken at the change; deliveries go out one at a
time in order, after the API answer, and each is recorded in :attr:`webhooks_sent` with the receiver's status.
The agent is the user whose ``From`` email was used (a known user, e.g. an assignee, else one synthesized from the
address); for Events API changes it is the incident's service.  No redelivery: a failed delivery is only recorded.

Usage::

    async with RecordingPagerDutyServer(token="pd-test") as pd:
        pd.add_incident("PABC123", 42, "Mira Co-Pilot error rate", "PSVC001",
                        assignees=[("PUSR001", "Alice Example", "alice@example.com")])
        pd.send_webhooks_to(bot_url + "/pagerduty/webhook", ["secret"])
        client = PagerDutyClient("pd-test", pd.base_url)
        await client.acknowledge("PABC123", from_email="alice@example.com")
        [delivery] = await pd.wait_for_webhooks(1)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import random
import string
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.recording_base import RecordingServer
from bot.signing import sign_pagerduty_webhook

__all__ = [
    "DEFAULT_TOKEN",
    "NO_ANSWER",
    "PagerDutyCall",
    "RecordingPagerDutyServer",
    "WebhookDelivery",
    "oncall_entry",
]

DEFAULT_TOKEN = "pd-console-token-0000000000"

#: ``status`` of a call that :meth:`RecordingPagerDutyServer.hang_next` never answered.
NO_ANSWER = 0

WEBHOOK_USER_AGENT = "PagerDuty-Webhook/V3.0"
#: PagerDuty waits this long for a webhook receiver to answer.
WEBHOOK_TIMEOUT = 5.0

_METHODS = ("GET", "PUT", "POST")
_ROUTING_KEY_LENGTH = 32
_SEVERITY_URGENCY = {"critical": "high", "error": "high", "warning": "low", "info": "low"}
_DEFAULT_PAGE = 25

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


# ------------------------------------------------------------------------------------------------- records


@dataclass
class PagerDutyCall:
    """One request the server received.

    ``body`` is the decoded JSON (``None`` without a body, the raw text if it was not JSON); ``headers`` are the
    request headers, lower-cased; ``query`` the query string (``schedule_ids[]`` → list of values); ``status`` is
    what we answered, :data:`NO_ANSWER` (0) for a hung call.
    """

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    status: int
    query: dict[str, list[str]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Token token=") if auth.startswith("Token token=") else None

    @property
    def from_email(self) -> str | None:
        return self.headers.get("from")


@dataclass
class WebhookDelivery:
    """One V3 webhook the server sent: the exact bytes and headers, and what the receiver answered.

    ``status`` is the receiver's HTTP status (``None`` when there was no answer; then ``error`` says why).
    """

    event_type: str
    event_id: str
    webhook_id: str
    incident_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None

    @property
    def event(self) -> dict[str, Any]:
        """The decoded ``event`` object of the envelope."""
        event: dict[str, Any] = json.loads(self.body)["event"]
        return event


@dataclass
class _User:
    id: str
    name: str
    email: str


@dataclass
class _Incident:
    id: str
    number: int
    title: str
    service_id: str
    service_name: str
    status: str
    urgency: str
    assignees: list[_User]
    incident_key: str
    created_at: str
    escalation_policy: tuple[str, str]
    teams: list[tuple[str, str]]
    priority: tuple[str, str] | None
    conference_bridge: dict[str, Any] | None
    routing_key: str | None = None
    acknowledgements: list[tuple[str, _User]] = field(default_factory=list)
    last_status_change_at: str = ""
    last_status_change_by: dict[str, Any] | None = None
    resolution: str | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Fault:
    method: str
    path_prefix: str | None
    status: int
    body: Any
    retry_after: float | None
    remaining: int
    hang: bool = False
    delay: float | None = None  # apply the call at once, answer after this many seconds


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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_ms() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _header_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


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


# -------------------------------------------------------------------------------------------------- server


class RecordingPagerDutyServer(RecordingServer):
    """Fake PagerDuty REST API v2 + Events API v2 on ``127.0.0.1:<ephemeral port>``, optionally echoing webhooks.

    ``base_url`` is ``PAGERDUTY_API_URL``, and the Events API URL too.  ``token`` is the only REST API token
    accepted.  ``page_size`` caps ``limit`` on ``GET /oncalls`` (PagerDuty caps it at 100; a small value makes
    pagination visible).  ``subdomain`` shapes ``html_url`` links.
    """

    name = "pagerduty"

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        webhook_url: str | None = None,
        webhook_secrets: Sequence[str] = (),
        page_size: int = 100,
        subdomain: str = "mira",
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        super().__init__()
        self.token = token
        self.page_size = page_size
        self.subdomain = subdomain
        self.subscription_id = "PSUBMIRA"
        self._webhook_url = webhook_url
        self._webhook_secrets = list(webhook_secrets)
        self._sender: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._queue: asyncio.Queue[WebhookDelivery] | None = None
        self._rng = random.Random()
        self._calls: list[PagerDutyCall] = []
        self._faults: list[_Fault] = []
        self._incidents: dict[str, _Incident] = {}
        self._users: dict[str, _User] = {}
        self._routing_keys: dict[str, tuple[str, str, list[_User], tuple[str, str] | None]] = {}
        self._oncalls: list[dict[str, Any]] = []
        self._webhooks: list[WebhookDelivery] = []
        self.app = Starlette(
            routes=[
                Route("/incidents/{id}", self._incident_endpoint, methods=["GET", "PUT"]),
                Route("/incidents/{id}/notes", self._notes_endpoint, methods=["GET", "POST"]),
                Route("/oncalls", self._oncalls_endpoint, methods=["GET"]),
                Route("/users/{id}", self._user_endpoint, methods=["GET"]),
                Route("/v2/enqueue", self._enqueue_endpoint, methods=["POST"]),
                Route("/{path:path}", self._unknown_endpoint, methods=list(_METHODS) + ["DELETE", "PATCH"]),
            ]
        )

    # ------------------------------------------------------------------------------------------ lifecycle

    async def _starting(self) -> None:
        """Start the webhook sender alongside the server."""
        self._queue = asyncio.Queue()
        self._http = httpx.AsyncClient(trust_env=False, timeout=WEBHOOK_TIMEOUT)
        self._sender = asyncio.create_task(self._send_webhooks(), name="recording-pagerduty-webhooks")

    async def _stopping(self) -> None:
        """Deliver queued webhooks (bounded), then stop the sender; runs after hung requests are released."""
        if self._queue is not None and self._sender is not None and not self._sender.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), WEBHOOK_TIMEOUT + 1.0)
        await self._stop_sender()

    async def _stop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # -------------------------------------------------------------------------------------- configuration

    def send_webhooks_to(self, url: str | None, secrets: Iterable[str] = ()) -> None:
        """Echo every state change as a V3 webhook to ``url`` (``None`` stops), signed with each secret.

        Several secrets give several ``v1=`` signatures, as during a rotation; no secret sends it unsigned.
        """
        self._webhook_url = url
        self._webhook_secrets = list(secrets)

    @property
    def webhook_url(self) -> str | None:
        return self._webhook_url

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
        created = created_at or _now()
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

    def fail_next(
        self,
        method: str,
        status: int,
        body: Any = None,
        retry_after: float | None = None,
        count: int = 1,
        *,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next ``count`` ``method`` calls (under ``path_prefix``, if given) with ``status``.

        ``body`` is sent as JSON (a ``str`` as plain text); by default PagerDuty's error shape for the status.
        ``retry_after`` adds ``Retry-After`` (and, for a 429, PagerDuty's ``ratelimit-*`` headers).  A failed call
        changes nothing and is still recorded, with its status.
        """
        self._add_fault(_Fault(method.upper(), path_prefix, status, body, retry_after, count))

    def hang_next(self, method: str, count: int = 1, *, path_prefix: str | None = None) -> None:
        """Never answer the next ``count`` ``method`` calls (until :meth:`stop`): the client must time out.

        The call is recorded when it arrives, with status :data:`NO_ANSWER`, and changes nothing.
        """
        self._add_fault(_Fault(method.upper(), path_prefix, NO_ANSWER, None, None, count, hang=True))

    def slow_next(
        self, method: str, seconds: float, count: int = 1, *, path_prefix: str | None = None
    ) -> None:
        """Apply the next ``count`` ``method`` calls at once, but answer each only after ``seconds``.

        PagerDuty under load: the change is made (and its webhook sent) straight away, the HTTP answer comes
        late -- later than the client's timeout, when a test wants the "no answer yet" path.  The call is
        recorded when it is applied, with the status it will be answered with; :meth:`stop` cuts the wait short.
        """
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        self._add_fault(_Fault(method.upper(), path_prefix, 0, None, None, count, delay=seconds))

    def reset(self) -> None:
        """Forget calls, faults, incidents, users, routing keys, on-calls and sent webhooks."""
        self._calls.clear()
        self._faults.clear()
        self._incidents.clear()
        self._users.clear()
        self._routing_keys.clear()
        self._oncalls.clear()
        self._webhooks.clear()

    # ----------------------------------------------------------------------------------------- inspection

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

    @property
    def calls(self) -> list[PagerDutyCall]:
        """Every recorded call, in arrival order (a copy)."""
        return list(self._calls)

    def calls_to(
        self, method: str, path_prefix: str | None = None, *, status: int | None = None
    ) -> list[PagerDutyCall]:
        """Calls with this HTTP ``method``, optionally under ``path_prefix`` and/or answered with ``status``."""
        method = method.upper()
        return [
            c
            for c in self._calls
            if c.method == method
            and (path_prefix is None or c.path.startswith(path_prefix))
            and (status is None or c.status == status)
        ]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 -- a per-call deadline is the point of this helper
        *,
        path_prefix: str | None = None,
        status: int | None = None,
    ) -> list[PagerDutyCall]:
        """Wait until at least ``count`` matching calls are recorded (woken per call, no polling).

        Raises :class:`TimeoutError` listing what was received, so a failing test says what happened.
        """

        def matching() -> list[PagerDutyCall]:
            return self.calls_to(method, path_prefix, status=status)

        def report() -> str:
            wanted = (
                f"timed out after {timeout}s waiting for {count} {method.upper()} call(s)"
                + (f" under {path_prefix}" if path_prefix else "")
                + (f" answered {status}" if status is not None else "")
            )
            return self._received(self._calls, wanted, len(matching()))

        return await self._wait_matching(matching, count, timeout, report)

    @property
    def webhooks_sent(self) -> list[WebhookDelivery]:
        """Every webhook delivered (or attempted), in order, with the receiver's status (a copy)."""
        return list(self._webhooks)

    async def wait_for_webhooks(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 -- a per-call deadline is the point of this helper
        *,
        event_type: str | None = None,
    ) -> list[WebhookDelivery]:
        """Wait until ``count`` webhooks (of ``event_type``, if given) have been sent and answered."""
        cond = self._require_cond()

        def matching() -> list[WebhookDelivery]:
            return [w for w in self._webhooks if event_type is None or w.event_type == event_type]

        try:
            async with asyncio.timeout(timeout), cond:
                await cond.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            sent = ", ".join(f"{w.event_type} [{w.status or w.error}]" for w in self._webhooks) or "none"
            where = self._webhook_url or "nowhere (send_webhooks_to was not called)"
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {count} webhook(s)"
                + (f" of type {event_type}" if event_type else "")
                + f" to {where}; sent: {sent}"
            ) from None
        return matching()

    # ------------------------------------------------------------------------------------------ internals

    def _add_fault(self, fault: _Fault) -> None:
        if fault.method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}")
        if fault.remaining < 1:
            raise ValueError("count must be >= 1")
        self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.method == method and (fault.path_prefix is None or path.startswith(fault.path_prefix)):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.pop(index)
                return fault
        return None

    async def _record(self, call: PagerDutyCall) -> None:
        cond = self._require_cond()
        async with cond:
            self._calls.append(call)
            cond.notify_all()

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

    # ------------------------------------------------------------------------------------------- webhooks

    def _emit(
        self, event_type: str, incident: _Incident, data: dict[str, Any], agent: dict[str, Any]
    ) -> None:
        """Queue the V3 webhook for a change that just happened (a snapshot: later changes do not alter it)."""
        url = self._webhook_url
        if not url or self._queue is None:
            return
        event_id = str(uuid.uuid4())
        envelope = {
            "event": {
                "id": event_id,
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": _now_ms(),
                "agent": agent,
                "client": None,
                "data": data,
            }
        }
        body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
        webhook_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": WEBHOOK_USER_AGENT,
            "X-Webhook-Id": webhook_id,
            "X-Webhook-Subscription": self.subscription_id,
        }
        if self._webhook_secrets:
            headers.update(sign_pagerduty_webhook(self._webhook_secrets, body))
        self._queue.put_nowait(
            WebhookDelivery(event_type, event_id, webhook_id, incident.id, url, body, headers)
        )

    async def _send_webhooks(self) -> None:
        """Deliver queued webhooks one at a time, in order (PagerDuty orders deliveries per incident)."""
        assert self._queue is not None
        queue = self._queue
        while True:
            delivery = await queue.get()
            try:
                assert self._http is not None
                response = await self._http.post(
                    delivery.url, content=delivery.body, headers=delivery.headers
                )
                delivery.status = response.status_code
            except httpx.HTTPError as exc:
                delivery.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            except Exception as exc:  # a broken receiver must not stop later deliveries
                delivery.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            finally:
                cond = self._require_cond()
                async with cond:
                    self._webhooks.append(delivery)
                    cond.notify_all()
                queue.task_done()

    # ------------------------------------------------------------------------------------------ endpoints

    async def _read(self, request: Request) -> tuple[Any, bool, dict[str, str], dict[str, list[str]]]:
        raw = await request.body()
        body: Any = None
        invalid = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                body, invalid = raw.decode("utf-8", "replace"), True
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = parse_qs(request.url.query, keep_blank_values=True)
        return body, invalid, headers, query

    async def _handle(self, request: Request, handler: Any, *, rest: bool) -> Response:
        """Record the call, apply injected faults, check auth (REST), run ``handler`` (which may raise _Invalid)."""
        method = request.method.upper()
        path = request.url.path
        body, invalid, headers, query = await self._read(request)

        async def finish(status: int, payload: Any, extra: dict[str, str] | None = None) -> Response:
            await self._record(PagerDutyCall(method, path, body, headers, status, query))
            if isinstance(payload, str):
                return Response(payload, status_code=status, headers=extra, media_type="text/plain")
            return JSONResponse(payload, status_code=status, headers=extra)

        fault = self._take_fault(method, path)
        if fault is not None and fault.delay is not None:
            answer = await self._apply(
                request, handler, body, invalid, headers, query, rest=rest, finish=finish
            )
            assert self._release is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), fault.delay)
            return answer
        if fault is not None and fault.hang:
            await self._record(PagerDutyCall(method, path, body, headers, NO_ANSWER, query))
            assert self._release is not None
            await self._release.wait()
            return JSONResponse({"error": {"message": "server shutting down"}}, status_code=503)
        if fault is not None:
            extra: dict[str, str] = {}
            if fault.retry_after is not None:
                extra["Retry-After"] = _header_number(fault.retry_after)
                if fault.status == 429:
                    extra["ratelimit-limit"] = "960"
                    extra["ratelimit-remaining"] = "0"
                    extra["ratelimit-reset"] = str(math.ceil(fault.retry_after))
            payload = fault.body if fault.body is not None else self._fault_body(fault.status, rest=rest)
            return await finish(fault.status, payload, extra)

        return await self._apply(request, handler, body, invalid, headers, query, rest=rest, finish=finish)

    async def _apply(
        self,
        request: Request,
        handler: Any,
        body: Any,
        invalid: bool,
        headers: dict[str, str],
        query: dict[str, list[str]],
        *,
        rest: bool,
        finish: Any,
    ) -> Response:
        """Check auth (REST) and the body, run ``handler``; ``finish`` records the call and builds the answer."""
        if rest and headers.get("authorization") != f"Token token={self.token}":
            return await finish(401, _rest_error(401).body)
        if invalid:
            if rest:
                return await finish(400, _rest_error(400, "The request body is not valid JSON").body)
            return await finish(
                400,
                {
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                },
            )
        try:
            status, payload = handler(request, body, headers, query)
        except _Invalid as exc:
            return await finish(exc.status, exc.body)
        return await finish(status, payload)

    @staticmethod
    def _fault_body(status: int, *, rest: bool) -> dict[str, Any]:
        if rest:
            if status in _REST_ERRORS:
                return _rest_error(status).body
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            return {"error": {"message": phrase}}
        if status == 429:
            return {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. Please retry later.",
            }
        return {"status": "error", "message": "An internal error occurred", "errors": [f"status {status}"]}

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
        change = body.get("incident") if isinstance(body, dict) else None
        if not isinstance(change, dict):
            raise _rest_error(400, "incident is required")
        if change.get("type") not in ("incident", "incident_reference"):
            raise _rest_error(400, "incident type must be incident or incident_reference")
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
        now = _now()
        incident.status = new_status
        incident.last_status_change_at = now
        incident.last_status_change_by = self._user_ref(user)
        if new_status == "acknowledged":
            incident.acknowledgements.append((now, user))
        else:
            incident.resolution = resolution or None
        self._emit(f"incident.{new_status}", incident, self._webhook_incident(incident), self._user_ref(user))
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
            "created_at": _now(),
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
        created = _now()
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
        now = _now()
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

    async def _unknown_endpoint(self, request: Request) -> Response:
        def not_found(
            request: Request, body: Any, headers: dict[str, str], query: dict[str, list[str]]
        ) -> tuple[int, Any]:
            raise _rest_error(
                404, f"{request.method.upper()} {request.url.path} is not implemented by this fake"
            )

        return await self._handle(request, not_found, rest=True)
