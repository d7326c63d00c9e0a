"""The shared reading of Postgres DSNs and errors (integrations.postgres_errors); pure functions, no server."""

from __future__ import annotations

import psycopg
import pytest

from integrations.postgres_errors import (
    dsn_host,
    dsn_password,
    first_line,
    postgres_error_detail,
    scrub_credentials,
    timed_out,
    url_password,
)

SECRET = "hunter2-Sup3rS3cret"
ATTEMPT = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '


@pytest.mark.parametrize(
    ("dsn", "password", "host"),
    [
        (f"host=db.internal dbname=app user=u password={SECRET}", SECRET, "db.internal"),
        (f"host=db.internal password='{SECRET}'", SECRET, "db.internal"),
        (f"postgresql://u:{SECRET}@db.internal:5432/app", SECRET, "db.internal"),
        ("postgresql://u:p%40ss@db.internal/app", "p@ss", "db.internal"),
        ("host=db.internal dbname=app", None, "db.internal"),
        ("this is = not a dsn '", None, None),
    ],
)
def test_dsn_password_and_host(dsn: str, password: str | None, host: str | None) -> None:
    assert dsn_password(dsn) == password
    assert dsn_host(dsn) == host


def test_url_password() -> None:
    assert url_password(f"redis://:{SECRET}@cache:6379/0") == SECRET
    assert url_password("https://example.com/health") is None
    assert url_password("http://[bad") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"postgresql://u:{SECRET}@h/db refused", "postgresql://u:***@h/db refused"),
        (f"invalid dsn: host=h password={SECRET} port=1", "invalid dsn: host=h password=*** port=1"),
        ("invalid dsn: PASSWORD = 'se cret' x", "invalid dsn: PASSWORD = *** x"),
        (f"role {SECRET} is odd", "role *** is odd"),
    ],
)
def test_scrub_credentials(text: str, expected: str) -> None:
    assert scrub_credentials(text, SECRET) == expected
    assert SECRET not in scrub_credentials(text, SECRET)


def test_scrub_credentials_without_a_known_secret_still_blanks_the_patterns() -> None:
    assert scrub_credentials("x://u:pw@h password=pw", None) == "x://u:***@h password=***"


def test_first_line_and_timed_out() -> None:
    assert first_line("\n  one  \ntwo") == "one"
    assert first_line("x" * 200) == "x" * 159 + "…"
    assert timed_out(2.0) == "timed out after 2.0 s"
    assert timed_out(None) == "timed out"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (ATTEMPT + "Connection refused\n\tIs the server running on that host?", "connection refused"),
        ("connection failed: timeout expired", "timed out after 0.5 s"),
        (ATTEMPT + 'FATAL:  password authentication failed for user "u"', "authentication failed"),
        (
            'connection failed: failed to resolve host "nohost": Name or service not known',
            "DNS lookup failed for h",
        ),
        (ATTEMPT + 'FATAL:  database "nope" does not exist', 'database "nope" does not exist'),
        (ATTEMPT + "FATAL:  the database system is starting up", "the database system is starting up"),
        (
            'connection failed: connection to server on socket "/tmp/pg/.s.PGSQL.5432" failed: FATAL:  '
            'database "nope" does not exist',
            'database "nope" does not exist',
        ),
        ("", "OperationalError"),
    ],
)
def test_postgres_error_detail(message: str, expected: str) -> None:
    assert postgres_error_detail(psycopg.OperationalError(message), host="h", timeout=0.5) == expected


def test_postgres_error_detail_options() -> None:
    timeout = psycopg.OperationalError("connection failed: timeout expired")
    assert postgres_error_detail(timeout, host=None, timeout=None) == "timed out"
    dns = psycopg.OperationalError('could not translate host name "x" to address')
    assert postgres_error_detail(dns, host=None, timeout=1.0) == "DNS lookup failed"


def test_a_long_attempt_prefix_does_not_cut_the_cause() -> None:
    database = "d" * 63
    message = (
        f'connection failed: connection to server at "{"h" * 70}" (10.0.0.1), port 5432 failed: FATAL:  '
    )
    exc = psycopg.OperationalError(message + f'database "{database}" does not exist')
    assert postgres_error_detail(exc, host=None, timeout=1.0) == f'database "{database}" does not exist'
