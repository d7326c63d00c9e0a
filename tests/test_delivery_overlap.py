"""A delivery pass that waits on Slack's pace does not hold back the rest of the outbox: once it has run a while,
the worker's loop claims the next batch beside it (bot/delivery_overlap.py). In the 2,000-event storm benchmark a
batch of resolved incidents posting their post-mortem drafts at one post a second kept the storm digest's lines
waiting for half a minute. Real route, Postgres, Redis and the recording Slack server (the bot paces itself at 1
post/s/channel); the worker's own loop pass, on an injected clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.delivery_overlap import overlapping
from bot.settings import Settings
from handlers.incidents import root_edits, storm
from handlers.incidents.fold import apply_events
from handlers.incidents.threads import mark_digest_dirty
from integrations.pagerduty_webhooks import parse_webhook
from stand_ins.recording_slack import RecordingSlackServer
from tests import pd_payloads as pd
from tests.harness import running_bot
from tests.test_incidents import ALERTS, SECRET_NEW, T0, send
from tests.test_storm_digest_thread import _ack, _drain, _note, _resolve, _roots, _trigger

BUSY, LATE = (
    710,
    711,
)  # BUSY: an acknowledgement and six notes (seven posts per channel); LATE: a new incident
NOTES = 6
UPDATES_KEY = "slack:budget:workspace:update"  # bot/slack_budget.py: the minute's chat.update count


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


async def _blocked_behind(database_url: str, holder: int) -> int:
    """How many sessions wait, directly or in line behind another, on the locks of session `holder`."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        row = await (
            await conn.execute(
                """WITH direct AS (SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid)))
                   SELECT count(*) FROM pg_stat_activity
                   WHERE pid IN (SELECT pid FROM direct)
                      OR pg_blocking_pids(pid) && ARRAY(SELECT pid FROM direct)""",
                (holder,),
            )
        ).fetchone()
    return int(row[0]) if row else 0


async def test_a_root_edit_shows_a_resolve_folded_between_reading_the_dirty_roots_and_claiming_one(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer, database_url: str
) -> None:
    """Seen in the storm benchmark once passes ran side by side: `flush_roots` read an acknowledged incident as
    dirty, another pass folded its resolve (which keeps the older mark), and the claim then cleared the mark
    while the edit showed the row as first read: "Acknowledged" for good. The claim returns the row as it is."""
    signed = settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)]})
    async with running_bot(signed, catalog, slack) as bot:
        number, incident_id = 720, "PSD0720"
        assert await send(bot, _trigger(number, T0)) == 202
        await _drain(bot, T0 + timedelta(seconds=10))
        root_ts = _roots(slack, ALERTS)[number].ts
        acked_at = T0 + timedelta(seconds=20)
        assert await send(bot, _ack(number, acked_at)) == 202
        assert await bot.runtime.delivery.run_once(acked_at) == 1  # its root dirty, not edited yet: not quiet
        edit_at = acked_at + timedelta(seconds=10)
        resolve = parse_webhook(pd.body(_resolve(number, acked_at + timedelta(seconds=5))))
        runtime = bot.runtime.bot

        async with await psycopg.AsyncConnection.connect(database_url) as holder, holder.transaction():
            locked = await holder.execute("SELECT 1 FROM incidents WHERE id = %s FOR UPDATE", (incident_id,))
            assert locked.rowcount == 1
            fold = asyncio.create_task(apply_events(runtime, [resolve], edit_at))
            for _ in range(200):
                if await _blocked_behind(database_url, holder.info.backend_pid) == 1:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the fold did not wait for the row")
            edits = asyncio.create_task(root_edits.flush_roots(runtime, runtime.budget, edit_at))
            for _ in range(200):  # read the acknowledged row as dirty, and wait to claim it behind the fold
                if await _blocked_behind(database_url, holder.info.backend_pid) == 2:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the edit did not wait behind the fold")
        await fold
        assert await edits == 2  # both channels' roots

        shown = [
            c.body["text"]
            for c in slack.calls_to("chat.update", channel=ALERTS)
            if c.body.get("ts") == root_ts
        ]
        assert shown and shown[-1].startswith("Resolved:"), shown


async def test_two_passes_trying_one_digest_edit_spend_one_edit_of_the_minute_not_two(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer, database_url: str
) -> None:
    """Every pass ends with the digest edits, and passes side by side try the same dirty digest at once: only the
    one that claims it may take an edit from the workspace's minute allowance. Each loser took one too, and in
    the storm benchmark the minute ran out with half its edits unmade: the roots' resolves waited a minute."""
    stormy = settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)],
            "storm_threshold": 3,
            "slack_posts_per_second": 1000.0,
        }
    )
    async with running_bot(stormy, catalog, slack) as bot:
        for n, number in enumerate(range(730, 740)):
            assert await send(bot, _trigger(number, T0 + timedelta(seconds=n))) == 202
        await _drain(bot, T0 + timedelta(seconds=20))
        runtime = bot.runtime.bot
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            rows = await (await conn.execute("SELECT id FROM storm_digests ORDER BY id")).fetchall()
        assert len(rows) == 2  # one digest in each channel
        at = T0 + timedelta(minutes=1)
        for (digest_id,) in rows:
            await mark_digest_dirty(runtime, digest_id, at)
        edits_before = len(slack.calls_to("chat.update"))
        used_before = int(await runtime.storage.redis.get(UPDATES_KEY) or 0)

        later = at + timedelta(seconds=5)
        await asyncio.gather(
            *(storm.flush_digests(runtime, runtime.budget, later, edits_only=True) for _ in "ab")
        )

        assert len(slack.calls_to("chat.update")) - edits_before == 2  # each digest edited once
        assert int(await runtime.storage.redis.get(UPDATES_KEY) or 0) - used_before == 2
