"""The SLA nudge's Escalate button (issue 14): PagerDuty `PUT /incidents/{id}` with `escalation_level` + 1, the
level read from PagerDuty (the incident's policy and assignees, `GET /oncalls`), `From` the clicker's email; the
recording PagerDuty checks the body as the REST API's OpenAPI gives it and refuses a bad one. Double clicks
escalate once; the outcome reaches the clicker and the thread; at the top level nothing is sent and it says so."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from integrations.pagerduty import PagerDutyClient, PagerDutyError
from stand_ins.recording_pagerduty import RecordingPagerDutyServer, oncall_entry
from stand_ins.recording_slack import TEAM_ID, RecordingSlackServer
from tests import pd_payloads as pd
from tests.harness import BotUnderTest, running_bot

SECRET = "pd-webhook-secret-escalate"
TOKEN = "pd-rest-token-escalate"
ALERTS, INCIDENTS = "#mira-copilot-alerts", "#incidents"
POLICY = ("PEPMIRA", "AI Squad")
ALICE = ("PUSER01", "Alice Example", "alice@example.com")
BOB = ("PUSER02", "Bob Backend", "bob@example.com")
ERIN = ("PUSER03", "Erin Manager", "erin@example.com")
# Real time: PagerDuty's echoed webhooks carry real timestamps. Triggered 20 minutes ago: the nudge is due.
TRIGGERED = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0)


@pytest.fixture
async def pagerduty() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(TOKEN) as server:
        for user in (ALICE, BOB, ERIN):
            server.add_user(*user)
        server.set_oncalls(
            [
                oncall_entry(ALICE[:2], escalation_policy=POLICY, escalation_level=1),
                oncall_entry(BOB[:2], escalation_policy=POLICY, escalation_level=2),
                oncall_entry(ERIN[:2], escalation_policy=POLICY, escalation_level=3),
            ]
        )
        yield server


@pytest.fixture
def settings(settings: Settings, pagerduty: RecordingPagerDutyServer) -> Settings:
    return settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET)],
            "pagerduty_api_token": SecretStr(TOKEN),
            "pagerduty_api_url": pagerduty.base_url,
            "pagerduty_from_email": "oncall-bot@example.com",
        }
    )


async def send(bot: BotUnderTest, payload: dict[str, Any]) -> None:
    body = pd.body(payload)
    response = await bot.client.post(
        "/pagerduty/webhook",
        content=body,
        headers={"Content-Type": "application/json", **sign_pagerduty_webhook(SECRET, body)},
    )
    assert response.status_code == 202


async def drain(bot: BotUnderTest) -> None:
    now = datetime.now(UTC) + timedelta(seconds=2)
    for _ in range(20):
        if await bot.runtime.delivery.run_once(now) == 0:
            break
    await bot.runtime.delivery.run_once(now + timedelta(seconds=10))
    await bot.settle()


async def nudged(bot: BotUnderTest, pagerduty: RecordingPagerDutyServer) -> Any:
    """An incident of Mira's, assigned to Alice at level 1, not acknowledged for 20 minutes: its nudge."""
    bot.slack.add_user("U0ALICE01", "alice@example.com", "Alice Example")
    created = TRIGGERED.strftime("%Y-%m-%dT%H:%M:%SZ")
    pagerduty.add_incident(
        "PABC123",
        1,
        "Edge function 503s",
        "PSVC001",
        assignees=[ALICE],
        service_name="Mira Co-Pilot",
        escalation_policy=POLICY,
        created_at=created,
    )
    pagerduty.send_webhooks_to(f"{bot.server.url}/pagerduty/webhook", [SECRET])
    inc = pd.incident(created_at=TRIGGERED, assignees=[ALICE], escalation_policy=POLICY[1])
    await send(bot, pd.event("incident.triggered", inc, occurred_at=TRIGGERED, event_id="trig"))
    await drain(bot)
    [nudge] = [
        c for c in bot.slack.calls_to("chat.postMessage", channel=ALERTS) if c.text.startswith(":bell:")
    ]
    return nudge


async def click(bot: BotUnderTest, message: Any, action_id: str, user: str = "U0ALICE01") -> httpx.Response:
    """A click on a button of a thread reply, as Slack sends it: the message carries its `thread_ts`."""
    channel, ts = message.response["channel"], message.response["ts"]
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "thread_ts": message.thread_ts,
        },
        "trigger_id": f"{int(time.time())}.test.{uuid.uuid4().hex[:8]}",
        "channel": {"id": channel, "name": "mira-copilot-alerts"},
        "message": {"ts": ts, "thread_ts": message.thread_ts, "text": message.text},
        "response_url": bot.slack.response_url(uuid.uuid4().hex),
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b",
                "value": "PABC123",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return await bot.post_signed(urlencode({"payload": json.dumps(payload)}).encode())


def told(bot: BotUnderTest) -> list[str]:
    return [c.text for c in bot.slack.calls_to("response_url")]


def thread_lines(bot: BotUnderTest, channel: str) -> list[str]:
    return [c.text for c in bot.slack.calls_to("chat.postMessage", channel=channel) if c.thread_ts]


async def test_the_nudge_offers_acknowledge_and_escalate(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    nudge = await nudged(bot, pagerduty)
    [actions] = [b for b in nudge.blocks if b["type"] == "actions"]
    assert [(e["text"]["text"], e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("Acknowledge", "incident_ack", "PABC123"),
        ("Escalate", "incident_escalate", "PABC123"),
    ]
    [in_incidents] = [c for c in bot.slack.calls_to("chat.postMessage", channel=INCIDENTS) if c.thread_ts]
    assert in_incidents.blocks == nudge.blocks  # the same two buttons in both threads


async def test_escalate_puts_the_next_level_with_the_clickers_email_and_says_so(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    nudge = await nudged(bot, pagerduty)
    assert (await click(bot, nudge, "incident_escalate")).status_code == 200
    await bot.settle()

    [put] = pagerduty.calls_to("PUT", "/incidents/PABC123")
    assert put.body == {"incident": {"type": "incident_reference", "escalation_level": 2}}
    assert put.headers["from"] == "alice@example.com"
    assert put.status == 200
    [oncalls] = pagerduty.calls_to("GET", "/oncalls")
    assert oncalls.query["escalation_policy_ids[]"] == ["PEPMIRA"]
    assert pagerduty.calls.index(oncalls) < pagerduty.calls.index(put)
    assert told(bot) == ["PagerDuty escalated it to level 2 of 3 (Bob Backend)."]
    line = (
        ":arrow_double_up: <@U0ALICE01> escalated the incident in PagerDuty: level 1 → 2 of 3 (Bob Backend)."
    )
    [said] = [c for c in bot.slack.calls_to("chat.postMessage") if c.text == line]
    assert said.thread_ts == nudge.thread_ts and said.body["channel"] == nudge.response["channel"]

    await pagerduty.wait_for_webhooks(1, event_type="incident.escalated")
    await drain(bot)
    for channel in (ALERTS, INCIDENTS):
        assert thread_lines(bot, channel).count(":arrow_up: Escalated to Bob Backend") == 1
    async with bot.runtime.bot.storage.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT actor, outcome, after FROM audit_log WHERE action = 'incident.escalate'"
            )
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("U0ALICE01", "ok")] and "1 → 2" in str(rows[0][2])


async def test_a_double_click_escalates_once(bot: BotUnderTest, pagerduty: RecordingPagerDutyServer) -> None:
    nudge = await nudged(bot, pagerduty)
    await asyncio.gather(click(bot, nudge, "incident_escalate"), click(bot, nudge, "incident_escalate"))
    await bot.settle()
    assert len(pagerduty.calls_to("PUT", "/incidents/PABC123")) == 1
    assert sorted(told(bot)) == [
        "Already asking PagerDuty to escalate this incident.",
        "PagerDuty escalated it to level 2 of 3 (Bob Backend).",
    ]
    assert pagerduty.incident("PABC123")["assignments"][0]["assignee"]["id"] == BOB[0]  # type: ignore[index]


async def test_at_the_top_level_nothing_is_sent_and_the_thread_is_told(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    nudge = await nudged(bot, pagerduty)
    for _ in range(3):
        await bot.runtime.bot.storage.redis.flushdb()  # the click lock's 10 s are over: a new decision
        await click(bot, nudge, "incident_escalate")
        await bot.settle()
    puts = pagerduty.calls_to("PUT", "/incidents/PABC123")
    assert [p.body["incident"]["escalation_level"] for p in puts] == [2, 3]  # and no third
    top = (
        ":warning: <@U0ALICE01> asked to escalate, but the incident is already at the top level of its "
        "escalation policy (level 3 of 3: Erin Manager). Nobody is above it in PagerDuty."
    )
    assert told(bot)[-1] == top
    assert [c.thread_ts for c in bot.slack.calls_to("chat.postMessage") if c.text == top] == [nudge.thread_ts]


async def test_a_resolved_incident_is_not_escalated(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    nudge = await nudged(bot, pagerduty)
    client = PagerDutyClient(TOKEN, pagerduty.base_url)
    await client.resolve("PABC123", from_email="alice@example.com")
    await client.aclose()
    await click(bot, nudge, "incident_escalate")
    await bot.settle()
    assert pagerduty.calls_to("PUT", "/incidents/PABC123")[1:] == []
    assert told(bot) == [
        ":information_source: PagerDuty shows the incident resolved: there is nobody left to escalate to."
    ]


async def test_without_pagerduty_configured_escalate_says_how_to_configure_it(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    nudge = await nudged(bot, pagerduty)
    bot.runtime.bot.pagerduty = None
    await click(bot, nudge, "incident_escalate")
    await bot.settle()
    assert told(bot) == [
        ":warning: PagerDuty is not configured: set PAGERDUTY_API_TOKEN (and PAGERDUTY_FROM_EMAIL)."
    ]
    assert pagerduty.calls_to("PUT") == []


@pytest.mark.parametrize(
    ("incident", "words"),
    [
        ({"type": "incident_reference", "escalation_level": "2"}, "incident escalation_level must be int"),
        ({"type": "incident_reference", "escalation_level": True}, "incident escalation_level must be int"),
        ({"type": "incident_reference", "escalation_level": 0}, "must be a level of the escalation policy"),
        ({"type": "incident_reference", "escalation_level": 4}, "Escalation level 4 is not a level"),
        ({"escalation_level": 2}, "incident type is required"),
        (
            {"type": "ticket", "escalation_level": 2},
            "incident type must be one of incident, incident_reference",
        ),
        ({"type": "incident", "urgency": "urgent"}, "incident urgency must be one of high, low"),
    ],
)
async def test_the_recording_pagerduty_refuses_an_update_the_schema_does_not_allow(
    pagerduty: RecordingPagerDutyServer, incident: dict[str, Any], words: str
) -> None:
    pagerduty.add_incident(
        "PABC123", 1, "Edge function 503s", "PSVC001", assignees=[ALICE], escalation_policy=POLICY
    )
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.put(
            f"{pagerduty.base_url}/incidents/PABC123",
            json={"incident": incident},
            headers={"Authorization": f"Token token={TOKEN}", "From": "alice@example.com"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "Invalid Input Provided" and error["code"] == 2001
    assert any(words in e for e in error["errors"]), error
    assert pagerduty.incident("PABC123")["assignments"][0]["assignee"]["id"] == ALICE[0]  # type: ignore[index]


async def test_the_client_refuses_a_level_that_is_no_level(pagerduty: RecordingPagerDutyServer) -> None:
    client = PagerDutyClient(TOKEN, pagerduty.base_url)
    try:
        for bad in (0, -1, True):
            with pytest.raises(PagerDutyError, match="not an escalation level"):
                await client.escalate("PABC123", from_email="alice@example.com", escalation_level=bad)
    finally:
        await client.aclose()
    assert pagerduty.calls == []  # refused before anything was sent


async def test_an_unanswered_escalation_is_read_back_not_told_as_a_failure(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer, pagerduty: RecordingPagerDutyServer
) -> None:
    """PagerDuty applies the escalation at once and answers after the client's timeout: the clicker hears "no answer
    yet", then, from reading the level back, that it applied; the thread is told once."""
    quick = settings.model_copy(update={"pagerduty_timeout_seconds": 1.0})
    async with running_bot(quick, catalog, slack) as bot:
        nudge = await nudged(bot, pagerduty)
        pagerduty.slow_next("PUT", 30.0, path_prefix="/incidents/PABC123")
        await click(bot, nudge, "incident_escalate")
        await bot.settle()
        assert told(bot) == [
            ":hourglass_flowing_sand: PagerDuty did not answer within 1 s: no answer yet — it may still apply. "
            "Reading the incident back from PagerDuty…",
            "PagerDuty escalated it to level 2 of 3 (Bob Backend).",
        ]
        assert len(pagerduty.calls_to("PUT", "/incidents/PABC123")) == 1  # never sent twice
        assert (
            len([c for c in bot.slack.calls_to("chat.postMessage") if c.text.startswith(":arrow_double_up:")])
            == 1
        )
