"""The official ``pagerduty`` client, configured once for the bot: retries, timeouts, the URL rule, and its errors.

Both PagerDuty APIs go through this package's clients (:class:`pagerduty.RestApiV2Client`,
:class:`pagerduty.EventsApiV2Client`), so there is one HTTP stack for PagerDuty (the library's httpx2) and
one retry policy, set through the library's documented attributes rather than by overriding its methods:

* ``retry`` -- 429 and every 5xx are retried by the library's own loop, ``max_attempts - 1`` times at most; with
  ``max_http_attempts`` bounding all statuses together (the library checks that total *before* counting the
  attempt, hence ``max_attempts - 2``), a call makes at most ``max_attempts`` requests that got an answer.
  Left alone the library retries 429 forever.
* ``sleep_timer`` / ``sleep_timer_base`` -- the library's backoff between those retries: 0.5 s doubling (or
  ``max_wait`` doubling, when that is smaller). The library does not read ``Retry-After``; PagerDuty's answer
  still reports it as :attr:`PagerDutyError.retry_after`.
* ``max_network_attempts = 0`` -- the library never resends a request that got no answer, because it cannot tell
  a refused connection (nothing sent) from a lost answer (PagerDuty may have acted: a second resolve would only
  answer "Incident Already Resolved"). :func:`call_pagerduty` retries what is safe: failures to connect always,
  timeouts and lost connections only for reads.
* ``timeout`` -- each HTTP request's connect, send and each read.

The library's errors are public types: :class:`pagerduty.HttpError` carries PagerDuty's ``response`` (read in
PagerDuty's words by :func:`pagerduty_words`, never the library's message, which quotes the token's last four
characters), :class:`pagerduty.Error` without a response is a request that got none, its ``__cause__`` the
httpx2 exception that says whether it was a connect failure or a timeout (hence the one httpx2 import).

One deviation, :class:`_VettedUrl`: the library's ``url`` setter takes only ``https://``; ours also takes
``http://`` to a loopback address (the recording PagerDuty server, the console), where no token crosses a network.

The library is synchronous, so every call runs in :func:`asyncio.to_thread` and the event loop stays free.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx2
import pagerduty

from integrations.pagerduty.errors import (
    _FIRST_BACKOFF,
    PagerDutyError,
    _asked_wait,
    _connection_cause,
    _seconds,
    pagerduty_words,
    retry_delay,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What PagerDuty asks clients to retry (its REST and Events API docs): rate limits and server errors.
RETRIED_STATUSES = (429, *range(500, 600))

_answers = threading.local()  # answers received by the library call running in this worker thread


def check_base_url(base_url: str) -> str:
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


class _VettedUrl:
    """The library's public ``url`` property, widened from https-only to :func:`check_base_url`'s rule."""

    _vetted_url: str = ""

    @property
    def url(self) -> str:
        return self._vetted_url

    @url.setter
    def url(self, new_base_url: str) -> None:
        self._vetted_url = check_base_url(new_base_url)


class RestClient(_VettedUrl, pagerduty.RestApiV2Client):
    """:class:`pagerduty.RestApiV2Client` with the loopback URL rule."""


class EventsClient(_VettedUrl, pagerduty.EventsApiV2Client):
    """:class:`pagerduty.EventsApiV2Client` with the loopback URL rule."""


def _count_answer(response: Any) -> None:
    _answers.count = getattr(_answers, "count", 0) + 1


#: httpx2's response hook, passed to the library's constructor (it hands ``**kw`` to ``httpx2.Client``): counts
#: the answers of one library call, retries included, for "gave up after N attempts".
EVENT_HOOKS: dict[str, list[Callable[[Any], None]]] = {"response": [_count_answer]}


def configure(client: pagerduty.ApiClient, *, timeout: float, max_attempts: int, max_wait: float) -> None:
    """Set the library's documented retry and timeout attributes (see the module docstring)."""
    retries = max_attempts - 1
    client.timeout = timeout  # type: ignore[assignment]  # the library annotates it from TIMEOUT = 60
    client.retry = {status: max(retries, 1) for status in RETRIED_STATUSES}
    client.max_http_attempts = retries - 1
    client.max_network_attempts = 0
    client.sleep_timer = min(_FIRST_BACKOFF, max_wait) / client.sleep_timer_base


@dataclass
class _Outcome(Generic[T]):
    value: T | None = None
    error: pagerduty.Error | pagerduty.UrlError | None = None
    answers: int = 0


def _counted(fn: Callable[[], T]) -> _Outcome[T]:
    """Run one library call in this worker thread, counting the answers it received."""
    _answers.count = 0
    try:
        return _Outcome(value=fn(), answers=_answers.count)
    except (pagerduty.Error, pagerduty.UrlError) as exc:
        return _Outcome(error=exc, answers=_answers.count)


async def call_pagerduty(
    endpoint: str,
    fn: Callable[[], T],
    *,
    timeout: float,  # noqa: ASYNC109 -- the library's per-request timeout, for the messages and the guard
    max_attempts: int,
    max_wait: float,
    idempotent: bool,
    scrub: Callable[[str], str],
    host: str | None,
    guarded: bool = True,
) -> T:
    """Run a library call off the event loop; PagerDuty's refusals and failures as :class:`PagerDutyError`.

    The library retries 429/5xx itself (:func:`configure`); here a request that got no answer is retried when
    that is safe, at most ``max_attempts`` requests counted. A single request's connect, send and each read are
    bounded by ``timeout`` inside the thread; ``guarded`` adds a bound on the whole call (for a server that
    trickles bytes), which frees the caller, not the thread -- that one ends at its next read timeout.
    """
    guard = timeout * 3 + 1.0
    attempts = 0
    while True:
        try:
            if guarded:
                outcome = await asyncio.wait_for(asyncio.to_thread(_counted, fn), guard)
            else:
                outcome = await asyncio.to_thread(_counted, fn)
        except TimeoutError:
            raise PagerDutyError(
                f"PagerDuty did not answer within {_seconds(guard)} s",
                attempts=attempts + 1,
                may_have_applied=not idempotent,
            ) from None
        attempts += outcome.answers
        error = outcome.error
        if error is None:
            return outcome.value  # type: ignore[return-value]  # None only when the library returned None
        if isinstance(error, pagerduty.UrlError):
            raise PagerDutyError(scrub(f"bad PagerDuty URL: {error}"), attempts=max(attempts, 1)) from None
        response = error.response
        if response is None:  # no answer: the cause says why
            attempts += 1
            retry, failure = _network_error(error, attempts, idempotent, timeout, max_attempts, scrub, host)
            if retry:
                wait = retry_delay({}, attempts, max_wait)
                log.warning(
                    "%s: %s; retrying in %g s (attempt %d of %d)",
                    endpoint,
                    failure,
                    wait,
                    attempts + 1,
                    max_attempts,
                )
                await asyncio.sleep(wait)
                continue
            raise failure from None
        status = response.status_code
        attempts = max(attempts, 1)
        if 200 <= status < 300:
            # The library raised on a successful status: the body was not what the endpoint promises.
            raise PagerDutyError(
                f"PagerDuty answered {status} with an unexpected body", status=status, attempts=attempts
            )
        retried = status == 429 or status >= 500
        suffix = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
        raise PagerDutyError(
            scrub(f"PagerDuty answered {status}: {pagerduty_words(response)}{suffix}"),
            status=status,
            attempts=attempts,
            retry_after=_asked_wait(response.headers) if retried else None,
        )


def _network_error(
    exc: pagerduty.Error,
    attempt: int,
    idempotent: bool,
    timeout: float,
    max_attempts: int,
    scrub: Callable[[str], str],
    host: str | None,
) -> tuple[bool, PagerDutyError]:
    """(retry?, the error to raise otherwise) for a request that got no HTTP answer."""
    cause = exc.__cause__
    more = attempt < max_attempts
    if isinstance(cause, httpx2.ConnectTimeout):
        return more, PagerDutyError(
            f"could not reach PagerDuty (no connection within {_seconds(timeout)} s)",
            attempts=attempt,
        )
    if isinstance(cause, httpx2.PoolTimeout):  # never sent
        return more, PagerDutyError(
            f"could not reach PagerDuty (no connection free within {_seconds(timeout)} s)",
            attempts=attempt,
        )
    if isinstance(cause, httpx2.TimeoutException):
        # Sent (or being sent) and no answer: PagerDuty may have applied it, or may still.
        error = PagerDutyError(
            f"PagerDuty did not answer within {_seconds(timeout)} s",
            attempts=attempt,
            may_have_applied=not idempotent,
        )
        return more and idempotent, error
    if isinstance(cause, httpx2.UnsupportedProtocol | httpx2.LocalProtocolError):
        return False, PagerDutyError("the PagerDuty API URL is invalid", attempts=attempt)
    words = scrub(_connection_cause(exc, host))
    suffix = f" after {attempt} attempts" if attempt > 1 else ""
    if isinstance(cause, httpx2.ConnectError):
        return more, PagerDutyError(f"could not reach PagerDuty ({words}){suffix}", attempts=attempt)
    # The connection broke after the request went out: for a write, PagerDuty may have acted.
    error = PagerDutyError(
        f"could not reach PagerDuty ({words}){suffix}", attempts=attempt, may_have_applied=not idempotent
    )
    return more and idempotent, error
