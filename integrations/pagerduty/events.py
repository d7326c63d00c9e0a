"""PagerDuty's Events API v2 from the bot: ``send_event`` (trigger, acknowledge, resolve an alert).

Through the official package's :class:`pagerduty.EventsApiV2Client`, so the Events API shares the REST client's
HTTP stack, retry policy and error wording (:mod:`integrations.pagerduty.official_client`). The library's own
``send_event`` returns the ``dedup_key`` alone, dropping PagerDuty's ``status`` and ``message``, so the event is
posted with the client's ``post`` (which adds the routing key to the body, as the library's auth method does) and
checked with its ``successful_response``. The client is made per event: its routing key is its credential.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pagerduty

from integrations.pagerduty.errors import MAX_WAIT, PagerDutyError
from integrations.pagerduty.official_client import EVENT_HOOKS, EventsClient, call_pagerduty, configure

DEFAULT_EVENTS_URL = "https://events.pagerduty.com"

_EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
_SEVERITIES = ("critical", "error", "warning", "info")


async def send_event(
    events_url: str,
    *,
    routing_key: str,
    action: str,
    dedup_key: str | None = None,
    summary: str = "",
    source: str = "mira-bot",
    severity: str = "info",
    custom_details: dict[str, Any] | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 -- the library's per-request timeout
    max_attempts: int = 3,
    max_wait: float = MAX_WAIT,
) -> dict[str, Any]:
    """``POST {events_url}/v2/enqueue`` (Events API v2); returns ``{"status", "message", "dedup_key"}``.

    ``trigger`` needs a ``summary`` (``dedup_key`` optional: PagerDuty makes one up and returns it);
    ``acknowledge`` and ``resolve`` need the ``dedup_key``.  429, 5xx and failures to connect are retried (as
    PagerDuty's Events API docs ask), at most ``max_attempts`` requests; a timeout is not (a trigger without a
    ``dedup_key`` sent twice is two alerts).  The routing key is a secret: it never appears in an error.
    """
    if action not in _EVENT_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(_EVENT_ACTIONS)}")
    if severity not in _SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(_SEVERITIES)}")
    if not routing_key:
        raise ValueError("a routing key is required")
    if action != "trigger" and not dedup_key:
        raise ValueError(f"{action} needs the dedup_key of the alert")
    if action == "trigger" and not summary.strip():
        raise ValueError("a trigger needs a summary")
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")

    event: dict[str, Any] = {"event_action": action}  # the client adds the routing key
    if dedup_key:
        event["dedup_key"] = dedup_key
    if action == "trigger":
        payload: dict[str, Any] = {"summary": summary, "source": source, "severity": severity}
        if custom_details:
            payload["custom_details"] = custom_details
        event["payload"] = payload
    try:
        client = EventsClient(routing_key, base_url=events_url.rstrip("/"), event_hooks=EVENT_HOOKS)
    except ValueError:
        raise PagerDutyError("the PagerDuty Events API URL is invalid") from None
    configure(client, timeout=timeout, max_attempts=max_attempts, max_wait=max_wait)

    def scrub(text: str) -> str:
        return text.replace(routing_key, "***")

    def post() -> Any:
        return pagerduty.successful_response(client.post("/v2/enqueue", json=event))

    try:
        response = await call_pagerduty(
            "POST /v2/enqueue",
            post,
            timeout=timeout,
            max_attempts=max_attempts,
            max_wait=max_wait,
            idempotent=False,
            scrub=scrub,
            host=urlsplit(client.url).hostname,
        )
    finally:
        await asyncio.to_thread(client.close)
    status = response.status_code
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise PagerDutyError(
            f"PagerDuty answered {status} with something other than an event result",
            status=status,
            attempts=1,
        )
    return {
        "status": document.get("status"),
        "message": document.get("message"),
        "dedup_key": document.get("dedup_key", dedup_key),
    }
