"""Credential-free, one-line causes for the PostgreSQL errors our thin clients show to a person.

Why one module: psycopg's and the server's messages are not under our control.  libpq may echo the
conninfo it was given, a server may quote the login, and the text we want ("connection refused") is buried
after ``connection to server at "…", port 5432 failed: FATAL:``.  So every client that puts a Postgres error
in front of a user -- the ``/health`` probe (:mod:`integrations.probes`), the flag table
(:mod:`integrations.flag_table`) and the ``/latency`` queries (:mod:`integrations.metrics_db`) -- goes
through the same functions here: one scrubber, one way of reading a DSN's password and host, one phrasing
of the common causes.  A fix to any of them then reaches every message at once.

* :func:`dsn_password` / :func:`dsn_host` read a libpq key/value conninfo or a ``postgresql://`` URL and
  never raise (a malformed DSN just gives ``None``); :func:`url_password` does the URL half alone, for
  non-Postgres URLs (HTTP, Redis).
* :func:`scrub_credentials` blanks ``scheme://user:***@``, ``password=***`` and, when known, the password
  itself wherever it appears.
* :func:`postgres_error_detail` turns a :class:`psycopg.Error` into a short phrase such as
  ``"connection refused"``, ``"timed out after 2.0 s"`` or ``'database "x" does not exist'``.  It does not
  scrub: callers scrub the final message with the password they know.
"""

from __future__ import annotations

import re
from contextlib import suppress
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

__all__ = [
    "dsn_host",
    "dsn_password",
    "first_line",
    "postgres_error_detail",
    "scrub_credentials",
    "timed_out",
    "url_password",
]

#: Longest detail a client shows: details end up in a one-line Slack message.
MAX_DETAIL = 160

# "scheme://user:password@" -> "scheme://user:***@", for anything a driver might echo back.
_URL_USERINFO_RE = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]*@")
# libpq key/value conninfo: password=secret or password='se cret'
_KV_PASSWORD_RE = re.compile(r"(?P<prefix>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# libpq's 'connection to server at "h" (1.2.3.4), port 5432 failed: ' (TCP) or 'connection to server on socket
# "/run/postgresql/.s.PGSQL.5432" failed: ' (a Unix socket, as the embedded server uses) before the actual cause.
_PG_ATTEMPT_PREFIX_RE = re.compile(r'^.*?(?:\bport \d+|\bon socket "[^"]*") failed:\s*', re.IGNORECASE)
_PG_SEVERITY_RE = re.compile(r"^(?:FATAL|ERROR|PANIC):\s*")


def first_line(text: str, limit: int = MAX_DETAIL) -> str:
    """First non-empty line of ``text``, stripped and cut to ``limit`` characters (ending in "…" if cut)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def timed_out(timeout: float | None) -> str:
    """``"timed out after 2.0 s"``, or just ``"timed out"`` when the caller states its budget elsewhere."""
    return "timed out" if timeout is None else f"timed out after {timeout:.1f} s"


def url_password(url: str) -> str | None:
    """The (percent-decoded) password in ``scheme://user:password@host/…``, if any; never raises."""
    with suppress(ValueError):
        password = urlsplit(url).password
        if password:
            return unquote(password)
    return None


def dsn_password(dsn: str) -> str | None:
    """The password in a key/value conninfo (``password=…``) or a ``postgresql://`` URL; never raises."""
    with suppress(Exception):
        password = conninfo_to_dict(dsn).get("password")
        if password:
            return str(password)
    return url_password(dsn)


def dsn_host(dsn: str) -> str | None:
    """The ``host`` of a conninfo or URL, for "DNS lookup failed for <host>"; ``None`` if absent or malformed."""
    with suppress(Exception):
        host = conninfo_to_dict(dsn).get("host")
        if host:
            return str(host)
    return None


def scrub_credentials(text: str, secret: str | None) -> str:
    """Remove credentials from ``text``, whatever the driver or server chose to echo.

    Blanks the password of any ``scheme://user:password@`` and any ``password=…`` key/value pair, and every
    occurrence of ``secret`` (the password the caller knows it used) even where neither pattern applies.
    """
    text = _URL_USERINFO_RE.sub(r"\g<prefix>***@", text)
    text = _KV_PASSWORD_RE.sub(r"\g<prefix>***", text)
    if secret:
        text = text.replace(secret, "***")
    return text


def postgres_error_detail(exc: psycopg.Error, *, host: str | None, timeout: float | None) -> str:
    """One-line cause from a psycopg error, without the "connection to server at ..." noise.

    The common connection failures become fixed phrases (``"connection refused"``, ``"authentication
    failed"``, ``"DNS lookup failed for <host>"``, :func:`timed_out` of ``timeout`` -- ``None`` for a bare
    ``"timed out"``); anything else is the message's first line without libpq's attempt prefix and the
    ``FATAL:``/``ERROR:`` severity, e.g. ``'database "x" does not exist'``.  Not scrubbed: pass the result
    (or the message built from it) through :func:`scrub_credentials`.
    """
    text = str(exc)
    lowered = text.lower()
    if "connection refused" in lowered:
        return "connection refused"
    if "timeout expired" in lowered or "timed out" in lowered:
        return timed_out(timeout)
    if "authentication failed" in lowered:
        return "authentication failed"
    if (
        "failed to resolve host" in lowered
        or "could not translate host name" in lowered
        or "name or service not known" in lowered
    ):
        return f"DNS lookup failed for {host}" if host else "DNS lookup failed"
    line = first_line(text, 1000)
    line = line.removeprefix("connection failed: ")
    line = _PG_ATTEMPT_PREFIX_RE.sub("", line)
    line = _PG_SEVERITY_RE.sub("", line).strip()
    return first_line(line) or type(exc).__name__
