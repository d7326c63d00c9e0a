"""The post-mortem draft (issue 14): it cites the incident's own service's runbook — from the service's catalog
entry, with a fallback for a service whose runbook has no post-mortem step — and there is one per incident, in
the alerts thread, the #incidents thread linking to it, posted once even by two replicas."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from stand_ins.recording_slack import RecordingSlackServer
from tests import pd_payloads as pd
from tests.harness import BotUnderTest, blocks_text, running_bot

SECRET = "pd-webhook-secret-postmortem"
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
INCIDENTS = "#incidents"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET)]})


async def send(bot: BotUnderTest, payload: dict[str, Any]) -> None:
    body = pd.body(payload)
    response = await bot.client.post(
        "/pagerduty/webhook",
        content=body,
        headers={"Content-Type": "application/json", **sign_pagerduty_webhook(SECRET, body)},
    )
    assert response.status_code == 202


def triggered_and_resolved(service_name: str, incident_id: str = "PPM0001") -> list[dict[str, Any]]:
    def inc(status: str) -> dict[str, Any]:
        return pd.incident(
            id=incident_id,
            status=status,
            service_id="PSVC-" + incident_id,
            service_name=service_name,
            created_at=T0,
        )

    alice = ("PUSER01", "Alice Example")
    return [
        pd.event("incident.triggered", inc("triggered"), occurred_at=T0, event_id=f"{incident_id}-t"),
        pd.event(
            "incident.resolved",
            inc("resolved"),
            occurred_at=T0 + timedelta(minutes=9),
            event_id=f"{incident_id}-r",
            agent=alice,
        ),
    ]


async def drain(bot: BotUnderTest, now: datetime) -> None:
    for _ in range(20):
        if await bot.runtime.delivery.run_once(now) == 0:
            break
    await bot.settle()


def thread(slack: RecordingSlackServer, channel: str) -> list[Any]:
    return [c for c in slack.calls_to("chat.postMessage", channel=channel) if c.thread_ts]


def drafts(slack: RecordingSlackServer) -> list[Any]:
    return [c for c in slack.calls_to("chat.postMessage") if (c.text or "").startswith("Post-mortem draft")]


@pytest.mark.parametrize(
    ("service_name", "alerts", "cited", "not_cited"),
    [
        (
            "Ivy v2",
            "#mira-copilot-alerts",
            "*Next steps, from the Ivy v2 On-Call Runbook (Post-Incident):*\n1. Document the issue in incident log\n"
            "2. Update runbook with new learnings\n3. Schedule review with team\n4. Update monitoring if needed",
            "FA",
        ),
        (
            "FA AI System",
            "#mira-copilot-alerts",
            "*Next steps, from the FA AI System - Operations Runbook (Incident Response → P0 Resolution Steps):*\n"
            "1. Document incident in incident log\n2. Schedule post-mortem within 48 hours",
            "Ivy",
        ),
        (
            "Mira Co-Pilot",
            "#mira-copilot-alerts",
            "*Next steps, from the Mira Co-Pilot Production Runbook (§1 Responsibilities):*\n"
            "1. Document incidents in post-mortem template",
            "48 hours",
        ),
        (
            "AI Assistant",
            "#mira-copilot-alerts",
            "*Next steps:* the AI Assistant Operations Runbook has no post-mortem step: agree on a review with the "
            "team, and give ai-assistant a `postmortem` entry in the service catalog.",
            "48 hours",
        ),
    ],
)
async def test_the_draft_cites_the_incidents_own_services_runbook_once_in_the_alerts_thread(
    bot: BotUnderTest, service_name: str, alerts: str, cited: str, not_cited: str
) -> None:
    for payload in triggered_and_resolved(service_name):
        await send(bot, payload)
    await drain(bot, T0 + timedelta(minutes=10))

    [draft] = drafts(bot.slack)
    [alerts_root] = [c for c in bot.slack.calls_to("chat.postMessage", channel=alerts) if not c.thread_ts]
    assert (
        draft.body["channel"] == bot.slack.channel_id(alerts)
        and draft.thread_ts == alerts_root.response["ts"]
    )
    shown = blocks_text(draft.blocks)
    assert cited in shown
    assert not_cited not in shown

    [incidents_root] = [
        c for c in bot.slack.calls_to("chat.postMessage", channel=INCIDENTS) if not c.thread_ts
    ]
    replies = thread(bot.slack, INCIDENTS)
    assert [c.text.split(":", 2)[1] for c in replies] == ["white_check_mark", "memo"]
    link = replies[1]
    assert link.thread_ts == incidents_root.response["ts"]
    permalink = f"https://console.slack.test/archives/{draft.response['channel']}/p{draft.response['ts'].replace('.', '')}"
    assert link.text.startswith(f":memo: Post-mortem draft for [#1]: in <{permalink}?thread_ts=")
    assert link.text.endswith(f"|the {alerts} thread>.")


async def test_the_post_mortem_reminder_keeps_the_services_deadline(bot: BotUnderTest) -> None:
    """FA's runbook: within 48 hours. The reminder names it; it is not due before."""
    for payload in triggered_and_resolved("FA AI System"):
        await send(bot, payload)
    await drain(bot, T0 + timedelta(minutes=10))
    worker = bot.runtime.delivery
    await worker.run_once(T0 + timedelta(hours=47))
    assert not any("48 hours ago" in (c.text or "") for c in bot.slack.calls_to("chat.postMessage"))
    await worker.run_once(T0 + timedelta(hours=48, minutes=10))
    reminders = [c for c in bot.slack.calls_to("chat.postMessage") if "48 hours ago" in (c.text or "")]
    assert {c.body["channel"] for c in reminders} == {
        bot.slack.channel_id("#mira-copilot-alerts"),
        bot.slack.channel_id(INCIDENTS),
    }


async def test_two_replicas_and_a_redelivery_post_one_draft_and_one_link(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> None:
    async with running_bot(settings, catalog, slack) as one, running_bot(settings, catalog, slack) as two:
        trigger, resolve = triggered_and_resolved("Ivy v2")
        await send(one, trigger)
        await drain(one, T0 + timedelta(minutes=1))
        await send(one, resolve)
        await send(two, resolve)  # PagerDuty redelivers it to the other replica
        await asyncio.gather(
            one.runtime.delivery.run_once(T0 + timedelta(minutes=10)),
            two.runtime.delivery.run_once(T0 + timedelta(minutes=10)),
        )
        await drain(one, T0 + timedelta(minutes=11))
        await drain(two, T0 + timedelta(minutes=11))
    assert len(drafts(slack)) == 1
    links = [
        c for c in slack.calls_to("chat.postMessage") if (c.text or "").startswith(":memo: Post-mortem draft")
    ]
    assert len(links) == 1 and links[0].body["channel"] == slack.channel_id(INCIDENTS)
    assert json.dumps(drafts(slack)[0].blocks).count("Post-mortem scheduled") == 1
