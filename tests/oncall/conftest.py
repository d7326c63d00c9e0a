"""Fixtures of the on-call tests: a recording PagerDuty with the rotation of world.py, Slack users for the
people's emails, stand-in deployments for /health, settings pointing at them, and a second bot process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.settings import Settings
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import BotUnderTest, answer, fake_service, running_bot
from tests.oncall.world import (
    PD_TOKEN,
    PEOPLE,
    POLICY,
    ROUTING_KEY,
    RUNBOOK_URL,
    WEBHOOK_SECRET,
    rotation_oncalls,
)


@pytest.fixture
async def pagerduty() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(PD_TOKEN) as server:
        for pd_id, name, email, _ in PEOPLE:
            server.add_user(pd_id, name, email)
        server.set_oncalls(rotation_oncalls())
        server.add_routing_key(ROUTING_KEY, "PSVCMIRA", "Mira Co-Pilot")
        yield server


@pytest.fixture
async def deployments() -> AsyncIterator[str]:
    """Mira's edge function answers ok; FA's ALB health check answers 503 (its critical probe: FA is down)."""
    async with fake_service(
        {
            "/mira/functions/v1/agent-chat": answer({"status": "ok"}),
            "/fa/health": answer({"status": "unhealthy"}, 503),
        }
    ) as url:
        yield url


@pytest.fixture
def catalog_env(deployments: str) -> dict[str, str]:
    return {
        "MIRA_PD_ESCALATION_POLICY": POLICY[0],
        "MIRA_PD_ROUTING_KEY": ROUTING_KEY,
        "MIRA_RUNBOOK_URL": RUNBOOK_URL,
        "MIRA_BASE_URL": f"{deployments}/mira",
        "FA_BASE_URL": f"{deployments}/fa",
    }


@pytest.fixture
def settings(
    settings: Settings, pagerduty: RecordingPagerDutyServer, slack: RecordingSlackServer
) -> Settings:
    for _, name, email, slack_id in PEOPLE:
        slack.add_user(slack_id, email, name)
    return settings.model_copy(
        update={
            "pagerduty_api_token": SecretStr(PD_TOKEN),
            "pagerduty_api_url": pagerduty.base_url,
            "pagerduty_events_url": pagerduty.base_url,
            "pagerduty_from_email": "oncall-bot@example.com",
            "pagerduty_webhook_secrets": [SecretStr(WEBHOOK_SECRET)],
        }
    )


@pytest.fixture
async def replica(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> AsyncIterator[BotUnderTest]:
    """A second bot process's runtime on the same Postgres schema and Redis database as `bot`."""
    async with running_bot(settings, catalog, slack) as other:
        yield other
