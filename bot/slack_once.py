"""Slack posts that must happen once, even when the poster dies between Slack accepting a post and its `ts` being
stored.

The claim that says "I am posting this" lives in Postgres, next to what is posted: each capability gives its
claim rows as a `ClaimStore` (incident roots and replies, storm digests, the weekly handoff checklist and its
replies, a rollback's thread replies), and `post_once` runs the one protocol over them: claim → post with
metadata → record the `ts` → look up on uncertainty. A claim without a `ts`
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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError

from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from integrations.slack import SlackInvalidPayload, channel_id_by_name, find_posted, slack_error

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
    """Slack answered and refused (a 4xx, `ok: false` — a 429 included): nothing was stored. A 5xx
    (SlackUncertain), a timeout or a dropped connection leave the outcome unknown."""
    typed = slack_error(exc)
    return typed is not None and typed.refused


def permanently_refused(exc: BaseException) -> bool:
    """Slack refused the payload itself (SlackInvalidPayload, bot/slack_limits.py): sending it again cannot help."""
    return isinstance(slack_error(exc), SlackInvalidPayload)


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


# --- the once-only posting protocol: claim → post with metadata → record ts → look up on uncertainty -------------


@dataclass(frozen=True)
class ClaimState:
    """What the claim store found when asked to claim a post.

    `ours`: this caller holds a fresh claim (its INSERT went in): post at once. `ts`: posted already (`channel_id`
    with it when known). Otherwise someone else's claim: `attempted_at` is when a post of it began and left no
    `ts` (None: never attempted, e.g. a storm digest member getting its own thread — taken without a lookup)."""

    ours: bool = False
    ts: str | None = None
    channel_id: str | None = None
    attempted_at: datetime | None = None


class ClaimStore(Protocol):
    """A capability's claim row for one post (its own table and SQL): the platform drives it in `post_once`."""

    async def claim(self, now: datetime) -> ClaimState:
        """Insert the claim (ours) or read the one there is."""

    async def take(self, now: datetime, attempted_at: datetime | None) -> bool:
        """Take over a claim without a `ts` whose attempt began at `attempted_at` (conditional on it still being
        that one): True for the one caller that may post."""

    async def mark_uncertain(self, now: datetime, claimed: datetime) -> None:
        """The attempt that began at `now` has an unknown outcome: stamp it `claimed` (uncertain_claim_time), so it
        is looked up once Slack can no longer apply it late."""

    async def release(self, now: datetime) -> None:
        """Slack refused the attempt that began at `now`: nothing was posted, the next attempt posts at once."""

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        """The post (made now, or found by its metadata) is `ts` in `channel_id`."""


@dataclass(frozen=True)
class Posted:
    """The outcome of `post_once`. `status`: `posted` (by this call), `found` (an uncertain attempt had been
    posted after all: recorded, not posted again), `already` (the claim had its `ts`), `busy` (another worker
    holds the claim, or it is not stale yet: try again later)."""

    status: str
    channel_id: str | None = None
    ts: str | None = None
    response: Any = None

    @property
    def posted_now(self) -> bool:
        return self.status == "posted"


BUSY = Posted("busy")


async def post_once(
    bot: BotContext,
    budget: ChannelBudget,
    claims: ClaimStore,
    channel: str,
    key: PostKey,
    now: datetime,
    *,
    content: Callable[[], Awaitable[dict[str, Any]]] | dict[str, Any],
    fallback: str,
    thread_ts: str | None = None,
    stale: timedelta | None = None,
) -> Posted:
    """Post `key` in `channel` (in the thread `thread_ts`) once: claim → post (slack_unretried, the channel's
    budget, `key` as metadata) → record its ts; an attempt whose outcome was unknown is looked up by its metadata
    once it is older than `stale` (STALE_CLAIM_SECONDS; an uncertain attempt is stamped so that this falls after
    Slack's late-apply window), and once more right after taking it over, before it is posted again.

    `content` (the message's text/blocks/attachments, or a coroutine making them: built only when it is posted)."""
    window = stale if stale is not None else stale_window(bot)
    state = await claims.claim(now)
    if state.ts is not None:
        return Posted("already", state.channel_id, state.ts)
    if not state.ours:
        if state.attempted_at is not None:
            if state.attempted_at > now - window:
                return BUSY
            found = await _look_up(bot, budget, channel, key, state.attempted_at, thread_ts)
            if found is not None:
                await claims.record(found[0], found[1], now)
                return Posted("found", *found)
        if not await claims.take(now, state.attempted_at):
            return BUSY
        if state.attempted_at is not None:
            # Ours now, and looked up once more right before posting again: a late-applied post may have landed
            # between the first lookup and the take-over.
            found = await _look_up(bot, budget, channel, key, state.attempted_at, thread_ts)
            if found is not None:
                await claims.record(found[0], found[1], now)
                return Posted("found", *found)
    try:
        message = dict(content) if isinstance(content, dict) else await content()
    except BaseException:
        await claims.release(now)  # nothing was sent
        raise
    if thread_ts is not None:
        message["thread_ts"] = thread_ts
    started = time.monotonic()
    try:
        response = await post(bot, budget, channel, key, fallback=fallback, **message)
    except Exception as exc:
        if surely_not_posted(exc):
            await claims.release(now)
        else:
            claimed = uncertain_claim_time(bot, now, time.monotonic() - started)
            if stale is not None:  # stamped so that it turns stale after Slack's late-apply window, not later
                claimed += stale_window(bot) - stale
            await claims.mark_uncertain(now, claimed)
        raise
    channel_id, ts = str(response["channel"]), str(response["ts"])
    await claims.record(channel_id, ts, now)
    return Posted("posted", channel_id, ts, response)


async def _look_up(
    bot: BotContext,
    budget: ChannelBudget,
    channel: str,
    key: PostKey,
    attempted_at: datetime,
    thread_ts: str | None,
) -> tuple[str, str] | None:
    if thread_ts is None:
        return await find_top_level(bot, budget, channel, key, attempted_at)
    channel_id = await channel_id_of(bot, budget, channel)
    if channel_id is None:
        return None
    ts = await find_in_thread(bot, channel_id, thread_ts, key)
    return (channel_id, ts) if ts is not None else None
