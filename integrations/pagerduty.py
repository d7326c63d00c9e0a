"""PagerDuty from the bot: incident actions over REST API v2, on-calls, and events over the Events API v2.

REST (``PAGERDUTY_API_URL``, through the official ``pagerduty`` package's :class:`pagerduty.RestApiV2Client`):

* Acknowledge / Resolve: ``PUT /incidents/{id}`` with ``{"incident": {"type": "incident_reference",
  "status": "acknowledged" | "resolved"}}`` (plus ``"resolution"``, which PagerDuty adds to the resolve log
  entry), answered ``200 {"incident": {...}}``.
* Add note: ``POST /incidents/{id}/notes`` with ``{"note": {"content": ...}}``, answered ``200 {"note": {...}}``.
* On-calls: ``GET /oncalls`` (classic ``limit``/``offset``/``more`` pagination), read with the client's
  ``iter_all``.

Writes carry ``From: <email of a PagerDuty user>`` -- the clicking user's email, else ``PAGERDUTY_FROM_EMAIL``
(the library's ``default_from``); with neither, nothing is sent.  Authentication is
``Authorization: Token token=<token>``.

The library is synchronous, so every call runs in :func:`asyncio.to_thread` and the event loop stays free.  Left to
itself it retries 429 forever, sleeping 3 s, 6 s, 12 s… without reading ``Retry-After``; here it makes exactly one HTTP
request per call (a 429 stops it in :meth:`_RestClient.postprocess`, network errors are not retried inside it:
``max_network_attempts = 0``) and this module retries: 429 and 5xx, and failures to connect, at most
``max_attempts`` requests in all, waiting what ``Retry-After`` (or PagerDuty's ``ratelimit-reset``) says but
never more than ``max_wait`` (5 s) per wait.  A timeout or a connection lost after the request went out is not
retried for writes: PagerDuty may have acted, and a second resolve would only answer "Incident Already Resolved".
Such an error says so (``PagerDutyError.may_have_applied``), and :meth:`PagerDutyClient.incident` (``GET
/incidents/{id}``) and :meth:`PagerDutyClient.notes` read back what PagerDuty actually has.

Events API v2 (:func:`send_event`) goes through the bot's shared ``httpx.AsyncClient`` rather than the library's
``EventsApiV2Client``: that client only accepts ``https://`` base URLs, is synchronous, and returns the
``dedup_key`` alone, dropping ``status`` and ``message``.

Errors are :class:`PagerDutyError` in PagerDuty's own words (``error.message`` and ``error.errors``), prefixed by
the status; timeouts and connection failures in plain words.  Neither the API token nor a routing key ever appears
in a message or a ``repr``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import httpx2
import pagerduty

from integrations.transport_errors import connection_cause, delay_seconds

__all__ = [
    "DEFAULT_EVENTS_URL",
    "MAX_WAIT",
    "NO_FROM_MESSAGE",
    "PagerDutyClient",
    "PagerDutyError",
    "pagerduty_words",
    "retry_delay",
    "send_event",
]

log = logging.getLogger(__name__)

DEFAULT_EVENTS_URL = "https://events.pagerduty.com"
MAX_WAIT = 5.0
NO_FROM_MESSAGE = "no From email: set PAGERDUTY_FROM_EMAIL or give the Slack user an email"

_FIRST_BACKOFF = 0.5
_MAX_BODY_IN_MESSAGE = 200
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9]+$")
_EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
_SEVERITIES = ("critical", "error", "warning", "info")

T = TypeVar("T")


class PagerDutyError(Exception):
    """PagerDuty refused or failed.

    ``str()`` is PagerDuty's own words prefixed by the status -- ``"PagerDuty answered 400: Invalid Input Provided
    (Incident Already Resolved)"`` -- or, for timeouts and connection errors, plain words.  ``status`` is the HTTP
    status (``None`` when there was no answer), ``attempts`` how many requests were made, ``retry_after`` the wait
    PagerDuty asked for on a 429/5xx, if any.  Never the token.

    ``may_have_applied`` is true when a write went out and no answer came back (a read timeout, a connection lost
    after sending): PagerDuty may have acted, or may still act, so the caller must not report a failure -- it
    reads the incident back instead (:meth:`PagerDutyClient.incident`).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        attempts: int = 0,
        retry_after: float | None = None,
        may_have_applied: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.retry_after = retry_after
        self.may_have_applied = may_have_applied


# ------------------------------------------------------------------------------------------------ helpers


def _seconds(value: float) -> str:
    return f"{value:g}"


def _asked_wait(headers: Mapping[str, str]) -> float | None:
    """What PagerDuty asked for: ``Retry-After``, else ``ratelimit-reset`` (what its REST API sends on a 429)."""
    asked = delay_seconds(headers.get("retry-after"))
    if asked is None:
        asked = delay_seconds(headers.get("ratelimit-reset"))
    return asked


def retry_delay(headers: Mapping[str, str], attempt: int, max_wait: float = MAX_WAIT) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): what the answer asked for, else
    0.5 s doubling per attempt; never more than ``max_wait``."""
    asked = _asked_wait(headers)
    wait = asked if asked is not None else _FIRST_BACKOFF * 2 ** (attempt - 1)
    return max(0.0, min(wait, max_wait))


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def pagerduty_words(response: Any) -> str:
    """What PagerDuty said: REST ``{"error": {"message", "errors": [...]}}`` or Events API ``{"status", "message",
    "errors"}`` as ``"message (error; error)"``; else the start of the body; else the reason phrase."""
    text: str = response.text or ""
    try:
        document = response.json() if text.strip() else None
    except ValueError:
        document = None
    message: Any = None
    errors: Any = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict):
            message, errors = error.get("message"), error.get("errors")
        elif isinstance(error, str):
            message = error
        else:
            message, errors = document.get("message"), document.get("errors")
    if isinstance(message, str) and message.strip():
        words = message.strip()
        details = (
            [e.strip() for e in errors if isinstance(e, str) and e.strip()]
            if isinstance(errors, list)
            else []
        )
        return f"{words} ({'; '.join(details)})" if details else words
    flat = " ".join(text.split())
    if flat:
        return flat[:_MAX_BODY_IN_MESSAGE]
    return response.reason_phrase or _reason(response.status_code)


def _connection_cause(exc: BaseException, host: str | None) -> str:
    """The shared transport wording; the ``pagerduty`` package speaks httpx2, not httpx."""
    return connection_cause(
        exc,
        host,
        extra_protocol_errors=(httpx2.RemoteProtocolError,),
        fallback=lambda e: type(e.__cause__ or e).__name__,
    )


def _check_base_url(base_url: str) -> str:
    """``https://``, or ``http://`` to a loopback address (the recording server, the console); else ValueError.

    The library itself refuses anything but https; the token must not cross a network in the clear.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return base_url.rstrip("/")
    if parts.scheme == "http" and host:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return base_url.rstrip("/")
    raise ValueError(
        "the PagerDuty API URL must be https:// (http:// only for a loopback address such as a recording server)"
    )


def _iso(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


# ------------------------------------------------------------------------------------------- REST client


class _RateLimited(Exception):
    """Raised from :meth:`_RestClient.postprocess` to stop the library's unbounded 429 loop."""

    def __init__(self, response: httpx2.Response) -> None:
        super().__init__("429")
        self.response = response


class _RestClient(pagerduty.RestApiV2Client):
    """``pagerduty.RestApiV2Client``, one HTTP request per call.

    * ``ApiClient.request`` loops on 429 without limit and sleeps in between; ``postprocess`` runs after every
      response, so raising there hands the 429 to :class:`PagerDutyClient`, which bounds and spaces the retries.
    * Its ``url`` setter refuses anything but ``https://``; :func:`_check_base_url` has already vetted the URL
      (https, or http to loopback for the recording server), so this setter takes it as is.
    """

    @property
    def url(self) -> str:
        return str(self._url)

    @url.setter
    def url(self, new_base_url: str) -> None:
        self._url = new_base_url

    def postprocess(self, response: httpx2.Response, suffix: str | None = None) -> None:
        super().postprocess(response, suffix)
        if response.status_code == 429:
            raise _RateLimited(response)


class PagerDutyClient:
    """Incident actions and on-calls through the REST API v2, off the event loop, with bounded retries.

    ``token`` is a REST API token (``PAGERDUTY_API_TOKEN``); ``base_url`` is ``PAGERDUTY_API_URL``
    (``https://api.pagerduty.com``, or the recording server); ``default_from`` is ``PAGERDUTY_FROM_EMAIL``, the
    ``From`` for users whose email is unknown.  ``timeout`` bounds each HTTP request (connect, send, each read);
    ``max_attempts`` bounds the requests per call, retries included; ``max_wait`` caps each wait between them.
    """

    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        default_from: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        max_wait: float = MAX_WAIT,
    ) -> None:
        if not token:
            raise ValueError("a PagerDuty API token is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if timeout <= 0 or max_wait < 0:
            raise ValueError("timeout must be > 0 and max_wait >= 0")
        self.base_url = _check_base_url(base_url)
        self.default_from = default_from or None
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._token = token
        self._host = urlsplit(self.base_url).hostname
        client = _RestClient(token, default_from=self.default_from, base_url=self.base_url)
        client.timeout = timeout  # type: ignore[assignment]  # the library annotates it from TIMEOUT = 60
        client.max_network_attempts = 0  # one try per library call; this class decides about retrying
        # Belt and braces should postprocess ever stop seeing 429s: at most 2 requests per library call.
        client.retry = {429: 1}
        client.max_http_attempts = 0
        client.sleep_timer = 0.5
        self._client = client

    def __repr__(self) -> str:  # never the token
        return f"PagerDutyClient(base_url={self.base_url!r}, default_from={self.default_from!r})"

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> PagerDutyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------------------- actions

    async def acknowledge(self, incident_id: str, *, from_email: str | None) -> dict[str, Any]:
        """``PUT /incidents/{id}`` status ``acknowledged``; returns PagerDuty's incident object."""
        body = {"incident": {"type": "incident_reference", "status": "acknowledged"}}
        return await self._update(incident_id, body, from_email)

    async def resolve(
        self, incident_id: str, *, from_email: str | None, resolution: str | None = None
    ) -> dict[str, Any]:
        """``PUT /incidents/{id}`` status ``resolved`` (with ``resolution``, PagerDuty's resolution note)."""
        incident: dict[str, Any] = {"type": "incident_reference", "status": "resolved"}
        if resolution:
            incident["resolution"] = resolution
        return await self._update(incident_id, {"incident": incident}, from_email)

    async def add_note(self, incident_id: str, *, from_email: str | None, content: str) -> dict[str, Any]:
        """``POST /incidents/{id}/notes``; returns PagerDuty's note object."""
        if not content or not content.strip():
            raise PagerDutyError("a note needs some text")
        path = f"/incidents/{self._incident_path(incident_id)}/notes"
        headers = self._from_header(from_email)
        client = self._client

        def call() -> Any:
            return client.rpost(path, json={"note": {"content": content}}, headers=headers)

        note = await self._call(f"POST {path}", call, idempotent=False)
        return self._expect_dict(note, "note")

    async def incident(self, incident_id: str) -> dict[str, Any]:
        """``GET /incidents/{id}``: the incident as PagerDuty has it now (``status`` included).

        What the bot reads back after a write that got no answer, to tell the user what actually happened.
        """
        path = f"/incidents/{self._incident_path(incident_id)}"
        client = self._client

        def call() -> Any:
            return client.rget(path)

        return self._expect_dict(await self._call(f"GET {path}", call, idempotent=True), "incident")

    async def notes(self, incident_id: str) -> list[dict[str, Any]]:
        """``GET /incidents/{id}/notes``: the incident's notes, oldest first (PagerDuty's order)."""
        path = f"/incidents/{self._incident_path(incident_id)}/notes"
        client = self._client

        def call() -> Any:
            return client.rget(path)

        notes = await self._call(f"GET {path}", call, idempotent=True)
        if not isinstance(notes, list):
            raise PagerDutyError("PagerDuty answered without the notes")
        return [note for note in notes if isinstance(note, dict)]

    async def oncalls(
        self,
        *,
        schedule_ids: Sequence[str] = (),
        escalation_policy_ids: Sequence[str] = (),
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /oncalls``, every page (the library's ``iter_all``).  A retried page restarts the listing."""
        params: dict[str, Any] = {}
        if schedule_ids:
            params["schedule_ids[]"] = list(schedule_ids)
        if escalation_policy_ids:
            params["escalation_policy_ids[]"] = list(escalation_policy_ids)
        if since is not None:
            params["since"] = _iso(since)
        if until is not None:
            params["until"] = _iso(until)
        client = self._client

        def call() -> list[dict[str, Any]]:
            return list(client.iter_all("/oncalls", params=params))

        # Not guarded as a whole: a listing is several requests, each bounded by the library's HTTP timeouts.
        return await self._call("GET /oncalls", call, idempotent=True, guarded=False)

    async def user_email(self, user_id: str) -> str | None:
        """``GET /users/{id}``: the user's email. Webhooks carry user references without emails, and the SLA
        nudge needs one to find the assignee in Slack (``users.lookupByEmail``)."""
        if not isinstance(user_id, str) or not _INCIDENT_ID.match(user_id):
            raise PagerDutyError(f"not a PagerDuty user ID: {user_id!r}")
        client = self._client
        path = f"/users/{user_id}"

        def call() -> Any:
            return client.rget(path)

        user = await self._call(f"GET {path}", call, idempotent=True)
        email = user.get("email") if isinstance(user, dict) else None
        return str(email) if email else None

    # ----------------------------------------------------------------------------------------- internals

    def _incident_path(self, incident_id: str) -> str:
        if not isinstance(incident_id, str) or not _INCIDENT_ID.match(incident_id):
            raise PagerDutyError(f"not a PagerDuty incident ID: {incident_id!r}")
        return incident_id

    def _from_header(self, from_email: str | None) -> dict[str, str]:
        email = (from_email or "").strip() or self.default_from
        if not email:
            raise PagerDutyError(NO_FROM_MESSAGE)
        return {"From": email}

    async def _update(self, incident_id: str, body: dict[str, Any], from_email: str | None) -> dict[str, Any]:
        path = f"/incidents/{self._incident_path(incident_id)}"
        headers = self._from_header(from_email)
        client = self._client

        def call() -> Any:
            return client.rput(path, json=body, headers=headers)

        incident = await self._call(f"PUT {path}", call, idempotent=False)
        return self._expect_dict(incident, "incident")

    @staticmethod
    def _expect_dict(value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise PagerDutyError(f"PagerDuty answered without the {what}")
        return value

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    async def _call(
        self,
        endpoint: str,
        fn: Callable[[], T],
        *,
        idempotent: bool,
        guarded: bool = True,
    ) -> T:
        """Run one library call per attempt in a worker thread; retry 429/5xx/connect failures, bounded.

        A single request's connect, send and each read are bounded by ``timeout`` inside the thread; ``guarded``
        adds a bound on the whole request (for a server that trickles bytes), which frees the caller, not the
        thread -- that one ends at its next read timeout.
        """
        guard = self.timeout * 3 + 1.0
        attempt = 0
        while True:
            attempt += 1
            try:
                if not guarded:
                    return await asyncio.to_thread(fn)
                return await asyncio.wait_for(asyncio.to_thread(fn), guard)
            except TimeoutError:
                raise PagerDutyError(
                    f"PagerDuty did not answer within {_seconds(guard)} s",
                    attempts=attempt,
                    may_have_applied=not idempotent,
                ) from None
            except _RateLimited as exc:
                response: httpx2.Response = exc.response
            except pagerduty.HttpError as exc:
                if exc.response is None:
                    raise PagerDutyError(self._scrub(str(exc)), attempts=attempt) from None
                response = exc.response
            except pagerduty.Error as exc:
                retry, error = self._network_error(exc, attempt, idempotent)
                if retry:
                    wait = retry_delay({}, attempt, self.max_wait)
                    log.warning(
                        "%s: %s; retrying in %g s (attempt %d of %d)",
                        endpoint,
                        error,
                        wait,
                        attempt + 1,
                        self.max_attempts,
                    )
                    await asyncio.sleep(wait)
                    continue
                raise error from None
            except pagerduty.UrlError as exc:
                raise PagerDutyError(self._scrub(f"bad PagerDuty URL: {exc}"), attempts=attempt) from None

            status = response.status_code
            if 200 <= status < 300:
                # The library raised on a successful status: the body was not what the endpoint promises.
                raise PagerDutyError(
                    f"PagerDuty answered {status} with an unexpected body", status=status, attempts=attempt
                )
            asked = _asked_wait(response.headers)
            if (status == 429 or status >= 500) and attempt < self.max_attempts:
                wait = retry_delay(response.headers, attempt, self.max_wait)
                log.warning(
                    "%s: PagerDuty answered %d; retrying in %g s (attempt %d of %d)",
                    endpoint,
                    status,
                    wait,
                    attempt + 1,
                    self.max_attempts,
                )
                await asyncio.sleep(wait)
                continue
            words = pagerduty_words(response)
            suffix = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
            raise PagerDutyError(
                self._scrub(f"PagerDuty answered {status}: {words}{suffix}"),
                status=status,
                attempts=attempt,
                retry_after=asked if status == 429 or status >= 500 else None,
            )

    def _network_error(
        self, exc: pagerduty.Error, attempt: int, idempotent: bool
    ) -> tuple[bool, PagerDutyError]:
        """(retry?, the error to raise otherwise) for a request that got no HTTP answer."""
        cause = exc.__cause__
        more = attempt < self.max_attempts
        if isinstance(cause, httpx2.ConnectTimeout):
            return more, PagerDutyError(
                f"could not reach PagerDuty (no connection within {_seconds(self.timeout)} s)",
                attempts=attempt,
            )
        if isinstance(cause, httpx2.PoolTimeout):  # never sent
            return more, PagerDutyError(
                f"could not reach PagerDuty (no connection free within {_seconds(self.timeout)} s)",
                attempts=attempt,
            )
        if isinstance(cause, httpx2.TimeoutException):
            # Sent (or being sent) and no answer: PagerDuty may have applied it, or may still.
            error = PagerDutyError(
                f"PagerDuty did not answer within {_seconds(self.timeout)} s",
                attempts=attempt,
                may_have_applied=not idempotent,
            )
            return more and idempotent, error
        if isinstance(cause, httpx2.UnsupportedProtocol | httpx2.LocalProtocolError):
            return False, PagerDutyError("the PagerDuty API URL is invalid", attempts=attempt)
        words = self._scrub(_connection_cause(exc, self._host))
        suffix = f" after {attempt} attempts" if attempt > 1 else ""
        if isinstance(cause, httpx2.ConnectError):
            return more, PagerDutyError(f"could not reach PagerDuty ({words}){suffix}", attempts=attempt)
        # The connection broke after the request went out: for a write, PagerDuty may have acted.
        error = PagerDutyError(
            f"could not reach PagerDuty ({words}){suffix}", attempts=attempt, may_have_applied=not idempotent
        )
        return more and idempotent, error


# ---------------------------------------------------------------------------------------------- Events API


async def send_event(
    http: httpx.AsyncClient,
    events_url: str,
    *,
    routing_key: str,
    action: str,
    dedup_key: str | None = None,
    summary: str = "",
    source: str = "mira-bot",
    severity: str = "info",
    custom_details: dict[str, Any] | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 -- enforced with asyncio.timeout around each request
    max_attempts: int = 3,
    max_wait: float = MAX_WAIT,
) -> dict[str, Any]:
    """``POST {events_url}/v2/enqueue`` (Events API v2); returns ``{"status", "message", "dedup_key"}``.

    ``trigger`` needs a ``summary`` (``dedup_key`` optional: PagerDuty makes one up and returns it);
    ``acknowledge`` and ``resolve`` need the ``dedup_key``.  429, 5xx and failures to connect are retried (as
    PagerDuty's Events API docs ask), at most ``max_attempts`` requests, waits capped at ``max_wait``.
    The routing key is a secret: it never appears in an error.
    """
    if action not in _EVENT_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(_EVENT_ACTIONS)}")
    if severity not in _SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(_SEVERITIES)}")
    if not routing_key:
        raise ValueError("a routing key is required")
    if action != "trigger" and not dedup_key:
        raise ValueError(f"{action} needs the dedup_key of the alert")
    if action == "trigger" and not summary.strip():
        raise ValueError("a trigger needs a summary")
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")

    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action}
    if dedup_key:
        event["dedup_key"] = dedup_key
    if action == "trigger":
        payload: dict[str, Any] = {"summary": summary, "source": source, "severity": severity}
        if custom_details:
            payload["custom_details"] = custom_details
        event["payload"] = payload
    url = events_url.rstrip("/") + "/v2/enqueue"
    try:
        host = httpx.URL(url).host or None
    except Exception:
        host = None

    def scrub(text: str) -> str:
        return text.replace(routing_key, "***")

    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(timeout):
                response = await http.post(url, json=event, timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if attempt < max_attempts:
                await asyncio.sleep(retry_delay({}, attempt, max_wait))
                continue
            suffix = f" after {attempt} attempts" if attempt > 1 else ""
            raise PagerDutyError(
                scrub(f"could not reach PagerDuty ({_connection_cause(exc, host)}){suffix}"), attempts=attempt
            ) from None
        except (TimeoutError, httpx.TimeoutException):
            raise PagerDutyError(
                f"PagerDuty did not answer within {_seconds(timeout)} s", attempts=attempt
            ) from None
        except httpx.InvalidURL:
            raise PagerDutyError("the PagerDuty Events API URL is invalid", attempts=attempt) from None
        except httpx.TransportError as exc:
            raise PagerDutyError(
                scrub(f"could not reach PagerDuty ({_connection_cause(exc, host)})"), attempts=attempt
            ) from None

        status = response.status_code
        if 200 <= status < 300:
            try:
                document = response.json()
            except ValueError:
                document = None
            if not isinstance(document, dict):
                raise PagerDutyError(
                    f"PagerDuty answered {status} with something other than an event result",
                    status=status,
                    attempts=attempt,
                )
            return {
                "status": document.get("status"),
                "message": document.get("message"),
                "dedup_key": document.get("dedup_key", dedup_key),
            }
        if (status == 429 or status >= 500) and attempt < max_attempts:
            await asyncio.sleep(retry_delay(response.headers, attempt, max_wait))
            continue
        suffix = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
        raise PagerDutyError(
            scrub(f"PagerDuty answered {status}: {pagerduty_words(response)}{suffix}"),
            status=status,
            attempts=attempt,
            retry_after=_asked_wait(response.headers) if status == 429 or status >= 500 else None,
        )
