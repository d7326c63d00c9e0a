"""A recording fake of the Supabase Management API's secrets endpoints, served over real HTTP on loopback.

The sibling of :mod:`stand_ins.recording_slack`, for Mira's flags: :class:`integrations.supabase.SupabaseSecrets` is
pointed at ``server.base_url`` unchanged, so what is tested is the real request -- method, path, JSON body,
bearer token -- and the real handling of the answers, rate-limit headers included.

It keeps a real store per project ref (name → value), and like Supabase the list endpoint answers digests, never
values, so the bot's "is the value I set still there?" check works against it.  :meth:`set_outside` changes a
secret behind the bot's back, as someone running ``supabase secrets set`` by hand would.

Two users:

* the tests, which assert on :attr:`RecordingSupabaseServer.calls` and inject failures with :meth:`fail_next`
  (401 / 429 / 5xx) and :meth:`hang_next` (no answer at all, for timeouts); and
* the console (``mira-bot console``), so Mira's flags can be flipped without a Supabase project; it reads the
  current values with :meth:`secrets`.

Every answer carries ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` like the real API
(120 requests a minute per token and project by default), and the window is enforced: past the limit, 429 with
``Retry-After`` until it resets.

Usage::

    async with RecordingSupabaseServer(token="sbp_test") as supabase:
        backend = SupabaseSecrets(http, supabase.base_url, "sbp_test", "abcdefghijklmnopqrst")
        await backend.set({"MIRA_COPILOT_ENABLED": "false"})
        [call] = await supabase.wait_for("POST")
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stand_ins.recording_base import RecordingServer, take_fault

__all__ = ["DEFAULT_TOKEN", "RecordingSupabaseServer", "SupabaseCall"]

DEFAULT_TOKEN = "sbp_console0000000000000000000000000000000"

#: ``status`` of a call that :meth:`RecordingSupabaseServer.hang_next` never answered.
NO_ANSWER = 0

_METHODS = ("GET", "POST", "DELETE")
_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too many requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class SupabaseCall:
    """One request the server received.

    ``body`` is the decoded JSON (``None`` for a GET, the raw text if it was not JSON); ``headers`` are the request
    headers, lower-cased; ``status`` is what we answered, :data:`NO_ANSWER` (0) for a hung call.
    """

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    status: int
    ref: str = ""
    at: float = field(default_factory=time.monotonic)

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None


@dataclass
class _Fault:
    status: int
    body: Any
    retry_after: float | None
    remaining: int
    hang: bool = False


@dataclass
class _Window:
    started: float
    used: int = 0


def _digest(value: str) -> str:
    # Kept local (not integrations.flag_backends.digest_of) so the fake states Supabase's rule independently.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class RecordingSupabaseServer(RecordingServer):
    """Fake ``/v1/projects/{ref}/secrets`` (GET, POST, DELETE) on ``127.0.0.1:<ephemeral port>``.

    ``base_url`` is what ``SUPABASE_API_URL`` is set to.  ``token`` is the only bearer token accepted (anything
    else: 401 ``{"message": "Unauthorized"}``).
    ``rate_limit`` requests per ``rate_window`` seconds are allowed per token and project, as Supabase does.
    """

    name = "supabase"

    def __init__(self, token: str = DEFAULT_TOKEN, rate_limit: int = 120, rate_window: float = 60.0) -> None:
        if rate_limit < 1 or rate_window <= 0:
            raise ValueError("rate_limit must be >= 1 and rate_window > 0")
        super().__init__()
        self.token = token
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._calls: list[SupabaseCall] = []
        self._store: dict[str, dict[str, str]] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self.app = Starlette(
            routes=[Route("/v1/projects/{ref}/secrets", self._secrets_endpoint, methods=list(_METHODS))]
        )

    # -------------------------------------------------------------------------------------- configuration

    def fail_next(
        self,
        method: str,
        status: int,
        body: Any = None,
        retry_after: float | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` ``method`` calls with ``status`` instead of doing them.

        ``body`` is sent as JSON (a ``str`` as plain text); by default ``{"message": <reason>}`` as Supabase does.
        ``retry_after`` adds a ``Retry-After`` header (useful with 429).  A failed call changes nothing in the
        store and is still recorded, with its status.
        """
        self._add_fault(method, _Fault(status=status, body=body, retry_after=retry_after, remaining=count))

    def hang_next(self, method: str, count: int = 1) -> None:
        """Never answer the next ``count`` ``method`` calls (until :meth:`stop`): the client must time out.

        The call is recorded when it arrives, with status :data:`NO_ANSWER`, and changes nothing.
        """
        self._add_fault(
            method, _Fault(status=NO_ANSWER, body=None, retry_after=None, remaining=count, hang=True)
        )

    def set_outside(self, ref: str, name: str, value: str) -> None:
        """Change a secret as someone outside the bot would (not recorded as a call, no rate limit)."""
        self._store.setdefault(ref, {})[name] = value

    def unset_outside(self, ref: str, name: str) -> None:
        """Delete a secret outside the bot."""
        self._store.get(ref, {}).pop(name, None)

    def reset(self) -> None:
        """Forget calls, secrets, injected faults and rate-limit windows."""
        self._calls.clear()
        self._store.clear()
        self._faults.clear()
        self._windows.clear()

    # ----------------------------------------------------------------------------------------- inspection

    def secrets(self, ref: str) -> dict[str, str]:
        """The values (not digests) the project now holds -- what Mira's functions would read (a copy)."""
        return dict(self._store.get(ref, {}))

    @property
    def calls(self) -> list[SupabaseCall]:
        """Every recorded call, in arrival order (a copy)."""
        return list(self._calls)

    def calls_to(
        self, method: str, *, ref: str | None = None, status: int | None = None
    ) -> list[SupabaseCall]:
        """Calls with this HTTP ``method``, optionally for one project ``ref`` and/or answered with ``status``."""
        return [c for c in self._calls if self._matches(c, method.upper(), ref, status)]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 -- a per-call deadline is the point of this helper
        *,
        ref: str | None = None,
        status: int | None = None,
    ) -> list[SupabaseCall]:
        """Wait until at least ``count`` matching calls are recorded (woken per call, no polling).

        Raises :class:`TimeoutError` listing what was received, so a failing test says what happened instead.
        """

        def matching() -> list[SupabaseCall]:
            return self.calls_to(method, ref=ref, status=status)

        def report() -> str:
            wanted = (
                f"timed out after {timeout}s waiting for {count} {method.upper()} call(s)"
                + (f" for {ref}" if ref else "")
                + (f" answered {status}" if status is not None else "")
            )
            return self._received(self._calls, wanted, len(matching()))

        return await self._wait_matching(matching, count, timeout, report)

    # ------------------------------------------------------------------------------------------ internals

    @staticmethod
    def _matches(call: SupabaseCall, method: str, ref: str | None, status: int | None) -> bool:
        return (
            call.method == method
            and (ref is None or call.ref == ref)
            and (status is None or call.status == status)
        )

    def _add_fault(self, method: str, fault: _Fault) -> None:
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}")
        if fault.remaining < 1:
            raise ValueError("count must be >= 1")
        self._faults.setdefault(method, []).append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        return take_fault(self._faults, method)

    async def _record(self, call: SupabaseCall) -> None:
        cond = self._require_cond()
        async with cond:
            self._calls.append(call)
            cond.notify_all()

    def _count(self, token: str, ref: str) -> tuple[dict[str, str], bool]:
        """Count one request against its window: (rate-limit headers, whether it is over the limit)."""
        now = time.monotonic()
        window = self._windows.get((token, ref))
        if window is None or now - window.started >= self.rate_window:
            window = self._windows[(token, ref)] = _Window(started=now)
        window.used += 1
        reset = max(0, math.ceil(window.started + self.rate_window - now))
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - window.used)),
            "X-RateLimit-Reset": str(reset),
        }
        return headers, window.used > self.rate_limit

    async def _secrets_endpoint(self, request: Request) -> Response:
        method = request.method.upper()
        ref = request.path_params["ref"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = await request.body()
        body: Any = None
        body_error = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                body, body_error = raw.decode("utf-8", "replace"), True

        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        rate_headers, over_limit = self._count(token, ref)

        def answer(status: int, payload: Any = None, extra: dict[str, str] | None = None) -> Response:
            all_headers = {**rate_headers, **(extra or {})}
            if isinstance(payload, str):
                return Response(payload, status_code=status, headers=all_headers, media_type="text/plain")
            if payload is None and status in (201, 204):
                return Response(status_code=status, headers=all_headers)
            return JSONResponse(payload, status_code=status, headers=all_headers)

        async def finish(status: int, payload: Any = None, extra: dict[str, str] | None = None) -> Response:
            await self._record(SupabaseCall(method, request.url.path, body, headers, status, ref))
            return answer(status, payload, extra)

        fault = self._take_fault(method)
        if fault is not None and fault.hang:
            await self._record(SupabaseCall(method, request.url.path, body, headers, NO_ANSWER, ref))
            assert self._release is not None
            await self._release.wait()
            return answer(503, {"message": "server shutting down"})
        if fault is not None:
            extra = (
                {"Retry-After": _header_number(fault.retry_after)} if fault.retry_after is not None else {}
            )
            if fault.status == 429:
                rate_headers["X-RateLimit-Remaining"] = "0"
            payload = fault.body if fault.body is not None else {"message": _message(fault.status)}
            return await finish(fault.status, payload, extra)

        if token != self.token:
            return await finish(401, {"message": "Unauthorized"})
        if over_limit:
            return await finish(
                429, {"message": "Too many requests"}, {"Retry-After": rate_headers["X-RateLimit-Reset"]}
            )

        store = self._store.setdefault(ref, {})
        if method == "GET":
            listing = [{"name": name, "value": _digest(value)} for name, value in sorted(store.items())]
            return await finish(200, listing)
        if method == "POST":
            error = _check_create(body) if not body_error else "Request body must be JSON"
            if error:
                return await finish(400, {"message": error})
            for item in body:
                store[item["name"]] = item["value"]
            return await finish(201)
        # DELETE
        error = _check_delete(body) if not body_error else "Request body must be JSON"
        if error:
            return await finish(400, {"message": error})
        for name in body:
            store.pop(name, None)
        return await finish(200, {})


def _message(status: int) -> str:
    return _DEFAULT_MESSAGES.get(status, "Error")


def _header_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_create(body: Any) -> str | None:
    """Supabase's validation, roughly: a non-empty array of {name, value} strings, no reserved names."""
    if not isinstance(body, list) or not body:
        return "body must be a non-empty array of {name, value}"
    for item in body:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("value"), str)
        ):
            return "each secret needs a string name and value"
        if not item["name"]:
            return "secret name must not be empty"
        if item["name"].startswith("SUPABASE_"):
            return f"Secret name {item['name']} must not start with the SUPABASE_ prefix"
    return None


def _check_delete(body: Any) -> str | None:
    if not isinstance(body, list) or not body or not all(isinstance(name, str) for name in body):
        return "body must be a non-empty array of secret names"
    return None
