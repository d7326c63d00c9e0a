"""A per-channel budget for Slack posts, shared by every replica through Redis.

Slack allows about one chat.postMessage per second per channel. When 200 incidents trigger in a minute, posting as
fast as the worker can would earn a wall of 429s and leave the channel minutes behind, so every post to a channel
first takes that channel's slot: `SET slot NX PX interval` succeeds for one caller per interval across all
replicas, and everyone else waits for the key to expire. A 429 that still happens pushes the slot out by its
Retry-After. Without Redis (down, or not answering within the client's bounded timeout, bot/storage.py) the budget
falls back to this process alone at a conservative rate — LOCAL_SHARE of the channel's rate, since other replicas
may be posting to the channel too — which keeps the posts going and each replica polite.
Within a process, one request per channel is in flight at a time (`call`), so a 429 is seen before the next post
to that channel leaves.

Edits have a second, workspace-wide limit: chat.update is a Tier 3 method, about 50 calls a minute per workspace
whatever the channel (https://api.slack.com/apis/rate-limits). Debounced edits (a root showing its incident's
newest state, a storm digest) ask `allow_update` first, which never waits: a minute's allowance is counted in
Redis for every replica, and an edit beyond it stays marked dirty for a later pass rather than hold up delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from integrations.slack import SlackRateLimited, slack_error

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many 429s one call sits out (each after its Retry-After) before it gives up and the caller retries later.
RATE_LIMITED_RETRIES = 5
#: Without Redis, the share of a channel's rate one replica takes for itself (it cannot see the others' posts).
LOCAL_SHARE = 0.5
MINUTE_MS = 60_000


class ChannelBudget:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        per_second: float = 1.0,
        updates_per_minute: int = 50,
        prefix: str = "slack:budget",
    ) -> None:
        self.client = client
        self.interval_ms = max(1, int(1000 / per_second))
        self.updates_per_minute = updates_per_minute
        self.prefix = prefix
        self._local_updates: list[float] = []
        self._local_next: dict[str, float] = {}
        self._aliases: dict[str, str] = {}
        self._in_flight: dict[str, asyncio.Lock] = {}

    def _key(self, kind: str, channel: str) -> str:
        return f"{self.prefix}:{kind}:{channel}"

    async def alias(self, name: str, channel_id: str) -> None:
        """Remember that `#name` is `channel_id`: one channel, one budget, however a post names it."""
        if name == channel_id or name in self._aliases:
            return
        with contextlib.suppress(RedisError):
            # The post that taught us the alias took its slot under the name: carry it over to the ID before
            # anyone keys by the ID, or the next post would go out at once.
            remaining = await self.client.pttl(self._key("post", name))
            if remaining and remaining > 0:
                await self.client.set(self._key("post", channel_id), "1", px=remaining, nx=True)
            await self.client.set(f"{self.prefix}:alias:{name}", channel_id)
        self._aliases[name] = channel_id

    async def canonical(self, channel: str) -> str:
        """The channel ID a `#name` is known by (learnt from a post's answer), else the name itself."""
        if channel in self._aliases:
            return self._aliases[channel]
        if not channel.startswith("#"):
            return channel
        try:
            known = await self.client.get(f"{self.prefix}:alias:{channel}")
        except RedisError:
            return channel
        if known:
            self._aliases[channel] = known.decode() if isinstance(known, bytes) else str(known)
            return self._aliases[channel]
        return channel

    async def allow_update(self) -> bool:
        """One edit out of the workspace's minute allowance, or False at once when it is spent (the caller keeps
        its edit for a later pass). The minute is a Redis key that expires: counted for every replica. Without
        Redis, this replica keeps LOCAL_SHARE of the allowance for itself."""
        key = f"{self.prefix}:workspace:update"
        try:
            await self.client.set(key, 0, nx=True, px=MINUTE_MS)
            used = int(await self.client.incr(key))
            if used == 1:  # the key may have expired between the two calls: never leave it without an expiry
                await self.client.pexpire(key, MINUTE_MS)
            return used <= self.updates_per_minute
        except RedisError:
            now = time.monotonic()
            self._local_updates = [at for at in self._local_updates if at > now - MINUTE_MS / 1000]
            if len(self._local_updates) >= max(1, int(self.updates_per_minute * LOCAL_SHARE)):
                return False
            self._local_updates.append(now)
            return True

    async def idle(self, channel: str, kind: str = "post") -> bool:
        """Whether the channel's next slot is free now: work that may wait (a storm's incidents promoted to their
        own roots) goes only into the room the urgent posts leave. Without Redis: as if busy."""
        try:
            return int(await self.client.pttl(self._key(kind, await self.canonical(channel)))) <= 0
        except RedisError:
            return False

    async def take(self, channel: str, kind: str = "post") -> None:
        """Wait until this caller holds the channel's next slot."""
        while True:
            key = self._key(kind, await self.canonical(channel))  # the alias may be learnt while we wait
            try:
                if await self.client.set(key, "1", nx=True, px=self.interval_ms):
                    return
                wait_ms = await self.client.pttl(key)
            except RedisError:
                await self._take_locally(key)
                return
            await asyncio.sleep(max(wait_ms, 5) / 1000)

    async def _take_locally(self, key: str) -> None:
        log.warning("Redis unavailable: Slack budget kept by this replica alone")
        now = time.monotonic()
        slot = max(now, self._local_next.get(key, 0.0))
        self._local_next[key] = slot + self.interval_ms / 1000 / LOCAL_SHARE
        await asyncio.sleep(slot - now)

    async def back_off(self, channel: str, seconds: float, kind: str = "post") -> None:
        """After a 429: nobody posts to the channel until Retry-After has passed."""
        key = self._key(kind, await self.canonical(channel))
        try:
            await self.client.set(key, "1", px=max(1, int(seconds * 1000)))
        except RedisError:
            self._local_next[key] = time.monotonic() + seconds

    async def call(self, channel: str, request: Callable[[], Awaitable[T]], kind: str = "post") -> T:
        """Make `request` within the channel's budget. One request per channel and kind is in flight in this
        process at a time, so when Slack answers 429 the next poster has not been sent yet: the 429 pushes the
        channel's slot out by its Retry-After (for every replica, through Redis) before anyone calls again.
        After RATE_LIMITED_RETRIES the 429 is raised to the caller."""
        lock = self._in_flight.setdefault(f"{kind}:{await self.canonical(channel)}", asyncio.Lock())
        async with lock:
            for attempt in range(RATE_LIMITED_RETRIES + 1):
                await self.take(channel, kind)
                try:
                    return await request()
                except SlackApiError as exc:
                    limited = slack_error(exc)
                    if not isinstance(limited, SlackRateLimited) or attempt == RATE_LIMITED_RETRIES:
                        raise
                    await self.back_off(channel, limited.retry_after, kind)
        raise AssertionError("unreachable")  # pragma: no cover


class Unpaced(ChannelBudget):
    """No per-channel pace, only Slack's Retry-After for this process's own request (as the SDK's retry handler
    did): for the few replies a person's action or a rollback step makes in its thread, which must not wait their
    turn behind a storm's pace (their timing is the step's), yet must never be resent blindly."""

    def __init__(self) -> None:  # no shared state: nothing to keep in Redis
        pass

    async def canonical(self, channel: str) -> str:
        return channel

    async def allow_update(self) -> bool:
        return True

    async def idle(self, channel: str, kind: str = "post") -> bool:
        return True

    async def alias(self, name: str, channel_id: str) -> None:
        return None

    async def call(self, channel: str, request: Callable[[], Awaitable[T]], kind: str = "post") -> T:
        for attempt in range(RATE_LIMITED_RETRIES + 1):
            try:
                return await request()
            except SlackApiError as exc:
                limited = slack_error(exc)
                if not isinstance(limited, SlackRateLimited) or attempt == RATE_LIMITED_RETRIES:
                    raise
                await asyncio.sleep(limited.retry_after)
        raise AssertionError("unreachable")  # pragma: no cover


UNPACED = Unpaced()
