"""The delivery worker in batches: a claimed batch folded at once, the urgent events first, each incident in order,
and every Slack effect still once — across a redelivered batch, a worker that died before marking its batch, and
two workers draining one outbox. Real route, real Postgres and Redis, the recording Slack server."""

from __future__ import annotations

import asyncio
import json
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

NOISY = 130  # incidents with a note queued: more than one claim takes (bot/delivery.py BATCH_INCIDENTS)
ALICE = ("PUSER01", "Alice Example", "alice@example.com")


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
    """The lines of an incident's thread in `channel`, in the order Slack stored them (a timeline reply carries
    several events, a line each)."""
    channel_id = bot.slack.channel_id(channel)
    for message in bot.slack.messages(channel_id):
        metadata = message.metadata or {}
        if (
            message.thread_ts is None
            and (metadata.get("event_payload") or {}).get("incident_id") == incident_id
        ):
            return [
                line for m in bot.slack.thread(channel, message.ts) for line in (m.text or "").split("\n")
            ]
    return []


def _trigger(incident_id: str, number: int, at: datetime) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, number=number, title=f"Queue backlog {number}", created_at=T0)
    return pd.event("incident.triggered", inc, occurred_at=at, event_id=f"{incident_id}-trigger")


def _note(incident_id: str, number: int, at: datetime, text: str) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, number=number, created_at=T0)
    return pd.event(
        "incident.annotated", inc, occurred_at=at, event_id=f"{incident_id}-{text}", agent=ALICE, content=text
    )


def _resolve(incident_id: str, number: int, at: datetime) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, number=number, status="resolved", created_at=T0)
    return pd.event("incident.resolved", inc, occurred_at=at, event_id=f"{incident_id}-resolve", agent=ALICE)


async def _noisy_incidents_with_queued_notes(bot: BotUnderTest) -> list[str]:
    """PURGENT and NOISY other incidents with their roots; then a note queued for each of the others."""
    noisy = [f"PNOISY{n:03d}" for n in range(NOISY)]
    for n, incident_id in enumerate(["PURGENT", *noisy]):
        assert await send(bot, _trigger(incident_id, 100 + n, T0 + timedelta(seconds=n))) == 202
    for _ in range(10):
        if await bot.runtime.delivery.run_once(T0 + timedelta(minutes=3)) == 0:
            break
    for n, incident_id in enumerate(noisy):  # queued before the resolve, and older than it
        assert (
            await send(bot, _note(incident_id, 101 + n, T0 + timedelta(minutes=4, seconds=n), "noise")) == 202
        )
    return noisy


async def test_a_resolve_overtakes_queued_notes_of_other_incidents(
    bot: BotUnderTest, database_url: str
) -> None:
    noisy = await _noisy_incidents_with_queued_notes(bot)
    assert await send(bot, _resolve("PURGENT", 100, T0 + timedelta(minutes=9))) == 202

    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=10))  # one pass: one claim
    await bot.settle()
    assert _thread(bot, ALERTS, "PURGENT")[:1] == [":white_check_mark: Resolved by Alice Example"]
    assert await _pending(database_url) > 0  # the notes it overtook are still queued

    for _ in range(10):
        if await bot.runtime.delivery.run_once(T0 + timedelta(minutes=10)) == 0:
            break
    await bot.settle()
    for channel in (ALERTS, INCIDENTS):
        for incident_id in noisy:
            assert _thread(bot, channel, incident_id) == [":memo: Note by Alice Example: noise"], incident_id


async def test_a_note_queued_before_a_resolve_goes_with_it_and_stays_before_it(
    bot: BotUnderTest, database_url: str
) -> None:
    """An incident's urgent event pulls its earlier events along: priority never reorders one thread."""
    await _noisy_incidents_with_queued_notes(bot)
    assert await send(bot, _note("PURGENT", 100, T0 + timedelta(minutes=3, seconds=59), "before")) == 202
    assert await send(bot, _resolve("PURGENT", 100, T0 + timedelta(minutes=9))) == 202
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=10))
    await bot.settle()
    assert _thread(bot, ALERTS, "PURGENT")[:2] == [
        ":memo: Note by Alice Example: before",
        ":white_check_mark: Resolved by Alice Example",
    ]
    assert await _pending(database_url) > 0


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


async def send_events(bot: BotUnderTest, events: list[Event]) -> None:
    """Each event's body, signed as PagerDuty signs it, to the webhook route: stored (202)."""
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
    await send_events(bot, events)
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


async def test_two_workers_and_a_redelivered_stream_post_every_event_once_in_order(
    replicas: tuple[BotUnderTest, BotUnderTest], database_url: str
) -> None:
    one, two = replicas
    now = datetime.now(UTC)
    events = incident_stream(40, start=now - timedelta(minutes=3))
    # PagerDuty redelivers every event.
    await asyncio.gather(send_events(one, events), send_events(two, events))
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


async def test_in_a_storm_an_incidents_waiting_events_are_one_timeline_reply_posted_once(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer, database_url: str
) -> None:
    """During a storm Slack's per-channel rate is the bound: an incident's waiting events share one reply, a line
    each in their order, and that reply is posted once — across a redelivery and a worker that died after Slack
    took it but before its `ts` was recorded (found again by its metadata, never posted twice)."""
    stormy = settings.model_copy(update={"storm_threshold": 3})
    async with running_bot(stormy, catalog, slack) as bot:
        ids = [f"PTL{n:02d}" for n in range(12)]
        for n, incident_id in enumerate(ids):
            assert await send(bot, _trigger(incident_id, 400 + n, T0 + timedelta(seconds=n))) == 202
        await _drain(bot, T0 + timedelta(seconds=20))
        payloads = []
        for n, incident_id in enumerate(ids):
            at = T0 + timedelta(minutes=1, seconds=n)
            payloads += [
                _ack(incident_id, 400 + n, at),
                _note(incident_id, 400 + n, at + timedelta(seconds=20), "rolled back"),
                _resolve(incident_id, 400 + n, at + timedelta(seconds=40)),
            ]
        for payload in payloads:
            assert await send(bot, payload) == 202
        await _drain(bot, T0 + timedelta(minutes=2))
        timeline = [
            ":eyes: Acknowledged by Alice Example",
            ":memo: Note by Alice Example: rolled back",
            ":white_check_mark: Resolved by Alice Example",
        ]
        for channel in (ALERTS, INCIDENTS):
            # The incidents posted before the storm began have roots of their own; the others stay in the digest
            # while the storm lasts (tests/test_storm_digest_thread.py).
            rooted = [
                m
                for m in slack.messages(slack.channel_id(channel))
                if m.thread_ts is None and (m.metadata or {}).get("event_type") == "mira_incident_root"
            ]
            assert len(rooted) >= 3
            for root in rooted:
                incident_id = (root.metadata or {})["event_payload"]["incident_id"]
                first, *_ = slack.thread(channel, root.ts)
                assert (first.text or "").split("\n") == timeline, f"{channel} {incident_id}: {first.text!r}"
                keys = [f"{incident_id}-ack", f"{incident_id}-rolled back", f"{incident_id}-resolve"]
                assert (first.metadata or {})["event_payload"]["keys"] == ",".join(keys)
        posted = len(slack.calls_to("chat.postMessage"))

        for payload in payloads:  # PagerDuty redelivers every event: nothing new reaches Slack
            assert await send(bot, payload) == 202
        # A worker died after Slack took one timeline reply, before its `ts` was recorded and its events marked.
        lead = f"{ids[0]}-ack"
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(
                "UPDATE incident_replies SET ts = NULL, posted_at = NULL, claimed_at = %s WHERE part_of = %s",
                (T0, lead),
            )
            await conn.execute(
                "UPDATE pd_webhooks SET status = 'pending', delivered_at = NULL WHERE incident_id = %s "
                "AND event_type <> 'incident.triggered'",
                (ids[0],),
            )
        await _drain(bot, T0 + timedelta(minutes=10))  # the claim is stale by then: looked up first
        assert len(slack.calls_to("chat.postMessage")) == posted
        assert await _pending(database_url) == 0
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            unrecorded = await (
                await conn.execute(
                    "SELECT count(*) FROM incident_replies WHERE part_of = %s AND ts IS NULL", (lead,)
                )
            ).fetchone()
        assert unrecorded == (0,)
