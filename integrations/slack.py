"""The Slack Web API client every part of the bot posts through, and the lookups that find a post by metadata.

Built on slack_sdk's AsyncWebClient with its retry handlers, so a connection error, a 429 (honouring Retry-After)
or a 5xx is retried by the SDK rather than by ad-hoc loops in handlers. Posts that must happen once use the same
client without those blind retries (`blind_retries=False`, see bot/slack_once.py). Each call's final outcome is
counted by method and status for /metrics: a Slack outage or a rate-limit storm shows up there first.

The client keeps one aiohttp session, so calls reuse their connections. Without one, slack_sdk opens a session
for every call and closes it after: a new TCP (and, to slack.com, TLS) connection per message, which in the
ack benchmark was a fifth of the bot's post-ack CPU (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    """AsyncWebClient that counts every call's final outcome and blanks `redact`'s secrets from what it sends
    (bot.redaction: the net under "never echo a secret to Slack")."""

    redact: Callable[[Any], Any] | None = None

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:  # type: ignore[override]
        if self.redact is not None:
            for part in ("json", "data", "params"):
                if isinstance(kwargs.get(part), dict):
                    kwargs[part] = self.redact(kwargs[part])
        try:
            response = await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            status = exc.response.get("error") or str(exc.response.status_code)
            SLACK_API_CALLS.labels(api_method, status).inc()
            typed = slack_error(exc)
            if typed is exc or typed is None:
                raise
            raise typed from None
        except Exception:
            SLACK_API_CALLS.labels(api_method, "connection_error").inc()
            raise
        SLACK_API_CALLS.labels(api_method, "ok").inc()
        return response


# --- typed errors: what Slack's answer means, so callers catch a type instead of comparing `error` strings ----------


class SlackError(SlackApiError):
    """A Slack Web API failure, typed by what it means for the caller (STYLE.md "Typed errors from the platform's
    clients"). A SlackApiError still (its `response`, `error` code and status are Slack's), so code that catches
    SlackApiError keeps working. The bot's clients raise these (`InstrumentedWebClient`); `slack_error` maps any
    SlackApiError (e.g. from a client built elsewhere) the same way."""

    @property
    def code(self) -> str:
        """Slack's `error` ("not_in_channel", "ratelimited", …), else the HTTP status."""
        return str(self.response.get("error") or self.response.status_code)

    @property
    def refused(self) -> bool:
        """Slack answered and refused (a 4xx or `ok: false`, a 429 included): nothing was stored."""
        return bool(self.response.status_code < 500)


class SlackRateLimited(SlackError):
    """429: wait Slack's Retry-After (`retry_after`, seconds) before calling the channel again."""

    @property
    def retry_after(self) -> float:
        return retry_after_seconds(self)


class SlackNotInChannel(SlackError):
    """The bot cannot post there: not a member (`joinable`: it may join and try again), or the channel is gone,
    archived or restricted."""

    @property
    def joinable(self) -> bool:
        return self.code == "not_in_channel"


class SlackInvalidPayload(SlackError):
    """Slack refused the payload itself (invalid blocks, too long, bad arguments or metadata): sending it again as
    is cannot help."""


class SlackTokenError(SlackError):
    """The token is invalid, revoked or lacks a scope: nothing the bot sends will work until it is fixed."""


class SlackUncertain(SlackError):
    """A 5xx: Slack may have applied the request before failing. Never resent blindly (bot/slack_once.py)."""


#: Slack's answers to a payload it will never accept as sent (bot/slack_limits.py is the table of the limits).
INVALID_PAYLOAD = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_attachments",
        "too_many_attachments",
        "msg_too_long",
        "invalid_arguments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
    }
)
NOT_IN_CHANNEL = frozenset({"not_in_channel", "channel_not_found", "is_archived", "restricted_action"})
TOKEN_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
    }
)


def _error_type(exc: SlackApiError) -> type[SlackError]:
    status = exc.response.status_code
    error = exc.response.get("error")
    if status == 429 or error == "ratelimited":
        return SlackRateLimited
    if status >= 500:
        return SlackUncertain
    if error in INVALID_PAYLOAD:
        return SlackInvalidPayload
    if error in NOT_IN_CHANNEL:
        return SlackNotInChannel
    if error in TOKEN_ERRORS:
        return SlackTokenError
    return SlackError


def slack_error(exc: BaseException) -> SlackError | None:
    """`exc` as a typed Slack error (itself when it is one already); None when it is no Slack API answer (a
    timeout or a dropped connection: the outcome is unknown, as for SlackUncertain)."""
    if isinstance(exc, SlackError):
        return exc
    if not isinstance(exc, SlackApiError):
        return None
    typed = _error_type(exc)(str(exc), exc.response)
    typed.__cause__ = exc.__cause__
    typed.__traceback__ = exc.__traceback__
    return typed


def build_slack_client(
    token: str,
    base_url: str,
    *,
    timeout: float = 10.0,
    blind_retries: bool = True,
    redact: Callable[[Any], Any] | None = None,
) -> InstrumentedWebClient:
    """The bot's Web API client: SLACK_API_URL as base URL (tests point it at the recording server).

    `blind_retries=False` builds the client for posts that must happen once (incident roots and replies): a
    timeout, a dropped connection or a 5xx may come *after* Slack stored the message, so resending the same
    request could post it twice. That client raises instead; the caller records the outcome as uncertain and
    looks the message up (by its metadata) before posting again. Its 429s are raised too, so the per-channel
    budget learns the Retry-After at once for every poster of the channel, not only the one request being retried.

    The client has its own connection-reusing session: call this with the event loop running;
    `close_slack_client` releases it.
    """
    # With a session of its own, slack_sdk no longer applies `timeout` per call: the session carries it.
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    client = InstrumentedWebClient(
        token=token,
        base_url=base_url,
        timeout=max(1, math.ceil(timeout)),
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
        ]
        if blind_retries
        else [],
    )
    client.redact = redact
    return client


def retry_after_seconds(exc: SlackApiError, default: float = 1.0) -> float:
    """Slack's Retry-After (seconds) on a 429, else `default`."""
    headers = getattr(exc.response, "headers", None) or {}
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else default
    except (TypeError, ValueError):
        return default


async def close_slack_client(client: AsyncWebClient) -> None:
    if client.session is not None and not client.session.closed:
        await client.session.close()


def slack_error_code(exc: BaseException) -> str | None:
    """The `error` field of a Slack API failure ("not_in_channel", "ratelimited", …), if that is what `exc` is."""
    typed = slack_error(exc)
    return typed.code if typed is not None else None


# --- finding what was posted: message metadata -------------------------------------------------------------------
#
# A post that must happen once carries metadata naming what it is (https://api.slack.com/metadata): when a worker
# died after Slack accepted a post but before its `ts` was stored, the next worker finds the message by that
# metadata instead of posting it again. conversations.history/replies return metadata only with
# include_all_metadata. These are Tier 3 methods for an internal app (Slack's 2025 limits on them apply to
# commercially distributed, non-Marketplace apps only), and they are called only after such a crash.

HISTORY_PAGE = 200
HISTORY_MAX_PAGES = 25


def _matches(message: dict[str, Any], event_type: str, payload: dict[str, Any]) -> bool:
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != event_type:
        return False
    found = metadata.get("event_payload")
    return isinstance(found, dict) and all(found.get(key) == value for key, value in payload.items())


async def find_posted(
    client: AsyncWebClient,
    channel_id: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    thread_ts: str | None = None,
    oldest: float | None = None,
) -> dict[str, Any] | None:
    """The message in `channel_id` (in the thread `thread_ts`, else at the top level since `oldest`, a Unix time)
    whose metadata has `event_type` and carries every item of `payload`; None when there is none."""
    cursor: str | None = None
    for _ in range(HISTORY_MAX_PAGES):
        args: dict[str, Any] = {"channel": channel_id, "include_all_metadata": True, "limit": HISTORY_PAGE}
        if cursor:
            args["cursor"] = cursor
        if thread_ts is not None:
            response = await client.conversations_replies(ts=thread_ts, **args)
        else:
            if oldest is not None:
                args["oldest"] = f"{max(0.0, oldest):.6f}"
            response = await client.conversations_history(**args)
        for message in response.get("messages") or []:
            if isinstance(message, dict) and _matches(message, event_type, payload):
                return message
        cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
        if not response.get("has_more") or not cursor:
            return None
    return None


async def channel_id_by_name(client: AsyncWebClient, name: str) -> str | None:
    """The ID of the channel `#name` (public or private, the bot a member), from conversations.list."""
    wanted = name.lstrip("#").lower()
    cursor: str | None = None
    for _ in range(HISTORY_MAX_PAGES):
        args: dict[str, Any] = {
            "types": "public_channel,private_channel",
            "exclude_archived": True,
            "limit": 200,
        }
        if cursor:
            args["cursor"] = cursor
        response = await client.conversations_list(**args)
        for channel in response.get("channels") or []:
            if isinstance(channel, dict) and str(channel.get("name", "")).lower() == wanted:
                return str(channel["id"])
        cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
        if not cursor:
            return None
    return None
