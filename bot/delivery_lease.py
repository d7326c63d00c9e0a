"""A delivery pass keeps its events' lease, and its incidents' Redis locks, for as long as it runs.

A pass claims its events for DELIVERY_LEASE_SECONDS and locks their incidents in Redis for as long. But a pass
can last longer than that: its posts wait on Slack's pace, a channel's Retry-After, a slow Postgres. Once the
lease had run out, another worker claimed the same events and delivered them beside the first. Its claims on
Slack posts (bot/slack_once.py) were stamped with the first pass's start, so a post the first worker had claimed
a moment ago looked abandoned: the second looked it up before Slack had stored it, found nothing and posted it
again (the post-mortem draft, the last post of a resolved incident, showed it first in tests/faults). So while a
pass runs, its lease and locks are renewed every third of the lease, as a running rollback renews its lease
(bot/rollback_worker.py); a worker that dies stops renewing, and its events are taken over a lease later.

Renewals are conditional on still holding what is renewed (the rows `claimed_by` this replica and not finished,
the locks holding this replica's id), so a pass never extends what another worker has taken since.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import redis.exceptions

from bot.context import BotContext

log = logging.getLogger(__name__)

_RENEW_CLAIMS = """UPDATE pd_webhooks SET claimed_until = %s
                   WHERE id = ANY(%s) AND claimed_by = %s AND claimed_until IS NOT NULL"""
#: Each lock (KEYS) is given another ARGV[2] ms only while it holds ARGV[1], this replica's id.
_RENEW_LOCKS = """
for _, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then redis.call('pexpire', key, ARGV[2]) end
end
return 0"""


async def _renew(
    bot: BotContext, ids: Sequence[int], locks: Sequence[str], until: datetime, lease: timedelta
) -> None:
    try:
        async with bot.storage.pool.connection() as conn:
            await conn.execute(_RENEW_CLAIMS, (until, list(ids), bot.replica))
    except Exception:
        log.warning("a delivery pass could not renew its lease; retrying", exc_info=True)
    if not locks:
        return
    # A Redis that does not answer: the Postgres claims (renewed above) still protect.
    with contextlib.suppress(redis.exceptions.RedisError):
        await bot.storage.redis.eval(
            _RENEW_LOCKS, len(locks), *locks, bot.replica, int(lease.total_seconds() * 1000)
        )


async def _keep(
    bot: BotContext, ids: Sequence[int], locks: Sequence[str], now: datetime, lease: timedelta
) -> None:
    started = bot.monotonic()
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        # The pass's clock moved on by the time elapsed: the lease is on the clock that claimed it.
        at = now + timedelta(seconds=max(0.0, bot.monotonic() - started))
        await _renew(bot, ids, locks, at + lease, lease)


@contextlib.asynccontextmanager
async def kept(
    bot: BotContext, ids: Sequence[int], locks: Sequence[str], now: datetime, lease: timedelta
) -> AsyncIterator[None]:
    """Renew the lease on the events `ids` and the Redis `locks` while the block runs."""
    keeper = asyncio.create_task(_keep(bot, ids, locks, now, lease), name="delivery-lease")
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
