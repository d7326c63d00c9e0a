"""The delivery worker in batches: a claimed batch folded at once, the urgent events first, each incident in order,
and every Slack effect still once — across a redelivered batch, a worker that died before marking its batch, and
two workers draining one outbox. Real route, real Postgres and Redis, the recording Slack server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from handlers.incidents.fold import apply_events
from integrations.pagerduty_webhooks import parse_webhook
from stand_ins.recording_slack import RecordingSlackServer
from tests import pd_payloads as pd
from tests.faults.incident_stream import Event, check_slack, incident_stream
from tests.harness import BotUnderTest, running_bot
from tests.test_incidents import ALERTS, INCIDENTS, SECRET_NEW, T0, send

BATCH_OF_NOTES = 130  # more than one claimed batch (bot/delivery.py BATCH)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)],
            "storm_threshold": 0,  # every incident its own root: this is about the threads
            "slack_posts_per_second": 1000.0,  # Slack's pace is not what these tests are about
        }
    )


async def _pending(database_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute("SELECT count(*) FROM pd_webhooks WHERE status = 'pending'")
        ).fetchone()
    return int(row[0]) if row else 0


def _thread(bot: BotUnderTest, channel: str, incident_id: str) -> list[str]:
    """The texts of an incident's thread in `channel`, in the order Slack stored them."""
    channel_id = bot.slack.channel_id(channel)
    for message in bot.slack.messages(channel_id):
        metadata = message.metadata or {}
        if (
            message.thread_ts is None
            and (metadata.get("event_payload") or {}).get("incident_id") == incident_id
        ):
            return [m.text or "" for m in bot.slack.thread(channel, message.ts)]
    return []


def _trigger(incident_id: str, number: int, at: datetime) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, number=number, title=f"Queue backlog {number}", created_at=T0)
    return pd.event("incident.triggered", inc, occurred_at=at, event_id=f"{incident_id}-trigger")


async def test_a_resolve_overtakes_queued_notes_of_other_incidents(
    bot: BotUnderTest, database_url: str
) -> None:
    noisy = [f"PNOISY{n}" for n in range(5)]
    for n, incident_id in enumerate(["PURGENT", *noisy]):
        assert await send(bot, _trigger(incident_id, 100 + n, T0 + timedelta(seconds=n))) == 202
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=1))
    alice = ("PUSER01", "Alice Example", "alice@example.com")
    for n in range(BATCH_OF_NOTES):  # queued first, and older than the resolve
        incident_id = noisy[n % len(noisy)]
        inc = pd.incident(id=incident_id, number=101 + n % len(noisy), created_at=T0)
        note = pd.event(
            "incident.annotated",
            inc,
            occurred_at=T0 + timedelta(minutes=2, seconds=n),
            event_id=f"{incident_id}-note-{n:03d}",
            agent=alice,
            content=f"note {n:03d}",
        )
        assert await send(bot, note) == 202
    resolved = pd.incident(id="PURGENT", number=100, status="resolved", created_at=T0)
    resolve = pd.event(
        "incident.resolved",
        resolved,
        occurred_at=T0 + timedelta(minutes=9),
        event_id="PURGENT-resolve",
        agent=alice,
    )
    assert await send(bot, resolve) == 202

    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=10))  # one pass: one claimed batch
    await bot.settle()
    assert _thread(bot, ALERTS, "PURGENT")[:1] == [":white_check_mark: Resolved by Alice Example"]
    assert await _pending(database_url) >= BATCH_OF_NOTES - 100  # the notes it overtook are still queued

    for _ in range(10):
        if await bot.runtime.delivery.run_once(T0 + timedelta(minutes=10)) == 0:
            break
    await bot.settle()
    for channel in (ALERTS, INCIDENTS):
        for k, incident_id in enumerate(noisy):
            expected = [
                f":memo: Note by Alice Example: note {n:03d}" for n in range(k, BATCH_OF_NOTES, len(noisy))
            ]
            assert _thread(bot, channel, incident_id) == expected, f"{channel} {incident_id}: out of order"


async def test_a_note_queued_before_a_resolve_goes_with_it_and_stays_before_it(
    bot: BotUnderTest, database_url: str
) -> None:
    """An incident's urgent event pulls its earlier events along: priority never reorders one thread."""
    noisy = [f"PNOISY{n}" for n in range(4)]
    for n, incident_id in enumerate(["PURGENT", *noisy]):
        assert await send(bot, _trigger(incident_id, 100 + n, T0 + timedelta(seconds=n))) == 202
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=1))
    alice = ("PUSER01", "Alice Example", "alice@example.com")
    urgent = pd.incident(id="PURGENT", number=100, created_at=T0)
    first_note = pd.event(
        "incident.annotated",
        urgent,
        occurred_at=T0 + timedelta(minutes=2),
        event_id="PURGENT-note",
        agent=alice,
        content="before the resolve",
    )
    assert await send(bot, first_note) == 202
    for n in range(BATCH_OF_NOTES):
        incident_id = noisy[n % len(noisy)]
        inc = pd.incident(id=incident_id, number=101 + n % len(noisy), created_at=T0)
        note = pd.event(
            "incident.annotated",
            inc,
            occurred_at=T0 + timedelta(minutes=3, seconds=n),
            event_id=f"{incident_id}-note-{n:03d}",
            agent=alice,
            content=f"note {n:03d}",
        )
        assert await send(bot, note) == 202
    resolved = pd.incident(id="PURGENT", number=100, status="resolved", created_at=T0)
    resolve = pd.event(
        "incident.resolved",
        resolved,
        occurred_at=T0 + timedelta(minutes=9),
        event_id="PURGENT-resolve",
        agent=alice,
    )
    assert await send(bot, resolve) == 202
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=10))
    await bot.settle()
    assert _thread(bot, ALERTS, "PURGENT")[:2] == [
        ":memo: Note by Alice Example: before the resolve",
        ":white_check_mark: Resolved by Alice Example",
    ]


async def test_a_batch_folded_twice_leaves_the_same_incident(bot: BotUnderTest, database_url: str) -> None:
    """A worker killed after folding its batch, before marking it delivered: the next worker folds it again."""
    events = [parse_webhook(e.body) for e in incident_stream(3, start=T0)]
    await apply_events(bot.runtime.bot, events, T0 + timedelta(minutes=1))
    query = (
        "SELECT id, status, snapshot, snapshot_at, triggered_at, acknowledged_at, resolved_at FROM incidents"
    )
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        once = await (await conn.execute(query + " ORDER BY id")).fetchall()
        await apply_events(bot.runtime.bot, list(reversed(events)), T0 + timedelta(minutes=1))
        twice = await (await conn.execute(query + " ORDER BY id")).fetchall()
    assert once == twice
    assert [row[1] for row in once] == ["resolved", "resolved", "resolved"]


async def _send_all(bot: BotUnderTest, events: list[Event]) -> None:
    for event in events:
        response = await bot.client.post(
            "/pagerduty/webhook",
            content=event.body,
            headers={"Content-Type": "application/json", **sign_pagerduty_webhook(SECRET_NEW, event.body)},
        )
        assert response.status_code == 202


async def test_a_batch_whose_worker_died_before_marking_it_is_not_posted_again(
    bot: BotUnderTest, database_url: str
) -> None:
    """Every Slack effect was claimed and posted, then the worker died before the batch's one UPDATE marked it
    delivered: when the lease ends, the events are delivered again and nothing reaches Slack twice."""
    now = datetime.now(UTC)
    events = incident_stream(20, start=now - timedelta(minutes=3))
    await _send_all(bot, events)
    now = datetime.now(UTC) + timedelta(seconds=1)  # every event stored by now is due
    for _ in range(10):
        if await bot.runtime.delivery.run_once(now) == 0:
            break
    await bot.settle()
    posted = len(bot.slack.calls_to("chat.postMessage"))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE pd_webhooks SET status = 'pending', delivered_at = NULL, claimed_until = NULL"
        )
    later = now + timedelta(seconds=bot.runtime.bot.settings.delivery_lease_seconds + 1)
    for _ in range(10):
        if await bot.runtime.delivery.run_once(later) == 0:
            break
    await bot.settle()
    assert posted == 20 * 2 * 6  # a root, four replies and the draft (or its link) per incident and channel
    assert len(bot.slack.calls_to("chat.postMessage")) == posted
    assert await _pending(database_url) == 0
    check_slack(bot.slack, events, in_order=True)


@pytest.fixture
async def replicas(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> AsyncIterator[tuple[BotUnderTest, BotUnderTest]]:
    async with running_bot(settings, catalog, slack) as one, running_bot(settings, catalog, slack) as two:
        yield one, two


async def test_two_workers_and_a_redelivered_stream_post_every_event_once_in_order(
    replicas: tuple[BotUnderTest, BotUnderTest], database_url: str
) -> None:
    one, two = replicas
    now = datetime.now(UTC)
    events = incident_stream(40, start=now - timedelta(minutes=3))
    await asyncio.gather(_send_all(one, events), _send_all(two, events))  # PagerDuty redelivers every event
    now = datetime.now(UTC) + timedelta(seconds=1)
    for _ in range(20):
        counts = await asyncio.gather(one.runtime.delivery.run_once(now), two.runtime.delivery.run_once(now))
        if sum(counts) == 0 and await _pending(database_url) == 0:
            break
    await one.settle()
    await two.settle()
    assert await _pending(database_url) == 0
    check_slack(one.slack, events, in_order=True)


def _ack(incident_id: str, number: int, at: datetime) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, number=number, status="acknowledged", created_at=T0)
    alice = ("PUSER01", "Alice Example", "alice@example.com")
    return pd.event("incident.acknowledged", inc, occurred_at=at, event_id=f"{incident_id}-ack", agent=alice)


async def _drain(bot: BotUnderTest, now: datetime) -> None:
    for _ in range(20):
        if await bot.runtime.delivery.run_once(now) == 0:
            break
    await bot.settle()


async def test_root_edits_stay_within_the_workspace_allowance_and_end_at_the_latest_state(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> None:
    allowance = 3
    tight = settings.model_copy(update={"slack_updates_per_minute": allowance})
    async with running_bot(tight, catalog, slack) as bot:
        ids = [f"PEDIT{n}" for n in range(6)]
        for n, incident_id in enumerate(ids):
            assert await send(bot, _trigger(incident_id, 200 + n, T0 + timedelta(seconds=n))) == 202
        await _drain(bot, T0 + timedelta(minutes=1))
        for n, incident_id in enumerate(ids):
            assert await send(bot, _ack(incident_id, 200 + n, T0 + timedelta(minutes=2, seconds=n))) == 202
        await _drain(bot, T0 + timedelta(minutes=3))
        minutes = 0
        while True:
            before = len(slack.calls_to("chat.update"))
            await bot.runtime.delivery.run_once(T0 + timedelta(minutes=4 + minutes))
            edits = len(slack.calls_to("chat.update")) - before
            assert edits <= allowance
            if edits == 0:
                break
            minutes += 1
            # The allowance is per minute, counted in Redis for every replica: the next minute starts afresh.
            await bot.runtime.bot.storage.redis.delete("slack:budget:workspace:update")
        assert minutes >= len(ids) * 2 // allowance  # 12 edits (6 incidents, 2 channels) took several minutes
        for channel in (ALERTS, INCIDENTS):
            for message in slack.messages(slack.channel_id(channel)):
                if message.thread_ts is None:
                    assert (message.text or "").startswith("Acknowledged:"), message.text


async def test_digest_lines_show_each_incidents_state_and_the_storm_is_promoted_after_it_passes(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> None:
    stormy = settings.model_copy(update={"storm_threshold": 3})
    async with running_bot(stormy, catalog, slack) as bot:
        ids = [f"PDIG{n:02d}" for n in range(24)]
        for n, incident_id in enumerate(ids):
            assert await send(bot, _trigger(incident_id, 300 + n, T0 + timedelta(seconds=n))) == 202
        await _drain(bot, T0 + timedelta(seconds=20))
        [digest] = [
            c for c in slack.calls_to("chat.postMessage", channel=ALERTS) if "storm" in (c.text or "")
        ]
        listed = json.dumps(digest.blocks)
        in_digest = [n for n in range(len(ids)) if f"#{300 + n}" in listed]
        assert len(in_digest) >= 3 and "_triggered_" in listed
        acked = in_digest[-1]
        assert await send(bot, _ack(ids[acked], 300 + acked, T0 + timedelta(seconds=25))) == 202
        await _drain(bot, T0 + timedelta(seconds=30))
        await _drain(bot, T0 + timedelta(seconds=35))  # the digest's debounced edit
        channel_id = slack.channel_id(ALERTS)
        [shown] = [m for m in slack.messages(channel_id) if m.ts == digest.response["ts"]]
        line = next(ln for ln in json.dumps(shown.blocks).split("\\n") if f"#{300 + acked}" in ln)
        assert "_acknowledged_" in line, line

        # The storm passes: every incident still listed only in the digest gets its own root.
        later = T0 + timedelta(minutes=5)
        for step in range(30):
            await bot.runtime.delivery.run_once(later + timedelta(seconds=step))
        await bot.settle()
        for channel in (ALERTS, INCIDENTS):
            roots_ = {
                (m.metadata or {}).get("event_payload", {}).get("incident_id")
                for m in slack.messages(slack.channel_id(channel))
                if m.thread_ts is None and (m.metadata or {}).get("event_type") == "mira_incident_root"
            }
            assert set(ids) <= roots_, f"{channel}: not promoted: {set(ids) - roots_}"
