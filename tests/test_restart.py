"""/restart: the runbooks' Level-1 restart with one Confirm by an owner or the primary on-call, announced in the
service's alerts channel and in its open incident's thread; audited; refused while another run of the service is
open; bad input answered with the one usage line. Real Postgres, Redis, the recording Slack server, a recording
deploy hook, and a real PagerDuty webhook for the open incident.
"""

# ruff: noqa: F811 - the fixtures are imported from tests.test_rollback and named again as arguments

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.catalog import Catalog
from bot.scheduler import utc_now
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from stand_ins.recording_hooks import RecordingHookServer
from stand_ins.recording_slack import RecordingSlackServer
from tests import pd_payloads as pd
from tests.harness import CHANNEL, BotUnderTest, answer, blocks_text, fake_service, running_bot
from tests.test_rollback import (  # noqa: F401 - fixtures
    CONFIRMER,
    REQUESTER,
    STRANGER,
    _click,
    _drive,
    _ephemerals,
    _hook_secrets,
    _owned,
    _request,
    _rows,
    _thread,
    catalog_env,
    health,
    healthy,
    hooks,
    mira_events,
    supabase,
)
from tests.test_rollback import settings as settings  # noqa: F401

PD_SECRET = "pd-webhook-secret-for-restart-tests"


@pytest.fixture
async def assistant_env(
    catalog_env: dict[str, str], hooks: RecordingHookServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.setenv("AI_ASSISTANT_HOOK_SECRET", "assistant-secret")
    hooks.require_secret("assistant", "assistant-secret")
    return {**catalog_env, "AI_ASSISTANT_RESTART_HOOK_URL": hooks.url("assistant")}


@pytest.fixture
async def catalog(assistant_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Catalog]:
    """The owned bundled catalog with AI Assistant's /health and /info answering healthy."""
    healthy = answer({"status": "healthy"})
    async with fake_service({"/health": healthy, "/info": healthy}) as url:
        yield _owned(tmp_path, {**assistant_env, "AI_ASSISTANT_BASE_URL": url})


@pytest.fixture
def pd_settings(settings: Settings) -> Settings:  # noqa: F811
    return settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(PD_SECRET)]})


async def _restart(bot: BotUnderTest, text: str, user: str) -> str:
    """Ask for a restart; the ts of the visible request message (the run's root)."""
    await bot.command("/restart", text, user=user)
    await bot.settle()
    roots = [c for c in bot.slack.calls_to("chat.postMessage") if c.channel == CHANNEL and not c.thread_ts]
    assert roots and roots[-1].response, "the request was not posted in the channel"
    return str(roots[-1].response["ts"])


async def _open_incident(bot: BotUnderTest) -> tuple[str, str]:
    """An AI Assistant incident triggered through the real webhook route; the ts of its alerts-channel root."""
    payload = pd.event(
        "incident.triggered",
        pd.incident(id="PINC001", number=7, title="AI Assistant unresponsive", service_name="AI Assistant"),
        event_id="restart-test-1",
    )
    body = pd.body(payload)
    response = await bot.client.post(
        "/pagerduty/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Webhook-Id": "restart-test-1",
            **sign_pagerduty_webhook(PD_SECRET, body),
        },
    )
    assert response.status_code == 202
    worker = bot.runtime.delivery
    for _ in range(5):
        if await worker.run_once(utc_now()) == 0:
            break
    await bot.settle()
    [root] = [
        c
        for c in bot.slack.calls_to("chat.postMessage")
        if c.channel == "#mira-copilot-alerts"
        and not c.thread_ts
        and "AI Assistant unresponsive" in (c.text or blocks_text(c.blocks))
    ]
    assert root.response is not None
    return str(root.response["channel"]), str(root.response["ts"])


async def test_an_owner_restarts_alone_and_it_is_announced_in_alerts_and_the_open_incidents_thread(
    pd_settings: Settings,
    catalog: Catalog,
    slack: RecordingSlackServer,
    hooks: RecordingHookServer,
    database_url: str,
) -> None:
    async with running_bot(pd_settings, catalog, slack) as bot:
        incident_root = await _open_incident(bot)
        root = await _restart(bot, "ai-assistant unresponsive since 09:10", user=REQUESTER)
        [posted] = [
            c for c in bot.slack.calls_to("chat.postMessage") if c.response and c.response["ts"] == root
        ]
        text = blocks_text(posted.blocks)
        assert (
            "Restart #1: AI Assistant" in text
            and "Level-1 restart: one Confirm by an owner or the primary on-call" in text
        )
        assert "Two-person rule" not in text
        await _click(bot, root, "rollback_confirm", "1", user=REQUESTER)  # the requester confirms their own
        await _click(bot, root, "rollback_confirm", "1", user=REQUESTER)  # a double click confirms once
        t0 = utc_now()
        for seconds in (0, 31):
            await _drive(bot, t0 + timedelta(seconds=seconds))
    assert len(hooks.calls) == 1 and hooks.calls[0].signature_ok is True
    assert hooks.calls[0].body["inputs"] == {"action": "restart"}
    announcements = [
        c for c in slack.calls_to("chat.postMessage") if "is restarting *AI Assistant*" in (c.text or "")
    ]
    by_thread = {c.thread_ts: c.channel for c in announcements}
    assert by_thread == {None: "#mira-copilot-alerts", incident_root[1]: incident_root[0]}
    assert "Reason: unresponsive since 09:10" in (announcements[0].text or "")
    assert await _rows(database_url, "SELECT kind, status, confirmed_by FROM rollback_runs") == [
        ("restart", "done", REQUESTER)
    ]
    audit = await _rows(
        database_url, "SELECT action, actor FROM audit_log WHERE action LIKE 'restart.%%' ORDER BY id"
    )
    assert audit[:2] == [("restart.request", REQUESTER), ("restart.confirm", REQUESTER)]
    assert audit[-1] == ("restart.done", REQUESTER)
    [summary] = [
        c for c in slack.calls_to("chat.postMessage") if "(plan `restart`) finished" in (c.text or "")
    ]
    assert summary.channel == "#incidents"
    assert "Restart #1 of *AI Assistant* (plan `restart`) finished" in (summary.text or "")
    assert f"Requested and confirmed by <@{REQUESTER}>" in (summary.text or "")


async def test_a_stranger_may_not_restart_and_a_rollback_keeps_the_two_person_rule(bot: BotUnderTest) -> None:
    await bot.command("/restart", "ai-assistant", user=STRANGER)
    await bot.settle()
    assert _ephemerals(bot)[-1].startswith(":lock: Only the owners of AI Assistant may restart AI Assistant")
    root = await _request(bot, "fa", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=REQUESTER)
    assert "the two-person rule says the requester cannot confirm their own rollback" in _ephemerals(bot)[-1]


async def test_a_restart_while_a_rollback_of_the_service_is_open_is_refused(bot: BotUnderTest) -> None:
    await _request(bot, "ai-assistant restart", user=REQUESTER)
    await bot.command("/restart", "assistant", user=CONFIRMER)
    await bot.settle()
    assert _ephemerals(bot)[-1].startswith(
        ":no_entry: Rollback #1 of AI Assistant (plan `restart`) is still open: waiting for confirmation"
    )


async def test_restart_usage_errors_are_one_line_with_the_corrected_command(bot: BotUnderTest) -> None:
    reply = (await bot.command("/restart", "", user=REQUESTER)).json()["text"]
    assert "Tell me which service to restart: ivy-v2, ai-assistant, fa-ai-system." in reply
    assert reply.splitlines()[-1].startswith("Usage: `/restart SERVICE [reason]` — Restart a service")
    reply = (await bot.command("/restart", "mira", user=REQUESTER)).json()["text"]
    assert "Mira Co-Pilot has no restart plan in the catalog" in reply
    reply = (await bot.command("/restart", "now ai-assistant", user=REQUESTER)).json()["text"]
    assert "Did you mean `/restart ai-assistant now`?" in reply
    assert len(reply.splitlines()) == 3


def test_the_restart_command_is_in_the_registry_for_next_step_buttons() -> None:
    """A generic "next step" button runs the text `/restart ai-assistant` through the registry."""
    from bot.catalog import load_catalog
    from handlers.capabilities import build_registry

    command = build_registry().get("/restart")
    assert command is not None and command.available and command.dangerous and command.guard is not None
    assert command.parse is not None
    parsed = command.parse("ai-assistant", load_catalog())
    assert parsed.service.name == "ai-assistant" and parsed.plan.name == "restart"
    assert CHANNEL  # the harness channel the buttons post in
