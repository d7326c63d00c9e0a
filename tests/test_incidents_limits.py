"""Incidents whose PagerDuty data is bigger than a Slack message can hold still appear, in both channels, within
one delivery pass, and their later events follow — against a recording Slack server as strict as Slack
(bot/recording_slack_limits.py). A payload Slack refuses anyway gets a text-only fallback and never holds the
incident's later events back; an incident number a database column cannot hold never stalls delivery."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from bot import slack_limits
from bot.settings import Settings
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import SlackCall
from tests import pd_payloads as pd
from tests.harness import BotUnderTest
from tests.test_incidents import ALERTS, INCIDENTS, PD_TOKEN, SECRET_NEW, T0, replies, roots, send

ALICE = ("PUSER01", "Alice Example", "alice@example.com")
LONG_TITLE = "Edge function 503s in every region " + "and more " * 660  # 6,000+ characters
LONG_NOTE = "Root cause: ".ljust(50_000, "z")  # longer than one Slack message (40,000)
#: 60 assignees whose names alone are far over a field's 2,000 characters.
MANY = tuple(
    (f"PUSER{n:03d}", f"Responder {n:02d} " + "Very-Long-Family-Name-" * 4, f"r{n}@example.com")
    for n in range(60)
)

DONE_WHEN: dict[str, dict[str, Any]] = {
    "PTITLE1": {"number": 11, "title": LONG_TITLE},
    "PCROWD1": {"number": 12, "assignees": MANY},
    "PNOTE01": {"number": 13},
}


@pytest.fixture
async def pagerduty() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(PD_TOKEN) as server:
        server.add_user("PUSER01", "Alice Example", "alice@example.com")
        yield server


@pytest.fixture
def settings(settings: Settings, pagerduty: RecordingPagerDutyServer) -> Settings:
    return settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)],
            "pagerduty_api_token": SecretStr(PD_TOKEN),
            "pagerduty_api_url": pagerduty.base_url,
            "pagerduty_from_email": "oncall-bot@example.com",
            "slack_posts_per_second": 50.0,  # the pace is not under test here; one pass must not take minutes
        }
    )


def trigger(incident_id: str, **fields: Any) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, created_at=T0, **fields)
    return pd.event("incident.triggered", inc, occurred_at=T0, event_id=f"{incident_id}-t")


def later(incident_id: str, event_type: str, minute: int, status: str, **fields: Any) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, created_at=T0, status=status, **fields)
    return pd.event(
        event_type,
        inc,
        occurred_at=T0 + timedelta(minutes=minute),
        event_id=f"{incident_id}-{minute}",
        agent=ALICE,
    )


def root_of(bot: BotUnderTest, channel: str, incident_id: str) -> SlackCall:
    [root] = [
        c
        for c in roots(bot, channel)
        if c.response is not None
        and c.response.get("ok")
        and (c.body.get("metadata") or {}).get("event_payload", {}).get("incident_id") == incident_id
    ]
    return root


def thread(bot: BotUnderTest, channel: str, root: SlackCall) -> list[str]:
    """What the root's thread shows: the replies Slack accepted."""
    return [
        c.text
        for c in replies(bot, channel)
        if c.response is not None and c.response.get("ok") and c.thread_ts == root.response["ts"]  # type: ignore[index]
    ]


async def _outbox(database_url: str) -> list[tuple[str, str]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT event_id, status FROM pd_webhooks ORDER BY id")
        return [(str(a), str(b)) for a, b in await cursor.fetchall()]


def refused(bot: BotUnderTest) -> list[SlackCall]:
    return [c for c in bot.slack.calls if c.response is not None and not c.response.get("ok")]


async def test_a_huge_title_sixty_assignees_and_a_50000_character_note_appear_in_both_channels_in_one_pass(
    bot: BotUnderTest, database_url: str
) -> None:
    """The issue's "done when": each incident is shown in full form (not a fallback) within one pass, and its
    acknowledgement and resolution follow in its thread."""
    title_html = f"{pd.WEB_URL}/incidents/PTITLE1"
    for incident_id, fields in DONE_WHEN.items():
        await send(bot, trigger(incident_id, **fields))
    await send(
        bot,
        pd.event(
            "incident.annotated",
            pd.incident(id="PNOTE01", number=13, created_at=T0),
            occurred_at=T0 + timedelta(seconds=30),
            event_id="PNOTE01-note",
            agent=ALICE,
            content=LONG_NOTE,
        ),
    )
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=1))  # one delivery pass

    assert refused(bot) == []  # nothing Slack would refuse was sent
    for channel in (ALERTS, INCIDENTS):
        title = root_of(bot, channel, "PTITLE1")
        [headline] = [b for b in title.body["attachments"][0]["blocks"] if b["type"] == "section"][:1]
        text = headline["text"]["text"]
        assert len(text) <= slack_limits.SECTION_TEXT
        assert text.startswith(f":red_circle: *<{title_html}|[#11] Edge function 503s in every region")
        assert text.endswith("…>*")  # clipped, linking to PagerDuty's page for the whole title
        assert len(title.text) < slack_limits.MESSAGE_TEXT and "…" in title.text

        crowd = root_of(bot, channel, "PCROWD1")
        fields = [b for b in crowd.body["attachments"][0]["blocks"] if b.get("fields")][0]["fields"]
        [assigned] = [f["text"] for f in fields if f["text"].startswith("*Assigned to*")]
        assert len(assigned) <= slack_limits.FIELD_TEXT
        assert assigned.startswith("*Assigned to*\nResponder 00 Very-Long-Family-Name-")
        assert assigned.endswith(" more") and " and " in assigned

        note_root = root_of(bot, channel, "PNOTE01")
        parts = thread(bot, channel, note_root)
        assert len(parts) >= 2 and all(len(p) <= slack_limits.MESSAGE_TEXT for p in parts)
        assert parts[0].startswith(":memo: Note by Alice Example: Root cause: zzz")
        body = "".join(p.rsplit("\n_(", 1)[0] for p in parts)
        assert body.count("z") == LONG_NOTE.count("z")  # the note is in the thread in full, nothing lost

    for incident_id, fields in DONE_WHEN.items():  # the same incidents, acknowledged, then resolved
        await send(bot, later(incident_id, "incident.acknowledged", 2, "acknowledged", **fields))
        await send(bot, later(incident_id, "incident.resolved", 3, "resolved", **fields))
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=4))
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=5))  # the debounced root edits
    await bot.settle()

    assert refused(bot) == []
    assert {status for _, status in await _outbox(database_url)} == {"delivered"}
    for channel in (ALERTS, INCIDENTS):
        for incident_id in DONE_WHEN:
            texts = thread(bot, channel, root_of(bot, channel, incident_id))
            assert ":eyes: Acknowledged by Alice Example" in texts
            assert ":white_check_mark: Resolved by Alice Example" in texts
            last = "Post-mortem draft for [#1" if channel == ALERTS else ":memo: Post-mortem draft for [#1"
            assert texts[-1].startswith(last)  # the draft in the alerts thread, a link to it in the other
        titled = root_of(bot, channel, "PTITLE1").response
        assert titled is not None
        edits = bot.slack.calls_to("chat.update", channel=titled["channel"], ts=titled["ts"])
        assert edits and all(e.text.startswith("Resolved: [#11] Edge function 503s in every") for e in edits)
        assert all("attachments" in e.body for e in edits)  # edited in full, not to a fallback


async def test_a_refused_root_posts_the_text_only_fallback_and_later_events_follow(
    bot: BotUnderTest, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack answers `invalid_blocks` (with its messages) to the root in #mira-copilot-alerts and `msg_too_long`
    to the acknowledgement there: a text-only fallback naming the incident and linking to PagerDuty is posted in
    their place, the refusal is logged with Slack's error, nothing is retried as is, and the events that follow
    land in the fallback root's thread in the same pass."""
    bot.slack.fail_next(
        "chat.postMessage", status=200, error="invalid_blocks"
    )  # the first post: ALERTS' root
    await send(bot, trigger("PREFUSE", number=21))
    caplog.set_level(logging.ERROR, logger="bot.slack_once")
    await bot.runtime.delivery.run_once(T0)

    fallback = root_of(bot, ALERTS, "PREFUSE")
    assert fallback.status == 200 and fallback.response["ok"]  # type: ignore[index]
    assert "attachments" not in fallback.body and not fallback.blocks
    assert fallback.text.startswith(":red_circle: Triggered: [#21] Edge function 503s (Mira Co-Pilot).")
    assert f"<{pd.WEB_URL}/incidents/PREFUSE|PagerDuty>" in fallback.text
    assert "attachments" in root_of(bot, INCIDENTS, "PREFUSE").body  # the other channel was not refused
    [record] = [r for r in caplog.records if "text-only fallback" in r.getMessage()]
    assert record.error == "invalid_blocks"  # type: ignore[attr-defined]
    assert len(bot.slack.calls_to("chat.postMessage", channel=ALERTS)) == 2  # refused once, fallback once

    bot.slack.fail_next("chat.postMessage", status=200, error="msg_too_long")  # the acknowledgement in ALERTS
    await send(bot, later("PREFUSE", "incident.acknowledged", 1, "acknowledged", number=21))
    await send(bot, later("PREFUSE", "incident.resolved", 2, "resolved", number=21))
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=3))
    await bot.settle()

    texts = thread(bot, ALERTS, fallback)
    assert texts[0].startswith(":large_yellow_circle: Acknowledged: [#21] Edge function 503s")
    assert "Slack could not show this update in full" in texts[0]
    assert texts[1:] == [
        ":white_check_mark: Resolved by Alice Example",
        "Post-mortem draft for [#21] Edge function 503s",
    ]
    assert (
        thread(bot, INCIDENTS, root_of(bot, INCIDENTS, "PREFUSE"))[0]
        == ":eyes: Acknowledged by Alice Example"
    )
    assert {status for _, status in await _outbox(database_url)} == {"delivered"}


async def test_a_root_refused_even_as_text_gives_up_that_event_only(
    bot: BotUnderTest, database_url: str
) -> None:
    """When Slack refuses the fallback too, the event is marked failed at once (no retry as is, no backoff), and
    the incident's next event is delivered in the same pass: its root is posted then."""
    bot.slack.fail_next("chat.postMessage", status=200, error="invalid_blocks", count=2)
    await send(bot, trigger("PTWICE1", number=31))
    await send(bot, later("PTWICE1", "incident.acknowledged", 1, "acknowledged"))
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=2))
    await bot.settle()

    assert await _outbox(database_url) == [("PTWICE1-t", "failed"), ("PTWICE1-1", "delivered")]
    for channel in (ALERTS, INCIDENTS):
        root = root_of(bot, channel, "PTWICE1")
        assert "attachments" in root.body
        assert thread(bot, channel, root) == [":eyes: Acknowledged by Alice Example"]


async def test_an_incident_number_past_integer_and_bigint_never_stalls_delivery(
    bot: BotUnderTest, database_url: str
) -> None:
    big, huge = 2**40, 2**70  # past a Postgres integer; past even a bigint
    await send(bot, trigger("PBIGNUM", number=big))
    await send(bot, trigger("PHUGENO", number=huge))
    await bot.runtime.delivery.run_once(T0)
    await bot.settle()

    assert {status for _, status in await _outbox(database_url)} == {"delivered"}
    for channel in (ALERTS, INCIDENTS):
        assert root_of(bot, channel, "PBIGNUM").text.startswith(f"Triggered: [#{big}] Edge function 503s")
        assert root_of(bot, channel, "PHUGENO").text.startswith("Triggered: [#")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (
            await conn.execute("SELECT id, number, snapshot->>'number' FROM incidents ORDER BY id")
        ).fetchall()
    assert rows == [("PBIGNUM", big, str(big)), ("PHUGENO", None, str(huge))]  # what can be stored, is
