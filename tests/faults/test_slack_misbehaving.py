"""Slack misbehaving: bursts of 429 with Retry-After, 5xx, and 5xx after the message was stored. Every message is
delivered once, each thread in event order, and the bot never calls a channel sooner than Retry-After allows.

The last promise is checked causally on what the recording server received: after a 429 answered for a channel,
no call for that method and channel arrives before the Retry-After has passed. (Redis keeps the slot with
millisecond resolution, hence the 10 ms allowance; that is precision, not a performance bound.)
"""

from __future__ import annotations

import asyncio
import contextlib

from stand_ins.recording_slack import RecordingSlackServer, SlackCall
from tests.faults.harness import FaultWorld, until
from tests.faults.incident_stream import check_slack, incident_stream

REDIS_EXPIRY_RESOLUTION = 0.01


def retry_after_violations(slack: RecordingSlackServer) -> list[tuple[SlackCall, SlackCall]]:
    """(the 429, a call for the same method and channel that came before its Retry-After had passed)."""
    calls = slack.calls
    violations = []
    for refused in calls:
        if refused.status != 429 or refused.retry_after is None or not isinstance(refused.channel, str):
            continue
        channel = slack.channel_id(refused.channel)
        until_at = refused.at + refused.retry_after - REDIS_EXPIRY_RESOLUTION
        for later in calls:
            if (
                later is not refused
                and later.method == refused.method
                and isinstance(later.channel, str)
                and slack.channel_id(later.channel) == channel
                and refused.at < later.at < until_at
            ):
                violations.append((refused, later))
    return violations


def _accepted_posts(slack: RecordingSlackServer) -> int:
    return sum(1 for call in slack.calls_to("chat.postMessage") if call.status == 200)


async def misbehave(slack: RecordingSlackServer) -> None:
    """Every 20 accepted posts, the next burst: 429s, plain 5xx, a 5xx after storing, 429s on edits."""
    bursts = [
        lambda: slack.fail_next("chat.postMessage", 429, retry_after=1, count=3),
        lambda: slack.fail_next("chat.postMessage", 500, count=2),
        lambda: slack.fail_after_accept("chat.postMessage", 500),
        lambda: slack.fail_next("chat.update", 429, retry_after=2, count=2),
        lambda: slack.fail_next("chat.postMessage", 503, count=1),
        lambda: slack.fail_next("chat.postMessage", 429, retry_after=2, count=2),
        lambda: slack.fail_after_accept("chat.postMessage", 502),
    ]
    accepted = 0
    for burst in bursts * 3:
        accepted += 20
        await slack.wait_until(lambda n=accepted: _accepted_posts(slack) >= n, timeout=300)
        burst()


async def test_429_bursts_and_5xx_every_message_once_in_order_never_before_retry_after(
    world: FaultWorld,
) -> None:
    bot = await world.start_bot("bot", slack_posts_per_second=20)
    events = incident_stream(15)
    chaos = asyncio.create_task(misbehave(world.slack))
    try:
        for event in events:
            assert await bot.webhook(event.body) == 202

        async def delivered() -> bool:
            return await world.count("SELECT count(*) FROM pd_webhooks WHERE status <> 'delivered'") == 0

        await until(delivered, within=180, what="every event delivered through Slack's 429s and 5xx")
    finally:
        chaos.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await chaos
    check_slack(world.slack, events, in_order=True)
    statuses = {call.status for call in world.slack.calls}
    assert {429, 500}.issubset(statuses)  # the faults really happened
    assert [
        c for c in world.slack.calls_to("chat.postMessage") if c.status == 500 and c.response
    ]  # stored, 500
    assert retry_after_violations(world.slack) == []
