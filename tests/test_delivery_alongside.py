"""While a long pass posts at Slack's pace, the edits that run alongside it show the state of the incidents whose
deliveries are done, and leave alone the ones still being delivered: their root is edited after their own posts,
so what one incident does in Slack keeps one order (the README's console transcript depends on it). Real route,
Postgres, Redis and the recording Slack server pacing nothing (the bot paces itself at 1 post/s/channel); the
worker driven with an injected clock."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr

from bot.catalog import Catalog
from bot.settings import Settings
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import running_bot
from tests.test_incidents import ALERTS, SECRET_NEW, T0, send
from tests.test_storm_digest_thread import _ack, _drain, _note, _roots, _trigger

BUSY, DONE = 700, 701  # BUSY: an acknowledgement and four notes (five posts per channel); DONE: one post


async def test_a_long_pass_edits_the_roots_of_incidents_it_is_done_with_and_not_of_those_it_is_still_delivering(
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
        for number in (BUSY, DONE):
            assert await send(bot, _trigger(number, T0)) == 202
        await _drain(bot, T0 + timedelta(seconds=10))
        roots = _roots(slack, ALERTS)
        busy_ts, done_ts = roots[BUSY].ts, roots[DONE].ts

        assert await send(bot, _ack(DONE, T0 + timedelta(seconds=20))) == 202
        assert await send(bot, _ack(BUSY, T0 + timedelta(seconds=20))) == 202
        for n in range(4):
            note = _note(BUSY, T0 + timedelta(seconds=21 + n), f"still on it {n}", key=f"note{n}")
            assert await send(bot, note) == 202
        # One pass, about six seconds of posts at the bot's pace; then the edits left for later passes.
        await bot.runtime.delivery.run_once(T0 + timedelta(seconds=40))
        await _drain(bot, T0 + timedelta(seconds=60))

        def edits(ts: str) -> list[float]:
            return [c.at for c in slack.calls_to("chat.update", channel=ALERTS) if c.body.get("ts") == ts]

        busy_posts = [
            c.at
            for c in slack.calls_to("chat.postMessage", channel=ALERTS)
            if c.body.get("thread_ts") == busy_ts
        ]
        assert len(busy_posts) == 5
        assert edits(done_ts) and min(edits(done_ts)) < max(busy_posts), (
            "DONE's state waited for the pass's end"
        )
        assert edits(busy_ts) and min(edits(busy_ts)) > max(busy_posts), (
            "BUSY's root edited between its posts"
        )
