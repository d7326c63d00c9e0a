"""PagerDuty's REST API v2 from the bot: incident actions, notes, on-calls and users.

Through the official ``pagerduty`` package's :class:`pagerduty.RestApiV2Client`, configured in
:mod:`integrations.pagerduty.official_client` (its retries, timeouts and errors):

* Acknowledge / Resolve: ``PUT /incidents/{id}`` with ``{"incident": {"type": "incident_reference",
  "status": "acknowledged" | "resolved"}}`` (plus ``"resolution"``, which PagerDuty adds to the resolve log
  entry), answered ``200 {"incident": {...}}``.
* Escalate: ``PUT /incidents/{id}`` with ``{"incident": {"type": "incident_reference", "escalation_level": N}}``.
* Add note: ``POST /incidents/{id}/notes`` with ``{"note": {"content": ...}}``, answered ``200 {"note": {...}}``.
* Read back: ``GET /incidents/{id}`` and ``GET /incidents/{id}/notes``, after a write that got no answer
  (``PagerDutyError.may_have_applied``), to tell the user what PagerDuty actually has.
* On-calls: ``GET /oncalls`` (classic ``limit``/``offset``/``more`` pagination), read with the client's
  ``iter_all``; ``GET /users/{id}`` with ``rget``.

Writes carry ``From: <email of a PagerDuty user>`` -- the clicking user's email, else ``PAGERDUTY_FROM_EMAIL``
(the library's ``default_from``); with neither, nothing is sent.  Authentication is
``Authorization: Token token=<token>``; the token never appears in a message or a ``repr``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from integrations.pagerduty.errors import MAX_WAIT, NO_FROM_MESSAGE, PagerDutyError
from integrations.pagerduty.official_client import (
    EVENT_HOOKS,
    RestClient,
    call_pagerduty,
    check_base_url,
    configure,
)

_INCIDENT_ID = re.compile(r"^[A-Za-z0-9]+$")

T = TypeVar("T")


def _iso(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


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
        self.base_url = check_base_url(base_url)
        self.default_from = default_from or None
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._token = token
        self._host = urlsplit(self.base_url).hostname
        client = RestClient(
            token, default_from=self.default_from, base_url=self.base_url, event_hooks=EVENT_HOOKS
        )
        configure(client, timeout=timeout, max_attempts=max_attempts, max_wait=max_wait)
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

    async def escalate(
        self, incident_id: str, *, from_email: str | None, escalation_level: int
    ) -> dict[str, Any]:
        """``PUT /incidents/{id}`` with ``escalation_level`` ("Escalate the incident to this level in the
        escalation policy"); returns PagerDuty's incident object.  The incident object carries no level of its
        own: the caller works out the next one (from ``GET /oncalls`` of the incident's policy)."""
        if (
            isinstance(escalation_level, bool)
            or not isinstance(escalation_level, int)
            or escalation_level < 1
        ):
            raise PagerDutyError(f"not an escalation level: {escalation_level!r}")
        body = {"incident": {"type": "incident_reference", "escalation_level": escalation_level}}
        return await self._update(incident_id, body, from_email)

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
        """One library call off the event loop, retried as :func:`call_pagerduty` says."""
        return await call_pagerduty(
            endpoint,
            fn,
            timeout=self.timeout,
            max_attempts=self.max_attempts,
            max_wait=self.max_wait,
            idempotent=idempotent,
            scrub=self._scrub,
            host=self._host,
            guarded=guarded,
        )
