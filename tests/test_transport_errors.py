"""The shared reading of transport failures (integrations.transport_errors)."""

from __future__ import annotations

import errno
import socket
import ssl

import httpx
import httpx2

from integrations.transport_errors import connection_cause, walk


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


def test_walk_reaches_causes_contexts_and_group_members_once() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    group = ExceptionGroup("attempts", [refused])
    outer = _chained(httpx.ConnectError("All connection attempts failed"), group)
    outer.__context__ = outer  # a cycle must not loop forever
    assert list(walk(outer)) == [outer, group, refused]


def test_connection_cause_words() -> None:
    wrap = httpx.ConnectError("All connection attempts failed")
    dns = _chained(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known"))
    assert connection_cause(dns, "db.example") == "DNS lookup failed for db.example"
    assert connection_cause(dns, None) == "DNS lookup failed"
    refused = ExceptionGroup("g", [OSError(errno.ECONNREFUSED, "Connection refused")])
    assert connection_cause(_chained(wrap, refused), "h") == "connection refused"
    assert connection_cause(_chained(httpx.ConnectError("x"), ssl.SSLError()), "h") == "TLS error"
    reset = _chained(httpx.ReadError("x"), ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
    assert connection_cause(reset, "h") == "connection reset by peer"
    assert (
        connection_cause(httpx.RemoteProtocolError("gone"), "h")
        == "the connection was closed without an answer"
    )


def test_extra_protocol_errors_and_fallback() -> None:
    closed = httpx2.RemoteProtocolError("gone")
    assert connection_cause(closed, "h") == "gone"
    assert (
        connection_cause(closed, "h", extra_protocol_errors=(httpx2.RemoteProtocolError,))
        == "the connection was closed without an answer"
    )
    assert connection_cause(httpx.ReadError("  \n"), "h") == "ReadError"
    assert connection_cause(httpx.ReadError("x"), "h", fallback=lambda e: "custom") == "custom"
