"""Slack posts that must happen once, even when the poster dies between Slack accepting a post and its `ts` being
stored.

The claim that says "I am posting this" lives in Postgres, next to what is posted (incident roots and replies,
storm digests; the weekly handoff post and rollback progress can use the same pieces). A claim without a `ts`
means a post started and its outcome is unknown: Slack may have stored the message while the worker was killed,
or a timeout may have hidden Slack's answer. So every such post carries message metadata naming what it is
(`PostKey`, https://api.slack.com/metadata), and whoever takes over a claim older than STALE_CLAIM_SECONDS first
looks for a message with that metadata (`find_top_level`, `find_in_thread`) and records it instead of posting
again. The posts go through `BotContext.slack_unretried`, a client that never resends a request Slack may already
have applied, and through the channel's budget, which honours Retry-After for every poster of the channel.

A post whose answer never came (a timeout, a 5xx) may still be applied by Slack *after* the client gave up: Slack
stored it at 12 s, the client stopped waiting at 10 s. Looking it up at once finds nothing and posts it a second
time. So such a claim is looked up only once the client timeout (SLACK_TIMEOUT_SECONDS) plus LATE_APPLY_MARGIN has
passed since the attempt failed (`uncertain_claim_time`), and the taker looks once more right before it posts again.

A payload Slack refuses as invalid (`invalid_blocks`, `msg_too_long`, `invalid_arguments`…, bot/slack_limits.py)
would be refused again however often it is sent, and an incident's later events wait behind a failed one. So
`post` and `update` never leave such a refusal to a retry: they log it with Slack's error and messages and send
the caller's minimal text-only `fallback` instead (same metadata, so it is found like the message it stands for).
Handled here, at the one depth every root, reply, edit and digest goes through, not by each caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from bot.slack_limits import PERMANENT_REFUSALS
from integrations.slack import channel_id_by_name, find_posted

log = logging.getLogger(__name__)

#: Slack's `ts` and our clock may disagree; a lookup starts this long before the attempt it looks for.
CLOCK_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class PostKey:
    """What a message is, as its metadata says: e.g. `mira_incident_root` with the incident and channel."""

    event_type: str
    payload: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "event_payload": dict(self.payload)}


def stale_window(bot: BotContext) -> timedelta:
    """A post started longer ago than this without a recorded `ts` was abandoned (STALE_CLAIM_SECONDS)."""
    return timedelta(seconds=bot.settings.stale_claim_seconds)


#: How much later than the client's timeout Slack may still apply a request it received (and show it in history).
LATE_APPLY_MARGIN = timedelta(seconds=5)


def late_apply_window(bot: BotContext) -> timedelta:
    """After an attempt whose outcome is unknown, how long Slack may still apply it: the client timeout plus a
    margin. A lookup sooner than that can miss a message that lands a moment later."""
    return timedelta(seconds=bot.settings.slack_timeout_seconds) + LATE_APPLY_MARGIN


def uncertain_claim_time(bot: BotContext, now: datetime, elapsed: float) -> datetime:
    """The claim time to record for an attempt that began with the pass at `now`, failed `elapsed` seconds later
    and whose outcome is unknown. The claim counts as stale — and is looked up — `late_apply_window` after the
    failure, not at once: it is stamped so that `claimed + stale_window` falls then. The pass's `now` stays the one
    clock of the decision; `elapsed` (monotonic) only moves it to the moment the client gave up."""
    failed_at = now + timedelta(seconds=max(0.0, elapsed))
    return failed_at + late_apply_window(bot) - stale_window(bot)


def surely_not_posted(exc: BaseException) -> bool:
    """Slack answered and refused (a 4xx, `ok: false` — a 429 included): nothing was stored. A 5xx, a timeout or
    a dropped connection leave the outcome unknown."""
    return isinstance(exc, SlackApiError) and exc.response.status_code < 500


def permanently_refused(exc: BaseException) -> bool:
    """Slack refused the payload itself (bot/slack_limits.py PERMANENT_REFUSALS): sending it again cannot help."""
    return isinstance(exc, SlackApiError) and exc.response.get("error") in PERMANENT_REFUSALS


#: What a message shows; the rest of a call's arguments (thread, metadata, unfurling) stay in the fallback.
_CONTENT = ("text", "blocks", "attachments")


def _log_refusal(exc: SlackApiError, method: str, channel: str, what: str) -> None:
    metadata = exc.response.get("response_metadata") or {}
    log.error(
        "Slack refused the message as invalid; sending a text-only fallback instead",
        extra={
            "method": method,
            "error": exc.response.get("error"),
            "slack_messages": list(metadata.get("messages") or [])[:10],
            "channel": channel,
            "what": what,
        },
    )


async def post(
    bot: BotContext, budget: ChannelBudget, channel: str, key: PostKey, *, fallback: str, **kwargs: Any
) -> Any:
    """chat.postMessage once (no blind resend), within the channel's budget, carrying `key` as metadata. Refused
    as invalid, `fallback` (text only) is posted in its place, once; refused again, the refusal is raised."""

    async def request(**content: Any) -> Any:
        return await bot.slack_unretried.chat_postMessage(
            channel=channel, unfurl_links=False, metadata=key.metadata(), **content
        )

    try:
        response = await budget.call(channel, lambda: request(**kwargs))
    except SlackApiError as exc:
        if not permanently_refused(exc):
            raise
        _log_refusal(exc, "chat.postMessage", channel, f"{key.event_type} {key.payload}")
        rest = {k: v for k, v in kwargs.items() if k not in _CONTENT}
        response = await budget.call(channel, lambda: request(text=fallback, **rest))
    await budget.alias(channel, str(response["channel"]))
    return response


async def update(
    bot: BotContext, budget: ChannelBudget, channel_id: str, ts: str, *, fallback: str, **kwargs: Any
) -> Any:
    """chat.update within the channel's update budget (an edit is idempotent; only its pace matters). Refused as
    invalid, the message is edited to `fallback` alone (its blocks and attachments cleared)."""

    async def request(**content: Any) -> Any:
        return await bot.slack_unretried.chat_update(channel=channel_id, ts=ts, **content)

    try:
        return await budget.call(channel_id, lambda: request(**kwargs), kind="update")
    except SlackApiError as exc:
        if not permanently_refused(exc):
            raise
        _log_refusal(exc, "chat.update", channel_id, f"message {ts}")
        rest = {k: v for k, v in kwargs.items() if k not in _CONTENT}
        return await budget.call(
            channel_id,
            lambda: request(text=fallback, blocks=[], attachments=[], **rest),
            kind="update",
        )


async def channel_id_of(bot: BotContext, budget: ChannelBudget, channel: str) -> str | None:
    """A conversation ID for `channel` (an ID already, or `#name`): as learnt from an earlier post's answer (the
    budget's aliases), else from Slack. None when Slack does not know the channel: nothing was posted to it."""
    if not channel.startswith("#"):
        return channel
    known = await budget.canonical(channel)
    if not known.startswith("#"):
        return known
    return await channel_id_by_name(bot.slack, channel)


async def find_top_level(
    bot: BotContext, budget: ChannelBudget, channel: str, key: PostKey, attempted_at: datetime
) -> tuple[str, str] | None:
    """(channel ID, ts) of the top-level message carrying `key`, posted since the attempt began."""
    channel_id = await channel_id_of(bot, budget, channel)
    if channel_id is None:
        return None
    since = (attempted_at - CLOCK_MARGIN).timestamp()
    message = await find_posted(bot.slack, channel_id, key.event_type, key.payload, oldest=since)
    if message is None:
        return None
    log.warning(
        "found a message from an attempt whose outcome was unknown (crash, timeout, 5xx); not posting it again",
        extra={"event_type": key.event_type, "channel": channel_id, "message_ts": message.get("ts")},
    )
    return channel_id, str(message["ts"])


async def find_in_thread(bot: BotContext, channel_id: str, thread_ts: str, key: PostKey) -> str | None:
    """The ts of the reply carrying `key` in the thread `thread_ts`."""
    message = await find_posted(bot.slack, channel_id, key.event_type, key.payload, thread_ts=thread_ts)
    if message is None:
        return None
    log.warning(
        "found a reply from an attempt whose outcome was unknown (crash, timeout, 5xx); not posting it again",
        extra={"event_type": key.event_type, "channel": channel_id, "message_ts": message.get("ts")},
    )
    return str(message["ts"])
