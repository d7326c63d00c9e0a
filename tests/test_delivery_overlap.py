"""A delivery pass that waits on Slack's pace does not hold back the rest of the outbox: once it has run a while,
the worker's loop claims the next batch beside it (bot/delivery_overlap.py). In the 2,000-event storm benchmark a
batch of resolved incidents posting their post-mortem drafts at one post a second kept the storm digest's lines
waiting for half a minute. Real route, Postgres, Redis and the recording Slack server (the bot paces itself at 1
post/s/channel); the worker's own loop pass, on an injected clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.delivery_overlap import overlapping
from bot.settings import Settings
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import running_bot
from tests.test_incidents import ALERTS, SECRET_NEW, T0, send
from tests.test_storm_digest_thread import _ack, _drain, _note, _roots, _trigger

BUSY, LATE = (
    710,
    711,
)  # BUSY: an acknowledgement and six notes (seven posts per channel); LATE: a new incident
NOTES = 6


async def test_an_incident_stored_while_a_long_pass_posts_is_delivered_beside_it_not_after_it(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> None:
    paced = settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)],
            "storm_threshold": 0,
            "slack_posts_per_second": 1.0,
        }
    )
    async with running_bot(paced, catalog, slack) as bot:
        assert await send(bot, _trigger(BUSY, T0)) == 202
        await _drain(bot, T0 + timedelta(seconds=10))
        busy_ts = _roots(slack, ALERTS)[BUSY].ts
        assert await send(bot, _ack(BUSY, T0 + timedelta(seconds=20))) == 202
        for n in range(NOTES):
            note = _note(BUSY, T0 + timedelta(seconds=21 + n), f"still on it {n}", key=f"note{n}")
            assert await send(bot, note) == 202

        def busy_posts() -> list[float]:
            return [
                c.at
                for c in slack.calls_to("chat.postMessage", channel=ALERTS)
                if c.body.get("thread_ts") == busy_ts
            ]

        bot.runtime.bot.clock = lambda: T0 + timedelta(seconds=40)
        loop_pass = asyncio.create_task(bot.runtime.delivery.run_pass())
        for _ in range(100):  # until BUSY's pass has begun posting (its first reply in the thread)
            if busy_posts():
                break
            await asyncio.sleep(0.05)
        assert busy_posts(), "BUSY's pass did not begin"
        assert await send(bot, _trigger(LATE, T0 + timedelta(seconds=30))) == 202
        await asyncio.wait_for(loop_pass, timeout=60)
        await _drain(bot, T0 + timedelta(seconds=60))

        roots = _roots(slack, ALERTS)
        assert LATE in roots
        [late_root] = [
            c.at
            for c in slack.calls_to("chat.postMessage", channel=ALERTS)
            if c.body.get("thread_ts") is None and c.response.get("ts") == roots[LATE].ts
        ]
        assert len(busy_posts()) == 1 + NOTES
        assert late_root < max(busy_posts()), "LATE's root waited for BUSY's pass to end"


async def test_passes_run_beside_a_long_one_up_to_the_limit_and_an_error_waits_for_the_others() -> None:
    running, most, started = 0, 0, 0

    async def one_pass() -> int:
        """The first pass lasts 2.5 s; beside it, short passes that find work twice and then none."""
        nonlocal running, most, started
        started += 1
        me = started
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(2.5 if me == 1 else 0.01)
            return 0 if me in (1, 4) else 1
        finally:
            running -= 1

    assert await overlapping(one_pass, asyncio.Event(), lambda: running, at_once=2) is False
    assert (started, most) == (4, 2)  # the short ones ran beside the long one, never more than two at once

    finished: list[str] = []

    async def failing_or_slow() -> int:
        if not finished:
            finished.append("slow started")
            await asyncio.sleep(2.2)
            finished.append("slow ended")
            return 0
        raise RuntimeError("a pass failed")

    with pytest.raises(RuntimeError, match="a pass failed"):
        await overlapping(failing_or_slow, asyncio.Event(), lambda: 0, at_once=2)
    assert finished == ["slow started", "slow ended"]  # the failure did not cancel the pass beside it
