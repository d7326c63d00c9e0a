"""What every feature-flag backend looks like to the `/flag` handlers.

Two kinds of backend hold the runbooks' flags:

* ``supabase_secrets`` (:mod:`integrations.supabase`): Mira's flags are Edge Function secrets, the same thing
  ``supabase secrets set`` writes.  Supabase never gives a secret's value back, only its SHA-256 digest, so a read
  says *whether* a flag is set and *which* value it holds only by comparing digests (:func:`digest_of`).
* ``postgres_table`` (:mod:`integrations.flag_table`): the other services read a ``feature_flags`` table in their
  own database, where the value itself can be read back.

Values cross this interface as strings because that is what the services receive (environment variables, a
``text`` column): ``"true"``, ``"30"``, ``"https://…"``.  Parsing and checking them against the catalog's types is
the caller's job, done once, before a backend is asked to write anything.

A backend never retries.  A flag change that timed out may still have landed, and repeating it silently would
write twice behind the user's back; the handler reads the state again and tells the user instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "BackendResponse",
    "FlagBackend",
    "FlagBackendError",
    "RateLimit",
    "StoredFlag",
    "digest_of",
]


@dataclass(frozen=True)
class StoredFlag:
    """One flag as the backend holds it right now.

    ``value`` is the raw string when the backend can tell it (the Postgres table), ``None`` when the flag is unset
    or the backend only keeps a digest (Supabase).  ``present`` says whether the backend has the flag at all: a
    Supabase secret with this name, a row in the table.  An absent flag means the service uses its own default.
    ``digest`` is what Supabase's list endpoint returns instead of the value (hex SHA-256, see :func:`digest_of`).
    """

    name: str
    value: str | None
    present: bool
    digest: str | None = None


@dataclass(frozen=True)
class RateLimit:
    """The backend's rate-limit headers, when it sends them (Supabase: 120 requests a minute per project)."""

    limit: int | None
    remaining: int | None
    reset_seconds: float | None


@dataclass(frozen=True)
class BackendResponse:
    """How a write went: ``summary`` is short and goes to the audit row and to the user as is.

    ``status`` is the HTTP status (``201`` from Supabase) or ``200`` for the Postgres table.
    """

    status: int
    summary: str
    rate_limit: RateLimit | None = None


class FlagBackendError(Exception):
    """The backend refused or failed.  ``str()`` is the backend's own words, shown to the user as is.

    ``status`` is the HTTP status (401, 429, 5xx) or ``None`` for a timeout, a connection error or an SQL error.
    ``retry_after`` is set on a rate limit: the seconds the backend asked us to wait.  Messages never carry a
    token, a DSN or a password.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        rate_limit: RateLimit | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.rate_limit = rate_limit
        self.retry_after = retry_after


@runtime_checkable
class FlagBackend(Protocol):
    """A place flags live.  Every method is one request (or one transaction): no retries, no partial writes."""

    kind: str  # "supabase_secrets" | "postgres_table"

    async def read(self, names: Sequence[str]) -> dict[str, StoredFlag]:
        """Every asked name gets an entry; ``present=False`` when the backend does not have it."""
        ...

    async def set(self, values: Mapping[str, str], *, actor: str | None = None) -> BackendResponse:
        """Write all ``values`` in one request / transaction.  ``actor`` is recorded where the backend can."""
        ...

    async def unset(self, names: Sequence[str], *, actor: str | None = None) -> BackendResponse:
        """Remove the flags, so the service falls back to its own default."""
        ...


def digest_of(value: str) -> str:
    """The digest Supabase shows for a secret holding ``value``: hex SHA-256 of its UTF-8 bytes.

    The dashboard labels the column "Digest SHA256" and ``supabase secrets list`` prints the list endpoint's
    ``value`` field under DIGEST.  Comparing it with the digest of the value the bot last set tells whether someone
    changed the secret outside the bot since.
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
