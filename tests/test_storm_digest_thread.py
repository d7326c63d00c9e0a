"""Storms: an incident listed in a storm digest stays there while the storm lasts — its line edited to its state,
its events lines in the DIGEST's thread, many incidents per reply, each event once (across a redelivered batch, a
worker that died after Slack took a reply, two workers) and in its incident's order, within Slack's limits — and
when the storm passes only the still-open incidents get roots of their own. Real route, Postgres, Redis and the
recording Slack server; the worker driven with an injected clock."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.settings import Settings
from handlers.incidents.blocks import FROM_DIGEST_NOTE
from handlers.incidents.digest_thread import DIGEST_REPLY_CHARS
from stand_ins.recording_slack import RecordingSlackServer
from tests import pd_payloads as pd
from tests.harness import BotUnderTest, running_bot
from tests.test_incidents import ALERTS, INCIDENTS, SECRET_NEW, T0, send

ALICE = ("PUSER01", "Alice Example", "alice@example.com")
THRESHOLD = 3
LINE = re.compile(r"^\*#(\d+)\* (.*)$")
PART = re.compile(r"_\(\d+/\d+\)_")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)],
            "storm_threshold": THRESHOLD,
            "slack_posts_per_second": 1000.0,  # Slack's pace is not what these tests are about
        }
    )


def _incident(number: int, status: str = "triggered") -> dict[str, Any]:
    return pd.incident(
        id=f"PSD{number:04d}", number=number, title=f"Disk full {number}", status=status, created_at=T0
    )


def _trigger(number: int, at: datetime) -> dict[str, Any]:
    return pd.event("incident.triggered", _incident(number), occurred_at=at, event_id=f"PSD{number}-trigger")


def _ack(number: int, at: datetime) -> dict[str, Any]:
    return pd.event(
        "incident.acknowledged",
        _incident(number, "acknowledged"),
        occurred_at=at,
        event_id=f"PSD{number}-ack",
        agent=ALICE,
    )


def _note(number: int, at: datetime, text: str, key: str = "note") -> dict[str, Any]:
    return pd.event(
        "incident.annotated",
        _incident(number, "acknowledged"),
        occurred_at=at,
        event_id=f"PSD{number}-{key}",
        agent=ALICE,
        content=text,
    )


def _resolve(number: int, at: datetime) -> dict[str, Any]:
    return pd.event(
        "incident.resolved",
        _incident(number, "resolved"),
        occurred_at=at,
        event_id=f"PSD{number}-resolve",
        agent=ALICE,
    )


async def _drain(bot: BotUnderTest, now: datetime) -> None:
    for _ in range(30):
        if await bot.runtime.delivery.run_once(now) == 0:
            break
    await bot.settle()


async def _storm(bot: BotUnderTest, count: int) -> list[int]:
    """`count` incidents triggered within a few seconds: the first (THRESHOLD, or the first pass's concurrent
    deliveries) get roots, the rest the digest."""
    numbers = list(range(500, 500 + count))
    for n, number in enumerate(numbers):
        assert await send(bot, _trigger(number, T0 + timedelta(seconds=n % 20))) == 202
    await _drain(bot, T0 + timedelta(seconds=20))
    return numbers


def _roots(slack: RecordingSlackServer, channel: str) -> dict[int, Any]:
    """Incident number → its own root message in `channel`."""
    found = {}
    for message in slack.messages(slack.channel_id(channel)):
        metadata = message.metadata or {}
        if message.thread_ts is None and metadata.get("event_type") == "mira_incident_root":
            number = int(metadata["event_payload"]["incident_id"].removeprefix("PSD"))
            found[number] = message
    return found


def _digest(slack: RecordingSlackServer, channel: str) -> Any:
    [digest] = [
        m
        for m in slack.messages(slack.channel_id(channel))
        if m.thread_ts is None and (m.metadata or {}).get("event_type") == "mira_storm_digest"
    ]
    return digest


def _digest_lines(slack: RecordingSlackServer, channel: str) -> tuple[list[Any], dict[int, list[str]]]:
    """The digest thread's replies, and each incident's lines there in the order Slack shows them."""
    digest = _digest(slack, channel)
    replies = slack.thread(channel, digest.ts)
    lines: dict[int, list[str]] = {}
    for reply in replies:
        current = None
        for text in (reply.text or "").split("\n"):
            match = LINE.match(text)
            if match is None:  # the line goes on (a part's "(1/2)" mark)
                assert current is not None, (
                    f"a reply of the digest's thread names no incident: {reply.text!r}"
                )
                lines[current][-1] += "\n" + text
                continue
            current = int(match.group(1))
            lines.setdefault(current, []).append(match.group(2))
    return replies, lines


def _digest_line_of(slack: RecordingSlackServer, channel: str, number: int) -> str:
    shown = json.dumps(_digest(slack, channel).blocks)
    return next(line for line in shown.split("\\n") if f"#{number}" in line)


ACKED = ":eyes: Acknowledged by Alice Example"
NOTED = ":memo: Note by Alice Example: rolled back"
RESOLVED = ":white_check_mark: Resolved by Alice Example"


async def test_digest_incidents_stay_in_the_digest_and_their_events_are_lines_of_its_thread(
    bot: BotUnderTest,
) -> None:
    slack = bot.slack
    numbers = await _storm(bot, 20)
    rooted = {channel: set(_roots(slack, channel)) for channel in (ALERTS, INCIDENTS)}
    listed = [n for n in numbers if not any(n in r for r in rooted.values())]
    assert len(listed) >= 8  # the first few (a pass's concurrent deliveries) have roots of their own
    resolved, still_open = listed[:5], listed[5:]
    for n, number in enumerate(listed):
        at = T0 + timedelta(seconds=30 + n)
        assert await send(bot, _ack(number, at)) == 202
        assert await send(bot, _note(number, at + timedelta(seconds=1), "rolled back")) == 202
        if number in resolved:
            assert await send(bot, _resolve(number, at + timedelta(seconds=2))) == 202
    await _drain(bot, T0 + timedelta(seconds=45))
    await _drain(bot, T0 + timedelta(seconds=50))  # the digest's debounced edit

    for channel in (ALERTS, INCIDENTS):
        assert set(_roots(slack, channel)) == rooted[channel], "an incident left the digest during the storm"
        for number in resolved:
            assert "_resolved_" in _digest_line_of(slack, channel, number)
        for number in still_open:
            assert "_acknowledged_" in _digest_line_of(slack, channel, number)
        replies, lines = _digest_lines(slack, channel)
        assert 1 <= len(replies) <= 2, "the pass's events of every incident share the digest thread's reply"
        assert all(r.thread_ts == _digest(slack, channel).ts for r in replies)
        for number in resolved:
            assert lines[number] == [ACKED, NOTED, RESOLVED], number
        for number in still_open:
            assert lines[number] == [ACKED, NOTED], number
        assert not any(n in lines for n in rooted[channel])

    # The storm passes: the open incidents get roots of their own, saying where their earlier events are; the
    # resolved ones stay in the digest.
    later = T0 + timedelta(minutes=5)
    for step in range(20):
        await bot.runtime.delivery.run_once(later + timedelta(seconds=step))
    await bot.settle()
    for channel in (ALERTS, INCIDENTS):
        roots = _roots(slack, channel)
        assert set(roots) == set(numbers) - set(resolved), channel
        for number in still_open:
            assert FROM_DIGEST_NOTE in json.dumps(roots[number].attachments)
    # A later event of a promoted incident goes to its own thread, not to the digest's.
    promoted = still_open[0]
    assert await send(bot, _note(promoted, later + timedelta(minutes=1), "after", key="after")) == 202
    await _drain(bot, later + timedelta(minutes=2))
    for channel in (ALERTS, INCIDENTS):
        own = slack.thread(channel, _roots(slack, channel)[promoted].ts)
        assert [m.text for m in own] == [":memo: Note by Alice Example: after"]
        _, lines = _digest_lines(slack, channel)
        assert lines[promoted] == [ACKED, NOTED]


def _replies_posted(slack: RecordingSlackServer) -> int:
    return sum(1 for call in slack.calls_to("chat.postMessage") if call.body.get("thread_ts"))


async def _pending(database_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute("SELECT count(*) FROM pd_webhooks WHERE status = 'pending'")
        ).fetchone()
    return int(row[0]) if row else 0


async def test_each_event_is_one_line_of_the_digest_thread_across_redeliveries_a_crash_and_two_workers(
    replicas: tuple[BotUnderTest, BotUnderTest], database_url: str
) -> None:
    one, two = replicas
    slack = one.slack
    numbers = await _storm(one, 30)
    listed = [n for n in numbers if n not in _roots(slack, ALERTS) and n not in _roots(slack, INCIDENTS)]
    payloads = []
    for n, number in enumerate(listed):
        at = T0 + timedelta(seconds=30 + n)
        payloads += [
            _ack(number, at),
            _note(number, at + timedelta(seconds=1), "rolled back"),
            _resolve(number, at + timedelta(seconds=2)),
        ]
    # PagerDuty delivers every event to both replicas' routes (a redelivery): both workers drain the outbox.
    for payload in payloads:
        assert await send(one, payload) == 202
        assert await send(two, payload) == 202
    now = T0 + timedelta(seconds=60)
    for step in range(30):
        at = now + timedelta(seconds=step)
        await asyncio.gather(one.runtime.delivery.run_once(at), two.runtime.delivery.run_once(at))
        if await _pending(database_url) == 0 and step > 3:
            break
    await one.settle()
    await two.settle()
    for channel in (ALERTS, INCIDENTS):
        _, lines = _digest_lines(slack, channel)
        for number in listed:
            assert lines[number] == [ACKED, NOTED, RESOLVED], f"{channel} #{number}: {lines.get(number)}"
    # The storm passes (the digest closes; the incidents it lists are resolved and stay there).
    for step in range(5):
        await one.runtime.delivery.run_once(T0 + timedelta(minutes=3, seconds=step))
    await one.settle()
    posted = _replies_posted(slack)

    # A worker died after Slack took a reply of the digest's thread, before its `ts` was recorded and before its
    # events were marked delivered: the events are delivered again and the reply is found by its metadata.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        lead = await (
            await conn.execute(
                "SELECT part_of FROM incident_replies WHERE digest_id IS NOT NULL ORDER BY digest_seq LIMIT 1"
            )
        ).fetchone()
        assert lead is not None
        await conn.execute(
            "UPDATE incident_replies SET ts = NULL, posted_at = NULL, claimed_at = %s WHERE part_of = %s",
            (T0, lead[0]),
        )
        await conn.execute(
            "UPDATE pd_webhooks SET status = 'pending', delivered_at = NULL, claimed_until = NULL "
            "WHERE event_type <> 'incident.triggered'"
        )
    later = T0 + timedelta(minutes=4)  # the claim is stale by then (STALE_CLAIM_SECONDS)
    for step in range(10):
        at = later + timedelta(seconds=step)
        await asyncio.gather(one.runtime.delivery.run_once(at), two.runtime.delivery.run_once(at))
    await one.settle()
    await two.settle()
    assert _replies_posted(slack) == posted
    # An event delivered again does not take its incident out of the digest.
    for channel in (ALERTS, INCIDENTS):
        assert not set(listed) & set(_roots(slack, channel))
    assert await _pending(database_url) == 0
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        unrecorded = await (
            await conn.execute(
                "SELECT count(*) FROM incident_replies WHERE digest_id IS NOT NULL AND ts IS NULL"
            )
        ).fetchone()
    assert unrecorded == (0,)
    for channel in (ALERTS, INCIDENTS):
        _, lines = _digest_lines(slack, channel)
        for number in listed:
            assert lines[number] == [ACKED, NOTED, RESOLVED]


async def test_the_digest_thread_keeps_within_slacks_limits_with_many_long_events(bot: BotUnderTest) -> None:
    """Forty incidents with 1,500-character notes and one with a note longer than a message: every reply fits
    (the recording server refuses msg_too_long), a reply carries many incidents' lines, and every note is read in
    full, the long one in numbered parts, each incident's lines in order."""
    slack = bot.slack
    numbers = await _storm(bot, 44)
    listed = [n for n in numbers if n not in _roots(slack, ALERTS) and n not in _roots(slack, INCIDENTS)]
    notes = {number: f"step {number} " + "x" * 1500 for number in listed}
    long_one = listed[0]
    notes[long_one] = "long " + "y" * 45_000
    for n, number in enumerate(listed):
        at = T0 + timedelta(seconds=30 + n)
        assert await send(bot, _ack(number, at)) == 202
        assert await send(bot, _note(number, at + timedelta(seconds=1), notes[number])) == 202
        assert await send(bot, _resolve(number, at + timedelta(seconds=2))) == 202
    for step in range(40):
        await bot.runtime.delivery.run_once(T0 + timedelta(seconds=45 + step))
    await bot.settle()
    refused = [c for c in slack.calls if c.response is not None and c.response.get("ok") is False]
    assert refused == []
    for channel in (ALERTS, INCIDENTS):
        replies, lines = _digest_lines(slack, channel)
        assert all(len(r.text or "") <= 40_000 for r in replies)
        assert len(replies) < len(listed), "many incidents' lines per reply"
        parts = [r for r in replies if PART.search(r.text or "")]  # a line longer than a reply: its own
        assert all(len(r.text or "") <= DIGEST_REPLY_CHARS for r in replies if r not in parts)
        for number in listed:
            shown = lines[number]
            assert shown[0] == ACKED and shown[-1] == RESOLVED, number
            text = ":memo: Note by Alice Example: " + notes[number]
            if number == long_one:
                assert len(shown) > 3, "the long note is read in full, in parts"
                assert "".join(part.rsplit("\n_(", 1)[0] for part in shown[1:-1]) == text
            else:
                assert shown[1:-1] == [text], number


async def test_a_digest_is_edited_while_a_long_pass_still_posts_at_slacks_pace(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> None:
    """A pass whose posts wait on Slack's pace (notes of incidents with roots of their own, 1 post/s/channel) does
    not hold back the digest's edit: the digest shows the acknowledgement before the pass's last reply is posted."""
    paced = settings.model_copy(update={"slack_posts_per_second": 1.0})
    async with running_bot(paced, catalog, slack) as bot:
        numbers = await _storm(bot, 14)
        rooted = set(_roots(slack, ALERTS))
        listed = [n for n in numbers if n not in _roots(slack, ALERTS) and n not in _roots(slack, INCIDENTS)]
        assert len(rooted) >= THRESHOLD and listed
        for n, number in enumerate(sorted(rooted)):
            assert await send(bot, _note(number, T0 + timedelta(seconds=30 + n), "still on it")) == 202
        assert await send(bot, _ack(listed[0], T0 + timedelta(seconds=29))) == 202
        await bot.runtime.delivery.run_once(T0 + timedelta(seconds=40))
        await bot.settle()
        digest_ts = _digest(slack, ALERTS).ts
        edited = [
            c.at
            for c in slack.calls_to("chat.update", channel=ALERTS)
            if c.body.get("ts") == digest_ts and "_acknowledged_" in json.dumps(c.body.get("blocks"))
        ]
        notes = [
            c.at
            for c in slack.calls_to("chat.postMessage", channel=ALERTS)
            if "still on it" in (c.body.get("text") or "")
        ]
        assert edited and len(notes) == len(rooted)
        assert edited[0] < max(notes)
