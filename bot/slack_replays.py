"""One effect per Slack request, however often it arrives.

Slack's signature proves who sent a request, not that it is the first time: a captured (or re-sent) signed body
verifies again for as long as its timestamp is within Slack's 5-minute window, and without a record of what ran,
three byte-identical `/flag off` requests made three Supabase writes and three announcements, and a replayed
`/rollback` a second request. So every verified request is claimed by its signature before Bolt sees it: the first
claim runs, any later one within the window is answered 200 and does nothing (Slack shows no error; the first
request's answer is the one that counts). Slack's own retries (`X-Slack-Retry-Num`, re-signed with a new
timestamp) are recognised by the body's digest as well.

The claim is `SET key NX PX ttl` in Redis — both keys of a request, and those of every request arriving
meanwhile, in one command (`ReplayClaims`); when Redis does not answer, a row in Postgres (`slack_replays`,
migration 0009) claimed by `INSERT … ON CONFLICT` with an expiry from the bot's clock. The incident buttons' click
lock (`claim`) uses the same two stores. If neither answers, the request runs: refusing every command because
the caches are down would be worse than the replay it guards against.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from redis.exceptions import RedisError

from bot.context import BotContext
from bot.signing import SLACK_TIMESTAMP_WINDOW

log = logging.getLogger(__name__)

PREFIX = "slack:replay:"


@dataclass(frozen=True)
class Claimed:
    """A key this process claimed, and where, so a request that failed (5xx) can give it back."""

    key: str
    store: str  # "redis", "postgres" or "none" (neither answered: not claimed)


async def claim(bot: BotContext, key: str, ttl_seconds: float) -> Claimed | None:
    """Claim `key` for `ttl_seconds`: a Claimed when this caller is the first within that time, None when the key
    is held already."""
    ttl_ms = max(1, int(ttl_seconds * 1000))
    try:
        if await bot.storage.redis.set(PREFIX + key, "1", nx=True, px=ttl_ms):
            return Claimed(key, "redis")
        return None
    except RedisError:
        pass
    now = bot.clock()
    try:
        async with bot.storage.autocommit(timeout=2.0) as conn:
            cursor = await conn.execute(
                """INSERT INTO slack_replays (key, expires_at) VALUES (%s, %s)
                   ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
                   WHERE slack_replays.expires_at <= %s
                   RETURNING key""",
                (key, now + timedelta(milliseconds=ttl_ms), now),
            )
            won = await cursor.fetchone() is not None
            await conn.execute("DELETE FROM slack_replays WHERE expires_at <= %s", (now,))
    except (psycopg.Error, OSError, TimeoutError):
        log.warning("neither Redis nor Postgres answered: a replayed Slack request cannot be told apart")
        return Claimed(key, "none")
    return Claimed(key, "postgres") if won else None


async def release(bot: BotContext, claimed: Claimed) -> None:
    """Give a claim back (the request it guarded failed, so Slack's retry must run)."""
    try:
        if claimed.store == "redis":
            await bot.storage.redis.delete(PREFIX + claimed.key)
        elif claimed.store == "postgres":
            async with bot.storage.autocommit(timeout=2.0) as conn:
                await conn.execute("DELETE FROM slack_replays WHERE key = %s", (claimed.key,))
    except (RedisError, psycopg.Error, OSError, TimeoutError):
        log.warning("a failed Slack request's replay claim could not be given back; it expires by itself")


def replay_ttl(timestamp: str, now: float | None = None) -> float:
    """How long a request signed at `timestamp` still verifies: until `timestamp` + the window (a request may be
    signed up to the window ahead of our clock), at least a second."""
    wall = time.time() if now is None else now
    return float(
        min(2 * SLACK_TIMESTAMP_WINDOW, max(1.0, int(timestamp) + SLACK_TIMESTAMP_WINDOW - wall + 1))
    )


async def first_delivery(
    bot: BotContext,
    replays: ReplayClaims,
    body: bytes,
    timestamp: str,
    signature: str,
    retry_num: str | None,
) -> list[Claimed] | None:
    """Claim a verified request. The claims when it is the first delivery (run it); None when it is a replay — the
    same signature seen within the window, or a Slack retry (`X-Slack-Retry-Num`) of a body already received."""
    ttl = replay_ttl(timestamp)
    signature_key, body_key = "sig:" + signature, "body:" + hashlib.sha256(body).hexdigest()
    try:
        signature_new, body_new = await replays.claim_in_redis(signature_key, body_key, ttl)
    except RedisError:  # one key at a time, each falling back to Postgres
        by_signature = await claim(bot, signature_key, ttl)
        if by_signature is None:
            return None
        by_body = await claim(bot, body_key, ttl)
    else:
        by_signature = Claimed(signature_key, "redis") if signature_new else None
        by_body = Claimed(body_key, "redis") if body_new else None
    if by_signature is None:
        return None
    if by_body is None and retry_num is not None:
        return None
    return [c for c in (by_signature, by_body) if c is not None]


#: The most requests' claims one Redis command carries.
MAX_BATCH = 100
#: SET NX PX of each KEYS[i] for ARGV[i] ms, in order; 1 for each key set, 0 for each held already. In order, so
#: the same signature twice in one batch is claimed once, as two commands would.
_CLAIM_ALL = """
local claimed = {}
for i = 1, #KEYS do
  claimed[i] = redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[i]) and 1 or 0
end
return claimed
"""


@dataclass
class _Waiting:
    keys: tuple[str, str]
    ttl_ms: int
    claimed: asyncio.Future[tuple[bool, bool]]


class ReplayClaims:
    """The Redis claims of Slack requests arriving together, in one command (group commit, as WebhookStore does
    for webhooks): every Slack request pays for its claims before its ack, and redis-py's own cost per command
    was a fifth of the ack path's CPU in a py-spy profile of the ack benchmark (200 requests in flight). The
    first request after a quiet moment is claimed at once, alone; the ones that arrive while a command is in
    flight go together in the next, so nothing waits for a timer. Each request still learns its own answer, and
    only after Redis has set its keys. When the command fails, every request in it gets the error and takes
    the one-key-at-a-time path with its Postgres fallback."""

    def __init__(self, bot: BotContext) -> None:
        self.bot = bot
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def claim_in_redis(
        self, signature_key: str, body_key: str, ttl_seconds: float
    ) -> tuple[bool, bool]:
        """(signature new, body new). Both keys are claimed even when the signature is a replay, which changes
        nothing: the first delivery claimed that body with the same TTL."""
        ttl_ms = max(1, int(ttl_seconds * 1000))
        waiting = _Waiting((signature_key, body_key), ttl_ms, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._claim_all(), name="slack-replay-claims")
        return await asyncio.shield(waiting.claimed)  # a client that hangs up does not cancel the others'

    async def _claim_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            keys = [PREFIX + key for waiting in batch for key in waiting.keys]
            ttls = [waiting.ttl_ms for waiting in batch for _ in waiting.keys]
            try:
                claimed = await self.bot.storage.redis.eval(_CLAIM_ALL, len(keys), *keys, *ttls)  # type: ignore[misc]
            except Exception as exc:
                for waiting in batch:
                    if not waiting.claimed.done():
                        waiting.claimed.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutdown): nobody is told "claimed"
                for waiting in [*batch, *self._queue]:
                    waiting.claimed.cancel()
                raise
            for index, waiting in enumerate(batch):
                if not waiting.claimed.done():
                    waiting.claimed.set_result((bool(claimed[2 * index]), bool(claimed[2 * index + 1])))
