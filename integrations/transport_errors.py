"""Reading a transport failure out of an exception chain, for every thin client.

HTTP and database libraries bury the informative OS error several layers deep
(httpx -> httpcore -> anyio -> ``ConnectionRefusedError``), sometimes inside an
``ExceptionGroup`` when several addresses were tried, so the exception a client catches
rarely says what actually went wrong.  And whichever client failed, the on-call engineer
should read the same plain cause ("connection refused", "DNS lookup failed for HOST"),
never a traceback or a wrapper's "All connection attempts failed".  :func:`walk` looks
through the whole chain; :func:`connection_cause` words what it finds, the same way for
every client.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["connection_cause", "first_line_or_name", "walk"]


def walk(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception in its cause/context chain, exception-group members included.

    Each exception is yielded once, so a cyclic chain (``a.__context__ is b`` and
    ``b.__context__ is a``) terminates.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


def first_line_or_name(exc: BaseException) -> str:
    """The first line of ``exc``'s message (at most 100 characters), else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0][:100] if text else type(exc).__name__


def connection_cause(
    exc: BaseException,
    host: str | None,
    *,
    extra_protocol_errors: tuple[type[BaseException], ...] = (),
    fallback: Callable[[BaseException], str] = first_line_or_name,
) -> str:
    """A short, human cause for a transport error: "connection refused", "DNS lookup failed for …".

    ``extra_protocol_errors`` are read like ``httpx.RemoteProtocolError`` (the server closed
    the connection without an answer), for a client built on another HTTP library; the
    caller passes the classes so that this module imports only what every client has.
    ``fallback`` words ``exc`` when nothing in the chain is recognised.
    """
    chain = list(walk(exc))
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
            return f"TLS error: {e.verify_message}"
        if isinstance(e, ssl.SSLError):
            return "TLS error"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return f"DNS lookup failed for {host}" if host else "DNS lookup failed"
    if any(
        isinstance(e, ConnectionRefusedError) or (isinstance(e, OSError) and e.errno == errno.ECONNREFUSED)
        for e in chain
    ):
        return "connection refused"
    protocol_errors: tuple[type[BaseException], ...] = (httpx.RemoteProtocolError, *extra_protocol_errors)
    if any(isinstance(e, protocol_errors) for e in chain):
        return "the connection was closed without an answer"
    # Prefer the innermost OS error (it says what actually happened) over wrapper text.
    os_errors = [e for e in chain if isinstance(e, OSError) and e.strerror]
    if os_errors and os_errors[-1].strerror:
        return os_errors[-1].strerror.lower()
    return fallback(exc)


def delay_seconds(raw: str | None, *, now: datetime | None = None) -> float | None:
    """A delay from a `Retry-After`-style header: delay-seconds or an HTTP date (RFC 9110 §10.2.3); None when
    absent or unreadable. Every client that is told to come back later reads it the same way."""
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds)
