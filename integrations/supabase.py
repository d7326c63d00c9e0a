"""Mira's feature flags as Supabase Edge Function secrets, through the Management API.

The runbook toggles Mira's flags with ``supabase secrets set NAME=value``; this is the same thing over HTTP, the
three endpoints the CLI itself calls (``internal/secrets/{list,set,unset}`` in supabase/cli):

* ``GET    /v1/projects/{ref}/secrets`` → ``[{"name": …, "value": <hex SHA-256 digest>}]``.  The value itself is
  never returned, so a read tells presence and digest only (see :func:`integrations.flag_backends.digest_of`).
* ``POST   /v1/projects/{ref}/secrets`` with ``[{"name": …, "value": …}]`` → 201 (the CLI still accepts 200).
  Several secrets go in one request, which is what makes a preset one change rather than several.
* ``DELETE /v1/projects/{ref}/secrets`` with ``["NAME", …]`` → 200.

Authentication is ``Authorization: Bearer <personal access token>``.  The Management API allows 120 requests a
minute per user and project and sends ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset``
(seconds until the window resets) on every answer; they are parsed on success and on failure so the handler can
say how close it is to the limit, and a 429's ``Retry-After`` becomes :attr:`FlagBackendError.retry_after`.

No retries here: a flag change must not be repeated behind the user's back (see :mod:`integrations.flag_backends`).
The token never appears in an error message, and an answer that echoes it back has it blanked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from integrations.flag_backends import (
    BackendResponse,
    FlagBackendError,
    RateLimit,
    StoredFlag,
)
from integrations.transport_errors import connection_cause, delay_seconds

__all__ = ["SupabaseSecrets", "parse_rate_limit", "parse_retry_after"]

_MAX_BODY_IN_MESSAGE = 200


# ------------------------------------------------------------------------------------------------- headers


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw.strip()))
    except ValueError:
        return None


def _float_header(headers: httpx.Headers, name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def parse_rate_limit(headers: httpx.Headers) -> RateLimit | None:
    """``X-RateLimit-*`` as a :class:`RateLimit`, or ``None`` when the answer carried none of them."""
    limit = _int_header(headers, "X-RateLimit-Limit")
    remaining = _int_header(headers, "X-RateLimit-Remaining")
    reset = _float_header(headers, "X-RateLimit-Reset")
    if limit is None and remaining is None and reset is None:
        return None
    return RateLimit(limit=limit, remaining=remaining, reset_seconds=reset)


def parse_retry_after(headers: httpx.Headers, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: either delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    return delay_seconds(headers.get("Retry-After"), now=now)


def _seconds(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


# -------------------------------------------------------------------------------------------------- errors


def _backend_words(response: httpx.Response) -> str:
    """What Supabase said: the JSON ``message`` (or ``error``) field, else the start of the body."""
    text = response.text
    try:
        document: Any = json.loads(text) if text.strip() else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("message", "error", "msg"):
            value = document.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    words = " ".join(text.split())
    if words:
        return words[:_MAX_BODY_IN_MESSAGE]
    return response.reason_phrase or _reason(response.status_code)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# ------------------------------------------------------------------------------------------------- backend


class SupabaseSecrets:
    """:class:`~integrations.flag_backends.FlagBackend` over one project's Edge Function secrets.

    ``http`` is the bot's shared ``httpx.AsyncClient`` (tests pass one with ``trust_env=False``); ``base_url`` is
    ``SUPABASE_API_URL`` (``https://api.supabase.com``, or the recording server in tests and the console).
    ``timeout`` bounds each call as a whole: httpx's own timeouts are per phase, so a server that trickles bytes
    could otherwise hold a flag change far longer.  :attr:`last_rate_limit` keeps the headers of the latest
    answer, including reads, whose result has no room for them.
    """

    kind = "supabase_secrets"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        token: str,
        project_ref: str,
        timeout: float = 10.0,  # noqa: ASYNC109 -- enforced with asyncio.timeout around each call
    ) -> None:
        if not project_ref:
            raise ValueError("a Supabase project ref is required")
        if not token:
            raise ValueError("a Supabase access token is required")
        self._http = http
        self._token = token
        self.project_ref = project_ref
        self.timeout = timeout
        self._url = f"{base_url.rstrip('/')}/v1/projects/{quote(project_ref, safe='')}/secrets"
        try:
            self._host: str | None = httpx.URL(base_url).host or None
        except Exception:
            self._host = None
        self.last_rate_limit: RateLimit | None = None

    def __repr__(self) -> str:  # never the token
        return f"SupabaseSecrets(project_ref={self.project_ref!r})"

    # ---------------------------------------------------------------------------------------- interface

    async def read(self, names: Sequence[str]) -> dict[str, StoredFlag]:
        """List the project's secrets and report each asked name: present or not, and its digest."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        response = await self._request("GET", None, expect=(200,))
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, list):
            raise FlagBackendError(
                f"Supabase answered {response.status_code} with something other than a list of secrets",
                status=response.status_code,
                rate_limit=self.last_rate_limit,
            )
        digests: dict[str, str | None] = {}
        for item in document:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                value = item.get("value")
                digests[item["name"]] = value if isinstance(value, str) else None
        return {
            name: StoredFlag(name=name, value=None, present=name in digests, digest=digests.get(name))
            for name in wanted
        }

    async def set(self, values: Mapping[str, str], *, actor: str | None = None) -> BackendResponse:
        """Create or replace every secret in ``values`` in one request.  ``actor`` is ignored (no such field)."""
        if not values:
            raise ValueError("nothing to set")
        body = [{"name": name, "value": value} for name, value in values.items()]
        response = await self._request("POST", body, expect=(201, 200))
        return self._answer(response)

    async def unset(self, names: Sequence[str], *, actor: str | None = None) -> BackendResponse:
        """Delete the secrets in one request: Mira then falls back to the default in its code."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            raise ValueError("nothing to unset")
        response = await self._request("DELETE", wanted, expect=(200,))
        return self._answer(response)

    # ---------------------------------------------------------------------------------------- internals

    def _answer(self, response: httpx.Response) -> BackendResponse:
        phrase = response.reason_phrase or _reason(response.status_code)
        summary = f"{response.status_code} {phrase}".strip()
        return BackendResponse(status=response.status_code, summary=summary, rate_limit=self.last_rate_limit)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    async def _request(self, method: str, body: Any, *, expect: tuple[int, ...]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.request(
                    method, self._url, json=body, headers=headers, timeout=self.timeout
                )
        except (TimeoutError, httpx.TimeoutException):
            raise FlagBackendError(f"Supabase did not answer within {self.timeout:.1f} s") from None
        except httpx.InvalidURL:
            raise FlagBackendError("the Supabase API URL is invalid") from None
        except httpx.TransportError as exc:
            cause = self._scrub(connection_cause(exc, self._host))
            raise FlagBackendError(f"could not reach Supabase ({cause})") from None

        rate_limit = parse_rate_limit(response.headers)
        self.last_rate_limit = rate_limit
        status = response.status_code
        if status in expect:
            return response
        if status == 429:
            retry_after = parse_retry_after(response.headers)
            if retry_after is None and rate_limit is not None:
                retry_after = rate_limit.reset_seconds
            wait = f" (retry in {_seconds(retry_after)} s)" if retry_after is not None else ""
            raise FlagBackendError(
                f"Supabase rate limit reached{wait}",
                status=status,
                rate_limit=rate_limit,
                retry_after=retry_after,
            )
        if 200 <= status < 300:
            words = f"unexpected {status} {response.reason_phrase or _reason(status)}".strip()
        else:
            words = _backend_words(response)
        raise FlagBackendError(
            self._scrub(f"Supabase answered {status}: {words}"),
            status=status,
            rate_limit=rate_limit,
            retry_after=parse_retry_after(response.headers),
        )
