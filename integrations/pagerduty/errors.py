"""PagerDuty's refusals and failures in PagerDuty's own words, for the REST client and the Events API alike.

Split from :mod:`integrations.pagerduty.rest` because both PagerDuty APIs answer errors in shapes of their own
(REST ``{"error": {"message", "errors"}}``, Events API ``{"status", "message", "errors"}``) and the on-call should
read either the same way: ``"PagerDuty answered 400: Invalid Input Provided (Incident Already Resolved)"``, or,
when there was no answer, plain words ("could not reach PagerDuty (connection refused)").
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import httpx2

from integrations.transport_errors import connection_cause, delay_seconds

MAX_WAIT = 5.0
NO_FROM_MESSAGE = "no From email: set PAGERDUTY_FROM_EMAIL or give the Slack user an email"

_FIRST_BACKOFF = 0.5
_MAX_BODY_IN_MESSAGE = 200


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
