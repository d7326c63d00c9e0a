"""A recording fake of PagerDuty -- REST API v2, Events API v2 and V3 webhooks -- served over real HTTP on loopback.

The sibling of :mod:`stand_ins.recording_slack` and :mod:`stand_ins.recording_supabase`: :class:`integrations.pagerduty.
PagerDutyClient` (the official ``pagerduty`` package underneath) and :func:`integrations.pagerduty.send_event` are
pointed at ``server.base_url`` unchanged, so what is tested is the real request -- method, path, JSON body,
``Authorization: Token token=…``, ``From`` -- and the real handling of PagerDuty's answers.

It keeps a real in-memory incident store:

* ``PUT /incidents/{id}`` (acknowledge / resolve; resolving or acknowledging a resolved incident is
  ``400 {"error": {"message": "Invalid Input Provided", "code": 2001, "errors": ["Incident Already Resolved"]}}``;
  ``escalation_level`` assigns the incident to that level's on-calls of its policy, as :meth:`set_oncalls` has
  them, and sends ``incident.escalated``; the body is checked against the OpenAPI's ``updateIncident``: types,
  enums, ``incident.type`` required), ``GET /incidents/{id}``;
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

The pieces: the in-memory store and the shapes of an incident (:mod:`stand_ins.pagerduty_store`), the REST API
v2 endpoints (:mod:`stand_ins.pagerduty_rest_api`), the Events API v2 endpoint
(:mod:`stand_ins.pagerduty_events_api`) and the V3 webhook echo (:mod:`stand_ins.pagerduty_webhook_sender`); this
module is the server itself: the routes, injected faults, authentication and the record of every call.

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
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stand_ins.pagerduty_events_api import PagerDutyEventsApi
from stand_ins.pagerduty_rest_api import PagerDutyRestApi
from stand_ins.pagerduty_store import _REST_ERRORS, _Incident, _Invalid, _rest_error, _User, oncall_entry
from stand_ins.pagerduty_webhook_sender import WebhookDelivery, real_time

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


_METHODS = ("GET", "PUT", "POST")


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
class _Fault:
    method: str
    path_prefix: str | None
    status: int
    body: Any
    retry_after: float | None
    remaining: int
    hang: bool = False
    delay: float | None = None  # apply the call at once, answer after this many seconds


def _header_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# -------------------------------------------------------------------------------------------------- server


class RecordingPagerDutyServer(PagerDutyRestApi, PagerDutyEventsApi):
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
        self.clock = real_time
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

    # -------------------------------------------------------------------------------------- configuration

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
