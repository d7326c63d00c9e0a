"""The one Slack Web API client every part of the bot posts through.

Built on slack_sdk's AsyncWebClient with its retry handlers, so a connection error, a 429 (honouring Retry-After)
or a 5xx is retried by the SDK rather than by ad-hoc loops in handlers. Each call's final outcome is counted by
method and status for /metrics: a Slack outage or a rate-limit storm shows up there first.

The client keeps one aiohttp session, so calls reuse their connections. Without one, slack_sdk opens a session
for every call and closes it after: a new TCP (and, to slack.com, TLS) connection per message, which in the
ack benchmark was a fifth of the bot's post-ack CPU (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client import Counter
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

SLACK_API_CALLS = Counter(
    "mira_slack_api_calls_total",
    "Slack Web API calls by method and final status (ok, a Slack error code, or an HTTP status).",
    ["method", "status"],
)

# Slack's post-ack work is minutes-tolerant but a storm must not queue forever behind one channel.
RATE_LIMIT_RETRIES = 5
SERVER_ERROR_RETRIES = 2
CONNECTION_RETRIES = 2


class InstrumentedWebClient(AsyncWebClient):
    """AsyncWebClient that counts every call's final outcome."""

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:  # type: ignore[override]
        try:
            response = await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            status = exc.response.get("error") or str(exc.response.status_code)
            SLACK_API_CALLS.labels(api_method, status).inc()
            raise
        except Exception:
            SLACK_API_CALLS.labels(api_method, "connection_error").inc()
            raise
        SLACK_API_CALLS.labels(api_method, "ok").inc()
        return response


def build_slack_client(token: str, base_url: str, *, timeout: int = 10) -> InstrumentedWebClient:
    """The bot's Web API client: SLACK_API_URL as base URL (tests point it at the recording server), with its own
    connection-reusing session. Call it with the event loop running; `close_slack_client` releases it."""
    # With a session of its own, slack_sdk no longer applies `timeout` per call: the session carries it.
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    return InstrumentedWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
        ],
    )


async def close_slack_client(client: AsyncWebClient) -> None:
    if client.session is not None and not client.session.closed:
        await client.session.close()


def slack_error_code(exc: BaseException) -> str | None:
    """The `error` field of a Slack API failure ("not_in_channel", "ratelimited", …), if that is what `exc` is."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return None
