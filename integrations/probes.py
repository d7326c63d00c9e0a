"""Thin health probes over real protocols (HTTP, PostgreSQL, Redis, TCP).

The ``/health`` command runs every service's probes concurrently and renders one line per
probe for an on-call engineer.  This module knows nothing about Slack or the service
catalog: each probe takes plain parameters and returns a :class:`ProbeOutcome`.

Design rules shared by every probe:

* A probe never raises (except for task cancellation, which must propagate so that
  ``/health`` can itself be cancelled).  Every failure becomes ``DOWN`` with a short,
  human ``detail`` -- never a traceback.
* A probe is bounded by ``asyncio.timeout`` around the *whole* operation.  Client
  libraries' own timeouts are per phase (connect, read, ...) so a server that trickles
  bytes or accepts the connection and never answers can otherwise hold a probe far
  longer than the caller asked for; the outer bound is what makes the budget real.
* ``detail`` never contains credentials.  We avoid putting URLs or DSNs in it at all,
  and additionally scrub any password we know about from every detail string, because
  driver error messages are not under our control (the scrubber, and the reading of
  psycopg errors, live in :mod:`integrations.postgres_errors`, shared with the other clients).
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from integrations.postgres_errors import (
    dsn_host,
    dsn_password,
    first_line,
    postgres_error_detail,
    scrub_credentials,
    timed_out,
    url_password,
)
from integrations.probe_bodies import body_summary
from integrations.transport_errors import walk

__all__ = [
    "ProbeOutcome",
    "ProbeStatus",
    "http_probe",
    "postgres_probe",
    "redis_probe",
    "tcp_probe",
]


class ProbeStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class ProbeOutcome:
    """Result of one probe.

    ``latency_ms`` is the wall time of the probe, also when it failed (a refused
    connection is fast, a timeout is roughly the budget -- both are useful to see).
    ``detail`` is short and human, e.g. ``"HTTP 200"`` or ``"connection refused"``.
    ``body`` is, for an HTTP probe that is not ok, the useful part of what the service answered
    (``"status: unhealthy, healthy_targets: 0"``, see ``body_summary``); plain text, not escaped.
    """

    status: ProbeStatus
    latency_ms: float
    detail: str
    body: str = ""


# --------------------------------------------------------------------------- helpers

_MAX_VALUE = 60
_SSL_PREFIX_RE = re.compile(r"^\[[A-Z_]+:\s*[A-Z0-9_]+\]\s*")
_SSL_SUFFIX_RE = re.compile(r"\s*\(_ssl\.c:\d+\)\s*$")


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _is_refused(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return True
    # asyncio reports several failed addresses as a plain OSError("Multiple exceptions: ...").
    text = str(exc)
    return (
        isinstance(exc, OSError)
        and text.startswith("Multiple exceptions:")
        and text.count("[Errno") == text.count(f"[Errno {errno.ECONNREFUSED}]")
    )


def _tls_detail(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"TLS error: certificate verify failed: {exc.verify_message}"
    message = _SSL_SUFFIX_RE.sub("", _SSL_PREFIX_RE.sub("", str(exc)))
    if not message and exc.reason:
        message = str(exc.reason).replace("_", " ").lower()
    return first_line(f"TLS error: {message or type(exc).__name__}", 80)


def _generic_detail(exc: BaseException) -> str:
    message = first_line(exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc), 100)
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _classify(exc: BaseException, *, host: str | None, timeout: float) -> str:
    """Turn any network/driver exception into a short, credential-free phrase."""
    chain = list(walk(exc))
    if any(
        isinstance(e, TimeoutError | httpx.TimeoutException | redis.exceptions.TimeoutError) for e in chain
    ):
        return timed_out(timeout)
    for e in chain:
        if isinstance(e, ssl.SSLError):
            return _tls_detail(e)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return f"DNS lookup failed for {host}" if host else "DNS lookup failed"
    if any(_is_refused(e) for e in chain):
        return "connection refused"
    # Prefer the innermost OS error (it says what actually happened) over wrapper text
    # like httpx's "All connection attempts failed".
    os_errors = [e for e in chain if isinstance(e, OSError) and e.strerror]
    if os_errors:
        return _generic_detail(os_errors[-1])
    return _generic_detail(exc)


async def _close_quietly(closing: Awaitable[Any], limit: float = 1.0) -> None:
    """Best-effort cleanup: a probe's verdict must not depend on a clean close."""
    with suppress(Exception):
        async with asyncio.timeout(limit):
            await closing


def _format_value(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


_MISSING = object()


def _lookup(document: Any, dotted: str) -> Any:
    """Read ``"a.b.c"`` from nested JSON objects; ``_MISSING`` if any step is absent."""
    current = document
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _matches(value: Any, candidates: Sequence[Any]) -> bool:
    # Compare type-strictly so that JSON true does not count as ok_values=(1,) and vice versa.
    return any(type(value) is type(c) and value == c for c in candidates)


def _judge_body(
    response: httpx.Response, json_field: str, ok_values: Sequence[Any], degraded_values: Sequence[Any]
) -> tuple[ProbeStatus, str]:
    try:
        document = response.json()
    except (ValueError, UnicodeDecodeError):
        return ProbeStatus.DOWN, "response was not JSON"
    value = _lookup(document, json_field)
    if value is _MISSING:
        return ProbeStatus.DOWN, f'no "{json_field}" in the response'
    if _matches(value, ok_values):
        shown = value if isinstance(value, str) else _format_value(value)
        return ProbeStatus.OK, f"HTTP {response.status_code}, {json_field} {shown}"
    if _matches(value, degraded_values):
        return ProbeStatus.DEGRADED, f"body said {_format_value(value)}"
    expected = " or ".join(_format_value(v) for v in ok_values) or "nothing"
    return ProbeStatus.DOWN, f"{json_field} was {_format_value(value)}, expected {expected}"


# ---------------------------------------------------------------------------- probes


async def http_probe(
    client: httpx.AsyncClient,
    *,
    url: str,
    method: str = "GET",
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    expect_status: int = 200,
    json_field: str | None = None,
    ok_values: Sequence[Any] = ("ok",),
    degraded_values: Sequence[Any] = ("degraded",),
    timeout: float = 2.0,  # noqa: ASYNC109 -- part of the API; enforced with asyncio.timeout inside
) -> ProbeOutcome:
    """Request ``url`` and judge the status code and, optionally, a JSON field.

    httpx's timeout is per phase (connect / each read), so a server that dribbles the
    body could exceed it many times over; the outer ``asyncio.timeout`` bounds connect +
    request + full body together.  The URL is never echoed in ``detail`` because it may
    carry credentials (``user:pass@`` or a token in the query string).
    """
    secret = url_password(url)
    try:
        host: str | None = httpx.URL(url).host or None
    except Exception:
        host = None
    start = time.perf_counter()
    body = ""
    try:
        async with asyncio.timeout(timeout):
            response = await client.request(
                method,
                url,
                json=json_body,
                headers=dict(headers) if headers else None,
                timeout=timeout,
            )
        if response.status_code != expect_status:
            status, detail = ProbeStatus.DOWN, f"HTTP {response.status_code} (expected {expect_status})"
        elif json_field:
            status, detail = _judge_body(response, json_field, ok_values, degraded_values)
        else:
            status, detail = ProbeStatus.OK, f"HTTP {response.status_code}"
        if status is not ProbeStatus.OK:
            # The judged field is left out when the detail already quotes it (the status code was the expected one).
            quoted = json_field if response.status_code == expect_status else None
            body = body_summary(response, quoted)
    except Exception as exc:
        if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            status, detail = ProbeStatus.DOWN, "invalid URL"
        else:
            status, detail = ProbeStatus.DOWN, _classify(exc, host=host, timeout=timeout)
    return ProbeOutcome(
        status, _elapsed_ms(start), scrub_credentials(detail, secret), scrub_credentials(body, secret)
    )


async def postgres_probe(dsn: str, *, timeout: float = 2.0) -> ProbeOutcome:  # noqa: ASYNC109
    """Connect with psycopg and run ``SELECT 1`` -- the runbook's ``psql -c "SELECT 1"``.

    libpq's ``connect_timeout`` is whole seconds with a floor of 2 s and does not cover
    the query, so the outer ``asyncio.timeout`` is what enforces ``timeout``.  The DSN
    usually embeds a password; it is never put in ``detail`` and is scrubbed from
    server/driver messages just in case.
    """
    secret = dsn_password(dsn)
    host = dsn_host(dsn)
    start = time.perf_counter()
    conn: psycopg.AsyncConnection[Any] | None = None
    latency: float | None = None
    try:
        try:
            async with asyncio.timeout(timeout):
                conn = await psycopg.AsyncConnection.connect(
                    dsn, connect_timeout=max(2, int(timeout + 0.999)), autocommit=True
                )
                cursor = await conn.execute("SELECT 1")
                row = await cursor.fetchone()
        finally:
            latency = _elapsed_ms(start)  # the probe's time, not our cleanup's
            if conn is not None:
                await _close_quietly(conn.close())
        if row is not None and row[0] == 1:
            status, detail = ProbeStatus.OK, "SELECT 1 ok"
        else:
            status, detail = ProbeStatus.DOWN, f"SELECT 1 returned {_format_value(row)}"
    except TimeoutError:
        status, detail = ProbeStatus.DOWN, timed_out(timeout)
    except psycopg.ProgrammingError:
        # Raised for a malformed conninfo; its message may quote the DSN, so say nothing more.
        status, detail = ProbeStatus.DOWN, "invalid DSN"
    except psycopg.Error as exc:
        status, detail = ProbeStatus.DOWN, postgres_error_detail(exc, host=host, timeout=timeout)
    except Exception as exc:
        status, detail = ProbeStatus.DOWN, _classify(exc, host=host, timeout=timeout)
    if latency is None:
        latency = _elapsed_ms(start)
    return ProbeOutcome(status, latency, scrub_credentials(detail, secret))


async def redis_probe(url: str, *, timeout: float = 2.0) -> ProbeOutcome:  # noqa: ASYNC109
    """Connect with redis.asyncio and ``PING``.

    Retries are disabled: a health probe should report what it saw, not retry with
    backoff past its budget.  Redis error messages include ``host:port`` but we map the
    common ones to short phrases anyway.
    """
    secret = url_password(url)
    try:
        host: str | None = urlsplit(url).hostname
    except ValueError:
        host = None
    start = time.perf_counter()
    latency: float | None = None
    try:
        client = aioredis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry_on_error=[],
            retry=Retry(NoBackoff(), 0),
        )
    except Exception:
        return ProbeOutcome(ProbeStatus.DOWN, _elapsed_ms(start), "invalid Redis URL")
    try:
        try:
            async with asyncio.timeout(timeout):
                pong = await client.ping()
        finally:
            latency = _elapsed_ms(start)  # the probe's time, not our cleanup's
            await _close_quietly(client.aclose())
        if pong is True or pong in (b"PONG", "PONG"):
            status, detail = ProbeStatus.OK, "PONG"
        else:
            status, detail = ProbeStatus.DOWN, f"unexpected PING reply {_format_value(pong)}"
    except (redis.exceptions.AuthenticationError, redis.exceptions.AuthenticationWrongNumberOfArgsError):
        status, detail = ProbeStatus.DOWN, "authentication failed"
    except redis.exceptions.ResponseError as exc:
        message = str(exc)
        if message.startswith(("NOAUTH", "WRONGPASS")):
            status, detail = ProbeStatus.DOWN, "authentication failed"
        else:
            status, detail = ProbeStatus.DOWN, first_line(f"Redis error: {message}")
    except Exception as exc:
        status, detail = ProbeStatus.DOWN, _classify(exc, host=host, timeout=timeout)
    if latency is None:
        latency = _elapsed_ms(start)
    return ProbeOutcome(status, latency, scrub_credentials(detail, secret))


async def tcp_probe(host: str, port: int, *, timeout: float = 2.0) -> ProbeOutcome:  # noqa: ASYNC109
    """Open (and immediately close) a TCP connection: "is anything listening there?"

    ``asyncio.open_connection`` has no timeout of its own; a filtered port would hang
    until the OS gives up (minutes), hence the outer ``asyncio.timeout``.
    """
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
        latency = _elapsed_ms(start)
        writer.close()
        await _close_quietly(writer.wait_closed())
        return ProbeOutcome(ProbeStatus.OK, latency, "connected")
    except Exception as exc:
        return ProbeOutcome(ProbeStatus.DOWN, _elapsed_ms(start), _classify(exc, host=host, timeout=timeout))
