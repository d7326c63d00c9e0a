"""PagerDuty incidents end to end: signed V3 webhooks into the real route, the delivery worker driven with an
injected clock, and what reached the recording Slack server (roots, thread replies, edits, nudges, digests)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.embedded import EmbeddedServers
from bot.runtime import start_runtime
from bot.server import start_server
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from tests import pd_payloads as pd
from tests.harness import BotUnderTest, closed_port, running_bot

SECRET_OLD = "pd-webhook-secret-old"
SECRET_NEW = "pd-webhook-secret-new"
# The injected clock runs ahead of real time: rows the database stamps with its own now() are due by then.
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
ALERTS, INCIDENTS = "#mira-copilot-alerts", "#incidents"


PD_TOKEN = "pd-rest-token-for-tests"


@pytest.fixture
async def pagerduty() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(PD_TOKEN) as server:
        server.add_user("PUSER01", "Alice Example", "alice@example.com")
        yield server


@pytest.fixture
def settings(settings: Settings, pagerduty: RecordingPagerDutyServer) -> Settings:
    return settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET_OLD), SecretStr(SECRET_NEW)],
            "storm_threshold": 10,
            "pagerduty_api_token": SecretStr(PD_TOKEN),
            "pagerduty_api_url": pagerduty.base_url,
            "pagerduty_from_email": "oncall-bot@example.com",
        }
    )


async def send(
    bot: BotUnderTest,
    payload: dict[str, Any],
    *,
    secret: str = SECRET_NEW,
    headers: dict[str, str] | None = None,
) -> int:
    body = pd.body(payload)
    signed = headers if headers is not None else sign_pagerduty_webhook(secret, body)
    response = await bot.client.post(
        "/pagerduty/webhook",
        content=body,
        headers={"Content-Type": "application/json", "X-Webhook-Id": payload["event"]["id"], **signed},
    )
    return response.status_code


def lifecycle(incident_id: str = "PABC123", number: int = 1) -> list[dict[str, Any]]:
    """triggered → acknowledged → annotated → priority_updated → escalated → resolved, a minute apart."""
    base = pd.incident(id=incident_id, number=number, priority="P3", created_at=T0)
    alice = ("PUSER01", "Alice Example", "alice@example.com")
    steps = [
        ("incident.triggered", {}, {}),
        ("incident.acknowledged", {"status": "acknowledged"}, {"agent": alice}),
        (
            "incident.annotated",
            {"status": "acknowledged"},
            {"agent": alice, "content": "Rolled back agent-chat"},
        ),
        ("incident.priority_updated", {"status": "acknowledged", "priority": "P1"}, {"agent": alice}),
        (
            "incident.escalated",
            {
                "status": "acknowledged",
                "priority": "P1",
                "assignees": [("PUSER02", "Bob Backend", "bob@example.com")],
            },
            {},
        ),
        ("incident.resolved", {"status": "resolved", "priority": "P1"}, {"agent": alice}),
    ]
    events = []
    for minute, (event_type, changes, extra) in enumerate(steps):
        inc = dict(base)
        if changes:
            inc = pd.incident(
                id=incident_id,
                number=number,
                created_at=T0,
                **{"priority": "P3", **{k: v for k, v in changes.items()}},
            )
        events.append(
            pd.event(
                event_type,
                inc,
                occurred_at=T0 + timedelta(minutes=minute),
                event_id=f"{incident_id}-{minute}",
                **extra,
            )
        )
    return events


async def drain(bot: BotUnderTest, now: datetime) -> None:
    """Run the worker until nothing is pending, then once more after the debounce so roots are edited."""
    worker = bot.runtime.delivery
    for _ in range(20):
        if await worker.run_once(now) == 0:
            break
    await worker.run_once(now + timedelta(seconds=10))
    await bot.settle()


def roots(bot: BotUnderTest, channel: str) -> list[Any]:
    return [c for c in bot.slack.calls_to("chat.postMessage", channel=channel) if not c.thread_ts]


def replies(bot: BotUnderTest, channel: str) -> list[Any]:
    return [c for c in bot.slack.calls_to("chat.postMessage", channel=channel) if c.thread_ts]


async def _count(database_url: str, sql: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute(sql)).fetchone()
        return int(row[0]) if row else 0


async def test_an_incident_lifecycle_is_one_living_thread_per_channel(
    bot: BotUnderTest, database_url: str
) -> None:
    for payload in lifecycle():
        assert await send(bot, payload) == 202
    assert bot.slack.calls == []  # the request path never calls Slack
    await drain(bot, T0 + timedelta(minutes=6))

    for channel in (ALERTS, INCIDENTS):
        [root] = roots(bot, channel)
        assert root.text == "Triggered: [#1] Edge function 503s (Mira Co-Pilot, high urgency)"
        thread = [c.text for c in replies(bot, channel)]
        assert all(c.thread_ts == root.response["ts"] for c in replies(bot, channel))
        assert thread[:5] == [
            ":eyes: Acknowledged by Alice Example",
            ":memo: Note by Alice Example: Rolled back agent-chat",
            ":arrow_up_down: Priority P3 → P1 (by Alice Example)",
            ":arrow_up: Escalated to Bob Backend",
            ":white_check_mark: Resolved by Alice Example",
        ]
        if (
            channel == ALERTS
        ):  # one draft per incident, in the alerts thread; the incidents thread links to it
            assert thread[5] == "Post-mortem draft for [#1] Edge function 503s"
        else:
            draft = replies(bot, ALERTS)[5]
            link = (
                f"https://console.slack.test/archives/{draft.response['channel']}/p"
                f"{draft.response['ts'].replace('.', '')}?thread_ts={draft.thread_ts}&amp;cid={draft.response['channel']}"
            )
            assert thread[5] == f":memo: Post-mortem draft for [#1]: in <{link}|the {ALERTS} thread>."
        [edit] = bot.slack.calls_to("chat.update", channel=root.response["channel"])
        assert edit.body["ts"] == root.response["ts"]
        assert edit.text.startswith("Resolved: [#1]")
        assert edit.body["attachments"][0]["color"] == "#2EB67D"
    draft = bot.slack.calls_to("chat.postMessage", channel=ALERTS)[-1]
    draft_text = json.dumps(draft.blocks, ensure_ascii=False)
    assert "Time to acknowledge:* 1 min" in draft_text and "Time to resolve:* 5 min" in draft_text
    assert (
        f"{T0 + timedelta(minutes=2):%H:%M} UTC — Note by Alice Example: Rolled back agent-chat" in draft_text
    )

    before = len(bot.slack.calls)
    for payload in lifecycle():  # PagerDuty redelivers everything
        assert await send(bot, payload, secret=SECRET_OLD) == 202
    await drain(bot, T0 + timedelta(minutes=7))
    assert len(bot.slack.calls) == before
    assert await _count(database_url, "SELECT count(*) FROM pd_webhooks") == 6


async def test_shuffled_events_give_the_same_final_root(bot: BotUnderTest) -> None:
    events = lifecycle()
    random.Random(7).shuffle(events)
    assert events[0]["event"]["event_type"] != "incident.triggered"
    for payload in events:
        assert await send(bot, payload) == 202
    await drain(bot, T0 + timedelta(minutes=6))
    for channel in (ALERTS, INCIDENTS):
        [root] = roots(bot, channel)
        edits = bot.slack.calls_to("chat.update", channel=root.response["channel"])
        final = edits[-1] if edits else root
        assert final.text.startswith("Resolved: [#1] Edge function 503s")
        texts = [c.text for c in replies(bot, channel)]
        assert len(texts) == 6 and len(set(texts)) == 6  # five events and the post-mortem, none twice


async def test_resolve_before_trigger_still_gives_a_correct_root(bot: BotUnderTest) -> None:
    events = lifecycle()
    assert await send(bot, events[5]) == 202  # resolved first
    await drain(bot, T0 + timedelta(minutes=6))
    assert await send(bot, events[0]) == 202  # the trigger arrives late
    await drain(bot, T0 + timedelta(minutes=7))
    [root] = roots(bot, ALERTS)
    assert root.text.startswith("Resolved: [#1]")
    assert [c.text for c in replies(bot, ALERTS)][0] == ":white_check_mark: Resolved by Alice Example"
    assert bot.slack.calls_to("chat.update") == []  # the late trigger is older: the root stays resolved


async def test_rotated_secrets_both_pass_and_several_signatures_are_accepted(
    bot: BotUnderTest, database_url: str
) -> None:
    events = lifecycle()
    assert await send(bot, events[0], secret=SECRET_OLD) == 202
    assert await send(bot, events[1], secret=SECRET_NEW) == 202
    body = pd.body(events[2])
    both = sign_pagerduty_webhook(["some-other-secret", SECRET_NEW], body)
    assert await send(bot, events[2], headers=both) == 202
    assert await _count(database_url, "SELECT count(*) FROM pd_webhooks") == 3


async def test_what_is_not_posted_is_still_stored_and_answered_202(
    bot: BotUnderTest, database_url: str
) -> None:
    other = pd.event(
        "incident.triggered", pd.incident(id="POTHER1", service_id="PSVC999", service_name="Billing")
    )
    service_event = pd.envelope(
        "service.updated", {"id": "PSVC001", "type": "service", "summary": "Mira Co-Pilot"}
    )
    assert await send(bot, other) == 202
    assert await send(bot, service_event) == 202
    malformed = b'{"event": "not an object"'
    response = await bot.client.post(
        "/pagerduty/webhook", content=malformed, headers=sign_pagerduty_webhook(SECRET_NEW, malformed)
    )
    assert response.status_code == 202
    too_big = b"{" + b" " * (256 * 1024) + b"}"
    response = await bot.client.post(
        "/pagerduty/webhook", content=too_big, headers=sign_pagerduty_webhook(SECRET_NEW, too_big)
    )
    assert response.status_code == 413
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT status FROM pd_webhooks ORDER BY id")).fetchall()
    assert rows == [("ignored",), ("ignored",), ("malformed",)]
    await drain(bot, T0)
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_burst_of_webhooks_stores_each_event_once_and_tells_each_sender_the_truth(
    bot: BotUnderTest, database_url: str
) -> None:
    """Webhooks arriving together share one INSERT (bot/pagerduty_ingest.py, WebhookStore): every distinct event
    is stored once, a redelivery inside the same burst is a duplicate, a malformed body is still kept."""
    events = [
        pd.event(
            "incident.triggered", pd.incident(id=f"PBURST{n:02d}", number=n, created_at=T0), event_id=f"b-{n}"
        )
        for n in range(40)
    ]
    bodies = [pd.body(event) for event in events]
    bodies += [bodies[n] for n in range(0, 40, 4)]  # ten redeliveries, byte for byte
    bodies += [b'{"event": "not an object"', b"[]"]

    async def post(body: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/json", **sign_pagerduty_webhook(SECRET_NEW, body)}
        return await bot.client.post("/pagerduty/webhook", content=body, headers=headers)

    responses = await asyncio.gather(*(post(body) for body in bodies))
    assert {r.status_code for r in responses} == {202}
    outcomes = [r.json()["status"] for r in responses]
    assert outcomes.count("accepted") == 42 and outcomes.count("duplicate") == 10
    for n in range(0, 40, 4):  # the original and its redelivery: exactly one of the two was stored
        first, again = outcomes[n], outcomes[40 + n // 4]
        assert sorted([first, again]) == ["accepted", "duplicate"]
    assert await _count(database_url, "SELECT count(*) FROM pd_webhooks") == 42
    assert await _count(database_url, "SELECT count(DISTINCT event_id) FROM pd_webhooks") == 40


async def test_a_burst_that_cannot_be_stored_is_answered_503_for_every_webhook(
    bot: BotUnderTest, database_url: str
) -> None:
    storage = bot.runtime.bot.storage
    working = storage.pool
    unreachable = AsyncConnectionPool(
        f"postgresql://postgres@127.0.0.1:{closed_port()}/x", min_size=0, max_size=1, open=False
    )
    await unreachable.open(wait=False)
    storage.pool = unreachable
    try:
        burst = [
            pd.event("incident.triggered", pd.incident(id=f"PFAIL{n}", number=n), event_id=f"f-{n}")
            for n in range(5)
        ]
        statuses = await asyncio.gather(*(send(bot, event) for event in burst))
    finally:
        storage.pool = working
        await unreachable.close()
    assert statuses == [503] * 5
    assert await _count(database_url, "SELECT count(*) FROM pd_webhooks") == 0


async def test_unknown_incident_event_types_get_a_generic_reply(bot: BotUnderTest) -> None:
    inc = pd.incident(created_at=T0)
    await send(bot, pd.event("incident.triggered", inc, occurred_at=T0))
    await send(
        bot, pd.event("incident.custom_field_values.updated", inc, occurred_at=T0 + timedelta(minutes=1))
    )
    await drain(bot, T0 + timedelta(minutes=1))
    assert [c.text for c in replies(bot, ALERTS)] == [
        ":information_source: incident.custom_field_values.updated (by PagerDuty)"
    ]


async def test_postgres_unavailable_answers_503_and_redelivery_posts_once(
    bot: BotUnderTest, database_url: str
) -> None:
    storage = bot.runtime.bot.storage
    working = storage.pool
    unreachable = AsyncConnectionPool(
        f"postgresql://postgres@127.0.0.1:{closed_port()}/x", min_size=0, max_size=1, open=False
    )
    await unreachable.open(wait=False)
    storage.pool = unreachable
    try:
        first = lifecycle()[0]
        assert await send(bot, first) == 503
    finally:
        storage.pool = working
        await unreachable.close()
    assert await _count(database_url, "SELECT count(*) FROM pd_webhooks") == 0
    assert await send(bot, first) == 202  # PagerDuty retries
    assert await send(bot, first) == 202
    await drain(bot, T0)
    assert len(roots(bot, ALERTS)) == 1 and len(roots(bot, INCIDENTS)) == 1


async def test_the_fifteen_minute_nudge_fires_once_mentioning_the_assignees(bot: BotUnderTest) -> None:
    bot.slack.add_user("U0ALICE01", "alice@example.com", "Alice Example")
    await send(bot, lifecycle()[0])
    await drain(bot, T0)
    worker = bot.runtime.delivery
    await worker.run_once(T0 + timedelta(minutes=14))
    assert replies(bot, ALERTS) == []
    await worker.run_once(T0 + timedelta(minutes=15, seconds=1))
    await worker.run_once(T0 + timedelta(minutes=16))
    [nudge] = replies(bot, ALERTS)
    assert nudge.text.startswith(":bell: <@U0ALICE01>: not acknowledged 15 minutes after it triggered")
    assert len(replies(bot, INCIDENTS)) == 1
    # P1 / high urgency: a reminder with the escalation path after an hour, once.
    await worker.run_once(T0 + timedelta(minutes=61))
    await worker.run_once(T0 + timedelta(minutes=62))
    reminders = [c.text for c in replies(bot, ALERTS)][1:]
    assert reminders == [
        ":hourglass_flowing_sand: Open for 1 h 01 min, past the 1-hour resolution SLA for high "
        "urgency. Escalation path: AI Squad (primary on-call) → Backend Team (secondary on-call) → "
        "Engineering Manager."
    ]


async def test_an_acknowledged_incident_is_not_nudged(bot: BotUnderTest) -> None:
    events = lifecycle()
    await send(bot, events[0])
    await send(bot, events[1])
    await drain(bot, T0 + timedelta(minutes=1))
    await bot.runtime.delivery.run_once(T0 + timedelta(minutes=20))
    assert [c.text for c in replies(bot, ALERTS)] == [":eyes: Acknowledged by Alice Example"]


async def test_the_post_mortem_reminder_fires_once_after_48_hours(bot: BotUnderTest) -> None:
    for payload in lifecycle():
        await send(bot, payload)
    await drain(bot, T0 + timedelta(minutes=6))
    worker = bot.runtime.delivery
    await worker.run_once(T0 + timedelta(hours=47))
    count = len(replies(bot, ALERTS))
    await worker.run_once(T0 + timedelta(hours=48, minutes=6))
    await worker.run_once(T0 + timedelta(hours=49))
    new = [c.text for c in replies(bot, ALERTS)][count:]
    assert len(new) == 1 and new[0].startswith(":spiral_calendar_pad: Resolved 48 hours ago")


async def test_a_storm_is_represented_within_the_channel_rate_limit(
    bot: BotUnderTest, database_url: str
) -> None:
    """200 triggers in a minute, Slack enforcing 1 message/s/channel with 429: every incident is shown in both
    channels, and the bot never posts faster than the limit."""
    bot.slack.enforce_rate_limit("chat.postMessage", per_channel_per_second=1.0)
    ids = [f"PSTORM{n:03d}" for n in range(200)]
    for n, incident_id in enumerate(ids):
        inc = pd.incident(id=incident_id, number=1000 + n, title=f"Dependency down {n}", created_at=T0)
        assert (
            await send(
                bot,
                pd.event(
                    "incident.triggered",
                    inc,
                    occurred_at=T0 + timedelta(seconds=n * 0.3),
                    event_id=f"e-{incident_id}",
                ),
            )
            == 202
        )
    worker = bot.runtime.delivery
    now = T0 + timedelta(seconds=60)
    for _ in range(60):
        await worker.run_once(now)
        if await _count(database_url, "SELECT count(*) FROM pd_webhooks WHERE status = 'pending'") == 0:
            break
        now += timedelta(seconds=3)
    await worker.run_once(now + timedelta(seconds=5))  # the last digest edit, the storm not over yet
    await bot.settle()
    assert bot.slack.rate_limited_count == 0
    for channel in (ALERTS, INCIDENTS):
        shown = " ".join(
            (m.text or "") + json.dumps(m.blocks or []) + json.dumps(getattr(m, "attachments", None) or [])
            for m in bot.slack.messages(bot.slack.channel_id(channel))
        )
        missing = [i for n, i in enumerate(ids) if f"#{1000 + n}" not in shown]
        assert missing == [], f"{channel}: {len(missing)} incidents not represented"
        assert len(roots(bot, channel)) <= 12  # a few roots, then one digest


# --- the buttons: Slack → PagerDuty → webhook back → thread ----------------------------------------------------


def soon() -> datetime:
    """Real time, a moment on: these tests start from a real-time trigger (PagerDuty's echo carries real time), and
    no SLA timer is due yet."""
    return datetime.now(UTC) + timedelta(seconds=2)


async def _click(bot: BotUnderTest, root: Any, action_id: str, user: str = "U0ALICE01") -> None:
    await bot.click(root.response["channel"], root.response["ts"], action_id, "PABC123", user=user)
    await bot.settle()


async def _submit(
    bot: BotUnderTest, callback_id: str, text: str, channel: str, user: str = "U0ALICE01"
) -> int:
    view = {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps({"incident": "PABC123", "channel": channel, "ts": None}),
        "state": {"values": {"text": {"text": {"type": "plain_text_input", "value": text}}}},
    }
    payload = {
        "type": "view_submission",
        "team": {"id": "T0CONSOLE"},
        "user": {"id": user},
        "api_app_id": "A0TEST",
        "token": "legacy",
        "trigger_id": "1.2.3",
        "view": view,
    }
    response = await bot.post_signed(urlencode({"payload": json.dumps(payload)}).encode())
    await bot.settle()
    return response.status_code


async def _incident_in_slack(bot: BotUnderTest, pagerduty: RecordingPagerDutyServer) -> Any:
    bot.slack.add_user("U0ALICE01", "alice@example.com", "Alice Example")
    pagerduty.add_incident(
        "PABC123",
        1,
        "Edge function 503s",
        "PSVC001",
        assignees=[("PUSER01", "Alice Example", "alice@example.com")],
        service_name="Mira Co-Pilot",
    )
    pagerduty.send_webhooks_to(f"{bot.server.url}/pagerduty/webhook", [SECRET_NEW])
    # Real time here: PagerDuty's own webhooks (the echo) carry real timestamps and must be newer than this.
    now = datetime.now(UTC) - timedelta(seconds=5)
    await send(
        bot, pd.event("incident.triggered", pd.incident(created_at=now), occurred_at=now, event_id="trig")
    )
    await drain(bot, soon())
    [root] = roots(bot, ALERTS)
    return root


async def test_acknowledge_reaches_pagerduty_with_the_clickers_email_and_the_webhook_updates_the_thread(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    root = await _incident_in_slack(bot, pagerduty)
    assert [b["action_id"] for b in root.body["attachments"][0]["blocks"][-1]["elements"]] == [
        "incident_ack",
        "incident_resolve",
        "incident_note",
    ]
    await _click(bot, root, "incident_ack")

    [put] = pagerduty.calls_to("PUT", "/incidents/PABC123")
    assert put.body == {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    assert put.headers["from"] == "alice@example.com"
    assert put.headers["authorization"] == f"Token token={PD_TOKEN}"
    [told] = bot.slack.calls_to("response_url")
    assert told.text == "PagerDuty acknowledged it; the thread updates when PagerDuty confirms."

    await pagerduty.wait_for_webhooks(1, event_type="incident.acknowledged")
    await drain(bot, soon())
    assert [c.text for c in replies(bot, ALERTS)] == [":eyes: Acknowledged by Alice Example"]
    assert bot.slack.calls_to("chat.update")[-1].text.startswith("Acknowledged: [#1]")


async def test_resolve_with_a_note_and_add_note_go_through_modals(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    root = await _incident_in_slack(bot, pagerduty)
    await _click(bot, root, "incident_note")
    [opened] = bot.slack.calls_to("views.open")
    assert opened.body["view"]["callback_id"] == "incident_note_modal"
    assert (
        await _submit(bot, "incident_note_modal", "Rolled back agent-chat", root.response["channel"]) == 200
    )
    [note] = pagerduty.calls_to("POST", "/incidents/PABC123/notes")
    assert note.body == {"note": {"content": "Rolled back agent-chat"}}

    await _click(bot, root, "incident_resolve")
    assert (
        await _submit(bot, "incident_resolve_modal", "Bad deploy reverted", root.response["channel"]) == 200
    )
    [resolve] = pagerduty.calls_to("PUT", "/incidents/PABC123")
    assert resolve.body["incident"]["status"] == "resolved"
    assert resolve.body["incident"]["resolution"] == "Bad deploy reverted"

    await pagerduty.wait_for_webhooks(2)
    await drain(bot, soon())
    texts = [c.text for c in replies(bot, ALERTS)]
    assert ":memo: Note by Alice Example: Rolled back agent-chat" in texts
    assert ":white_check_mark: Resolved by Alice Example — Bad deploy reverted" in texts


async def test_a_pagerduty_error_is_shown_in_pagerdutys_words_and_a_double_click_calls_once(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    root = await _incident_in_slack(bot, pagerduty)
    pagerduty.fail_next(
        "PUT",
        400,
        body={
            "error": {
                "message": "Invalid Input Provided",
                "code": 2001,
                "errors": ["Incident Already Resolved"],
            }
        },
    )
    await _click(bot, root, "incident_ack")
    told = bot.slack.calls_to("response_url")[-1].text
    assert told == ":x: PagerDuty answered 400: Invalid Input Provided (Incident Already Resolved)"

    await bot.runtime.bot.storage.redis.flushdb()
    first = bot.click(
        root.response["channel"], root.response["ts"], "incident_ack", "PABC123", user="U0ALICE01"
    )
    second = bot.click(
        root.response["channel"], root.response["ts"], "incident_ack", "PABC123", user="U0ALICE01"
    )
    await asyncio.gather(first, second)
    await bot.settle()
    assert len(pagerduty.calls_to("PUT", "/incidents/PABC123")) == 2  # the failed one, then exactly one more
    assert "Already asking PagerDuty to acknowledge" in " ".join(
        c.text for c in bot.slack.calls_to("response_url")
    )


async def test_a_slow_pagerduty_acknowledgement_is_told_as_no_answer_yet_then_read_back_to_the_clicker(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer, pagerduty: RecordingPagerDutyServer
) -> None:
    """PagerDuty applies the acknowledgement at once but answers only after the client's timeout (a short
    PAGERDUTY_TIMEOUT_SECONDS here; the answer would come 30 s later): the clicker is not told it failed, but
    that there is no answer yet and it may still apply; then the bot reads the incident back (GET) and tells the
    clicker, ephemerally, that it applied. The thread hears of it from PagerDuty's webhook, once."""
    quick = settings.model_copy(update={"pagerduty_timeout_seconds": 1.0})
    async with running_bot(quick, catalog, slack) as bot:
        root = await _incident_in_slack(bot, pagerduty)
        pagerduty.slow_next("PUT", 30.0, path_prefix="/incidents/PABC123")
        await _click(bot, root, "incident_ack")

        [put] = pagerduty.calls_to("PUT", "/incidents/PABC123")
        assert put.body == {"incident": {"type": "incident_reference", "status": "acknowledged"}}
        [read_back] = pagerduty.calls_to("GET", "/incidents/PABC123")
        assert pagerduty.calls.index(read_back) > pagerduty.calls.index(put)
        told = [(c.text, c.body.get("response_type")) for c in bot.slack.calls_to("response_url")]
        assert told == [
            (
                ":hourglass_flowing_sand: PagerDuty did not answer within 1 s: no answer yet — it may still apply. "
                "Reading the incident back from PagerDuty…",
                "ephemeral",
            ),
            (
                ":white_check_mark: PagerDuty shows the incident acknowledged: your acknowledgement applied after "
                "all. The thread updates when PagerDuty confirms.",
                "ephemeral",
            ),
        ]
        assert not any("did not answer" in (c.text or "") for c in bot.slack.calls_to("chat.postMessage"))
        async with bot.runtime.bot.storage.pool.connection() as conn:
            rows = await (
                await conn.execute("SELECT outcome FROM audit_log WHERE action = 'incident.acknowledge'")
            ).fetchall()
        assert rows == [("ok",)]

        await pagerduty.wait_for_webhooks(1, event_type="incident.acknowledged")
        await drain(bot, soon())
        assert [c.text for c in replies(bot, ALERTS)] == [":eyes: Acknowledged by Alice Example"]


async def test_an_unanswered_acknowledgement_that_pagerduty_never_applied_is_told_as_not_applied(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer, pagerduty: RecordingPagerDutyServer
) -> None:
    """No answer and nothing applied (the PUT hangs): the same "no answer yet" first, then, after reading the
    incident back until the read-backs run out, that it did not apply: the clicker is not told it worked."""
    quick = settings.model_copy(update={"pagerduty_timeout_seconds": 0.5})
    async with running_bot(quick, catalog, slack) as bot:
        root = await _incident_in_slack(bot, pagerduty)
        pagerduty.hang_next("PUT", path_prefix="/incidents/PABC123")
        await _click(bot, root, "incident_ack")

        assert len(pagerduty.calls_to("GET", "/incidents/PABC123")) == 3
        told = [c.text for c in bot.slack.calls_to("response_url")]
        assert told == [
            ":hourglass_flowing_sand: PagerDuty did not answer within 0.5 s: no answer yet — it may still apply. "
            "Reading the incident back from PagerDuty…",
            ":x: PagerDuty shows the incident triggered: your acknowledgement did not apply. Try again.",
        ]
        assert pagerduty.incident("PABC123")["status"] == "triggered"  # type: ignore[index]


async def test_post_mortem_scheduled_is_marked_once_and_cancels_the_reminder(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    for payload in lifecycle():
        await send(bot, payload)
    await drain(bot, T0 + timedelta(minutes=6))
    draft = [c for c in replies(bot, ALERTS) if c.text.startswith("Post-mortem draft")][0]
    channel, ts = draft.response["channel"], draft.response["ts"]
    await bot.click(channel, ts, "incident_postmortem_scheduled", "PABC123", user="U0ALICE01")
    await bot.settle()
    await bot.click(channel, ts, "incident_postmortem_scheduled", "PABC123", user="U0BOB0001")
    await bot.settle()
    told = [c.text for c in bot.slack.calls_to("response_url")]
    assert told == [
        "Marked as scheduled; no reminder will follow.",
        "Already marked as scheduled by <@U0ALICE01>.",
    ]
    await bot.runtime.delivery.run_once(T0 + timedelta(hours=49))
    assert not any(
        c.text.startswith(":spiral_calendar_pad: Resolved 48 hours ago") for c in replies(bot, ALERTS)
    )


async def test_routing_by_urgency_keeps_low_urgency_out_of_the_incidents_channel(bot: BotUnderTest) -> None:
    mira = bot.runtime.bot.catalog.find("mira-copilot")
    assert mira is not None
    routed = mira.model_copy(
        update={"channels": mira.channels.model_copy(update={"incidents_urgency": "high"})}
    )
    catalog = bot.runtime.bot.catalog
    bot.runtime.bot.catalog = catalog.model_copy(
        update={"services": [routed if s.name == "mira-copilot" else s for s in catalog.services]}
    )
    await send(
        bot,
        pd.event(
            "incident.triggered", pd.incident(id="PLOW001", urgency="low", created_at=T0), occurred_at=T0
        ),
    )
    await send(
        bot,
        pd.event("incident.triggered", pd.incident(id="PHIGH01", number=2, created_at=T0), occurred_at=T0),
    )
    await drain(bot, T0)
    # Two incidents are delivered concurrently: their roots may come in either order.
    assert sorted(r.text.split(":")[1].strip()[:4] for r in roots(bot, ALERTS)) == ["[#1]", "[#2]"]
    assert [r.text.split(":")[1].strip()[:4] for r in roots(bot, INCIDENTS)] == ["[#2]"]


async def test_a_real_postgres_outage_answers_503_and_recovers_without_a_restart(
    tmp_path: Path, redis_url: str, slack: RecordingSlackServer, settings: Settings, catalog: Catalog
) -> None:
    """A Postgres of the test's own (embedded), really stopped and started again under a running bot."""
    database = EmbeddedServers(tmp_path / "state")
    dsn = await asyncio.to_thread(database.start_postgres)
    runtime = await start_runtime(settings.model_copy(update={"database_url": SecretStr(dsn)}), catalog)
    server = await start_server(runtime.http_app)
    bot = BotUnderTest(runtime=runtime, server=server, slack=slack)
    try:
        events = lifecycle()
        assert await send(bot, events[0]) == 202
        await asyncio.to_thread(database.stop_postgres)
        assert await send(bot, events[1]) == 503  # not stored, so PagerDuty will retry it
        await asyncio.to_thread(database.start_postgres)
        statuses = [await send(bot, events[1]) for _ in range(3)]  # PagerDuty's retries
        assert 202 in statuses and set(statuses) <= {
            202,
            503,
        }  # a broken pooled connection may cost one retry
        await drain(bot, T0 + timedelta(minutes=1))
        assert len(roots(bot, ALERTS)) == 1
        assert [c.text for c in replies(bot, ALERTS)] == [":eyes: Acknowledged by Alice Example"]
    finally:
        await bot.close()
        await server.stop()
        await runtime.close()
        await asyncio.to_thread(database.stop)


async def test_a_root_and_a_reply_slack_applies_after_the_client_timed_out_are_posted_once(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> None:
    """Issue 12: Slack stored the post after the client gave up (here 4 s against a 1 s client timeout). The
    worker retries as soon as its backoff allows; a lookup then finds nothing yet, and posting again would leave
    two messages once the late one lands. The uncertain claim is looked up only after the client timeout plus a
    margin, so the retry waits (RetryLater) and the later pass finds the late message instead of posting it."""
    # Real time, not T0: the lookup's `oldest` bound compares the claim's time with the ts Slack stamped.
    base = datetime.now(UTC) + timedelta(seconds=1)
    quick = settings.model_copy(update={"slack_timeout_seconds": 1.0, "storm_threshold": 0})
    trigger, acknowledged = lifecycle()[:2]

    def stored(channel: str, *, in_thread: bool) -> list[Any]:
        return [m for m in slack.messages(channel) if bool(m.thread_ts) == in_thread]

    async def late_store_done() -> None:
        await slack.wait_until(lambda: all(c.answered for c in slack.calls_to("chat.postMessage")), 15.0)

    async with running_bot(quick, catalog, slack) as bot:
        worker = bot.runtime.delivery
        assert await send(bot, trigger) == 202
        slack.apply_late("chat.postMessage", after=4.0)  # the alerts root: stored 4 s after it arrived
        await worker.run_once(base)  # the client gives up after 1 s: outcome unknown
        assert stored(ALERTS, in_thread=False) == []
        await worker.run_once(base + timedelta(seconds=3))  # past the event's backoff, before the late store
        await late_store_done()
        await drain(bot, base + timedelta(minutes=1))
        assert len(stored(ALERTS, in_thread=False)) == 1
        assert len(stored(INCIDENTS, in_thread=False)) == 1

        t1 = base + timedelta(minutes=2)
        assert await send(bot, acknowledged) == 202
        slack.apply_late("chat.postMessage", after=4.0)  # the reply in the alerts thread, applied late
        await worker.run_once(t1)
        await worker.run_once(t1 + timedelta(seconds=3))
        await late_store_done()
        await drain(bot, t1 + timedelta(minutes=1))
        for channel in (ALERTS, INCIDENTS):
            [root] = stored(channel, in_thread=False)
            acks = [m for m in slack.thread(channel, root.ts) if (m.text or "").startswith(":eyes:")]
            assert len(acks) == 1, f"{channel}: {len(acks)} acknowledgement replies"
