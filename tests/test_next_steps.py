"""Next steps (issue 14): the catalog's per-service alerts channels and next steps, the buttons they become under a
/latency breach, a down service in /health and an incident's root, and the click that runs a step's command
exactly as if typed — with its guard, its usage errors and its ack — asserted on what reached the recording Slack
server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
import yaml
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from bot.catalog import BUNDLED_CATALOG, Catalog, CatalogError, load_catalog
from bot.catalog.next_steps import anchor
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from handlers.next_steps import next_step_blocks
from integrations.flag_table import PostgresFlagTable
from stand_ins.recording_slack import TEAM_ID, RecordingSlackServer
from tests import pd_payloads as pd
from tests.harness import CHANNEL, USER, BotUnderTest, answer, blocks_text, fake_service, running_bot

ADMIN = "U0ADMIN01"
RUNBOOK_URL = "https://git.example.com/runbooks/blob/main"
PD_SECRET = "pd-webhook-secret-next-steps"


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"] if e["type"] == "button"]


def _steps(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in _buttons(blocks) if b["action_id"].startswith("next_step.")]


def _click_body(
    slack: RecordingSlackServer,
    action_id: str,
    value: str | None,
    *,
    user: str = USER,
    message_ts: str = "1700000000.000100",
    thread_ts: str | None = None,
    response_key: str | None = None,
) -> bytes:
    """A click on a button of a message (in a thread when `thread_ts`), as Slack sends it."""
    message: dict[str, Any] = {"ts": message_ts, "text": ""}
    container: dict[str, Any] = {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL}
    if thread_ts:
        message["thread_ts"] = thread_ts
        container["thread_ts"] = thread_ts
    button: dict[str, Any] = {"type": "button", "action_id": action_id, "block_id": "next_steps.x"}
    if value is not None:
        button["value"] = value
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token",
        "container": container,
        "trigger_id": f"{int(time.time())}.test.{uuid.uuid4().hex[:8]}",
        "channel": {"id": CHANNEL, "name": "ops"},
        "message": message,
        "response_url": slack.response_url(response_key or uuid.uuid4().hex),
        "actions": [{**button, "action_ts": f"{time.time():.6f}"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def _click(bot: BotUnderTest, action_id: str, value: str | None, **kwargs: Any) -> None:
    response = await bot.post_signed(_click_body(bot.slack, action_id, value, **kwargs))
    assert response.status_code == 200
    await bot.settle()


def _answers(bot: BotUnderTest) -> list[str]:
    return [c.text for c in bot.slack.calls_to("response_url")]


# --- the catalog ------------------------------------------------------------------------------------------------


def test_ivy_ai_assistant_and_fa_read_their_alerts_channel_and_fall_back_when_unset() -> None:
    unset = load_catalog(env={})
    for name in ("ivy-v2", "ai-assistant", "fa-ai-system"):
        service = unset.find(name)
        assert service is not None and service.channels.alerts is None, "unset: ALERTS_CHANNEL decides"
    assert unset.find("mira")
    mira = unset.find("mira")
    assert mira is not None and mira.channels.alerts == "#mira-copilot-alerts"

    env = {
        "IVY_ALERTS_CHANNEL": "#ivy-alerts",
        "AI_ASSISTANT_ALERTS_CHANNEL": "C0ASSIST1",
        "FA_ALERTS_CHANNEL": " ",
    }
    own = load_catalog(env=env)
    assert [own.find(n).channels.alerts for n in ("ivy", "assistant", "fa")] == [  # type: ignore[union-attr]
        "#ivy-alerts",
        "C0ASSIST1",
        None,  # blank is unset
    ]


def _catalog_with(tmp_path: Path, service: str, situation: str, step: dict[str, Any]) -> Path:
    data = yaml.safe_load(BUNDLED_CATALOG.read_text(encoding="utf-8"))
    entry = next(s for s in data["services"] if s["name"] == service)
    entry["next_steps"][situation] = [step]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("service", "step", "problem"),
    [
        ("ivy-v2", {"title": "x", "command": "/flag preset ivy-v2 calm"}, "unknown preset calm of ivy-v2"),
        ("ivy-v2", {"title": "x", "command": "/rollback ivy-v2 sideways"}, "unknown rollback plan sideways"),
        ("ivy-v2", {"title": "x", "command": "/flag preset ivy-v3 emergency"}, "unknown service ivy-v3"),
        ("fa-ai-system", {"title": "x", "command": "/flag off NO_SUCH_FLAG"}, "unknown flag NO_SUCH_FLAG"),
        ("fa-ai-system", {"title": "x", "command": "/restart fa-ai-sytem"}, "names no known service"),
        ("fa-ai-system", {"title": "x", "command": "/deploy fa"}, "a step runs one of /flag"),
        ("fa-ai-system", {"title": "x", "command": "restart fa"}, "starts with `/`"),
        ("fa-ai-system", {"title": "x"}, "exactly one of `command` or `runbook`"),
        (
            "fa-ai-system",
            {"title": "x", "runbook": {"section": "P0", "file": "nope.md"}},
            "names runbook nope.md",
        ),
    ],
)
def test_a_step_that_names_what_does_not_exist_is_refused_at_load(
    tmp_path: Path, service: str, step: dict[str, Any], problem: str
) -> None:
    with pytest.raises(CatalogError) as refused:
        load_catalog(_catalog_with(tmp_path, service, "down", step), env={})
    assert problem in str(refused.value)


def test_restart_steps_are_checked_loosely_and_cross_service_presets_resolve(tmp_path: Path) -> None:
    path = _catalog_with(tmp_path, "fa-ai-system", "incident", {"title": "x", "command": "/restart fa"})
    assert load_catalog(path, env={}).find("fa") is not None
    path = _catalog_with(
        tmp_path, "mira-copilot", "down", {"title": "x", "command": "/flag preset ivy emergency"}
    )
    assert load_catalog(path, env={}).find("mira") is not None


def test_runbook_sections_link_to_github_anchors_only_when_the_url_is_set() -> None:
    assert anchor("🚨 Critical Alerts") == "-critical-alerts"
    assert anchor("P0: Complete Service Outage") == "p0-complete-service-outage"
    assert anchor("Issue: Service Won't Start") == "issue-service-wont-start"
    ivy = load_catalog(env={"IVY_ONCALL_RUNBOOK_URL": f"{RUNBOOK_URL}/ivy-v2-oncall-runbook.md"}).find("ivy")
    assert ivy is not None
    blocks = next_step_blocks(ivy, ivy.next_steps.incident)
    links = [b["url"] for b in _steps(blocks) if "url" in b]
    assert links == [
        f"{RUNBOOK_URL}/ivy-v2-oncall-runbook.md#-critical-alerts",
        f"{RUNBOOK_URL}/ivy-v2-oncall-runbook.md#-escalation",
    ]
    unlinked = load_catalog(env={}).find("ivy")
    assert unlinked is not None
    blocks = next_step_blocks(unlinked, unlinked.next_steps.incident)
    assert all("url" not in b for b in _steps(blocks))
    assert "set IVY_ONCALL_RUNBOOK_URL to link it" in blocks_text(blocks)


# --- /health: a down service ------------------------------------------------------------------------------------


async def _html_503(request: Request) -> Response:
    return Response(
        "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", 503, media_type="text/html"
    )


@pytest.fixture
async def fa_down(database_url: str, redis_url: str) -> AsyncIterator[dict[str, str]]:
    """FA's ALB check answering its P0 symptom (503, zero healthy targets); Ivy's backend an HTML 503."""
    fa_body = {
        "status": "unhealthy",
        "healthy_targets": 0,
        "api_token": "hunter2-secret",
        "message": "<!channel> all targets gone",
    }
    async with (
        fake_service({"/health": answer(fa_body, 503)}) as fa,
        fake_service({"/ai/router/health": answer({"status": "ok"}), "/health": _html_503}) as ivy,
    ):
        yield {
            "FA_BASE_URL": fa,
            "FA_DATABASE_URL": database_url,
            "FA_REDIS_URL": redis_url,
            "FA_RUNBOOK_URL": f"{RUNBOOK_URL}/fa-ai-system-operations-runbook.md",
            "IVY_BASE_URL": ivy,
        }


async def test_a_down_service_shows_its_answer_and_its_runbook_next_steps(
    settings: Settings, slack: RecordingSlackServer, fa_down: dict[str, str]
) -> None:
    async with running_bot(settings, load_catalog(env=fa_down), slack) as bot:
        await bot.command("/health")
        [post] = await slack.wait_for("chat.postMessage", timeout=10)
    text = blocks_text(post.blocks)
    assert ":red_circle: *FA AI System* — down" in text
    assert "HTTP 503 (expected 200) · answered `status: unhealthy, healthy_targets: 0" in text
    assert "hunter2" not in text and "api_token" not in text, "credential-like fields are left out"
    assert "&lt;!channel&gt; all targets gone" in text and "<!channel>" not in text
    assert (
        "HTTP 503 (expected 200)" in text and "<html>" not in text and "503 Service Temporarily" not in text
    )
    steps = _steps(post.blocks)
    assert [(b["text"]["text"], b.get("value"), b.get("url")) for b in steps] == [
        ("Roll back (blue-green)", "/rollback fa-ai-system blue-green", None),
        ("Restart tasks", "/restart fa-ai-system", None),
        (
            "Runbook: P0 Complete Service Outage",
            None,
            f"{RUNBOOK_URL}/fa-ai-system-operations-runbook.md#p0-complete-service-outage",
        ),
    ]
    assert [b["action_id"] for b in steps] == [
        "next_step.run.fa-ai-system.1",
        "next_step.run.fa-ai-system.2",
        "next_step.link.fa-ai-system.3",
    ]
    ids = [b["action_id"] for b in _buttons(post.blocks)]
    assert len(ids) == len(set(ids)), "action_ids are unique in the message"
    # Ivy is degraded (its backend fails, the router answers), not down: no next steps of its own.
    assert ":large_yellow_circle: *Ivy v2* — degraded" in text
    assert not any(b["action_id"].startswith("next_step.run.ivy-v2") for b in steps)


# --- /latency: a breach -----------------------------------------------------------------------------------------


async def test_a_latency_breach_offers_the_runbook_steps_for_what_breached(
    settings: Settings, slack: RecordingSlackServer, database_url: str
) -> None:
    env = {
        "IVY_DATABASE_URL": database_url,
        "IVY_ONCALL_RUNBOOK_URL": f"{RUNBOOK_URL}/ivy-v2-oncall-runbook.md",
    }
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE ai_router_events (query_kind text, latency_ms integer, success boolean, "
            "created_at timestamptz NOT NULL)"
        )
        await conn.execute(
            "INSERT INTO ai_router_events SELECT 'conversational', 2400, true, now() - interval '30 seconds' "
            "FROM generate_series(1, 20)"
        )
        await conn.execute(
            "INSERT INTO ai_router_events SELECT 'rag', 300, true, now() - interval '30 seconds' "
            "FROM generate_series(1, 20)"
        )
    async with running_bot(settings, load_catalog(env=env), slack) as bot:
        await bot.command("/latency", "ivy-v2 5m")
        [breach] = await slack.wait_for("chat.postMessage", timeout=15)
        await bot.settle()
        slack.reset()
        await bot.command("/latency", "ivy-v2 5m rag")
        [within] = await slack.wait_for("chat.postMessage", timeout=15)
        await bot.settle()
    assert breach.text.startswith("Ivy v2 latency (conversational), last 5m: BREACH (p95 2.40 s")
    steps = _steps(breach.blocks)
    assert [(b["text"]["text"], b.get("value") or b.get("url")) for b in steps] == [
        ("Apply preset emergency", "/flag preset ivy-v2 emergency"),
        ("Roll back (immediate)", "/rollback ivy-v2 immediate"),
        ("Runbook: Critical Alerts", f"{RUNBOOK_URL}/ivy-v2-oncall-runbook.md#-critical-alerts"),
    ], "the error-rate step is not offered: the error rate did not breach"
    assert within.text.startswith("Ivy v2 latency (rag), last 5m: OK")
    assert _steps(within.blocks) == []


# --- an incident's root -----------------------------------------------------------------------------------------


async def test_an_incident_root_carries_its_services_next_steps(
    settings: Settings, slack: RecordingSlackServer
) -> None:
    settings = settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(PD_SECRET)]})
    catalog = load_catalog(env={"IVY_ALERTS_CHANNEL": "#ivy-alerts"})
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    incident = pd.incident(
        id="PIVY001", number=7, service_id="PSVCIVY", service_name="Ivy v2", created_at=start
    )
    payload = pd.event("incident.triggered", incident, occurred_at=start, event_id="ivy-1")
    body = pd.body(payload)
    async with running_bot(settings, catalog, slack) as bot:
        response = await bot.client.post(
            "/pagerduty/webhook",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Webhook-Id": payload["event"]["id"],
                **sign_pagerduty_webhook(PD_SECRET, body),
            },
        )
        assert response.status_code == 202
        for _ in range(5):
            await bot.runtime.delivery.run_once(start + timedelta(seconds=1))
        await bot.settle()
    roots = [c for c in slack.calls_to("chat.postMessage") if not c.thread_ts]
    ivy_root = next(c for c in roots if c.channel == "#ivy-alerts")  # Ivy's own alerts channel
    [attachment] = ivy_root.body["attachments"]
    steps = _steps(attachment["blocks"])
    assert [(b["text"]["text"], b.get("value")) for b in steps] == [
        ("Apply preset emergency", "/flag preset ivy-v2 emergency"),
        ("Roll back (immediate)", "/rollback ivy-v2 immediate"),
    ]
    assert (
        "`ivy-v2-oncall-runbook.md` § 🚨 Critical Alerts (set IVY_ONCALL_RUNBOOK_URL to link it)"
        in blocks_text(attachment["blocks"])
    )
    assert "#mira-copilot-alerts" not in [c.channel for c in roots]


# --- the click --------------------------------------------------------------------------------------------------


@pytest.fixture
def catalog_env(fa_down: dict[str, str]) -> dict[str, str]:
    return fa_down


async def test_a_step_runs_its_command_as_typed_and_answers_in_the_buttons_thread(bot: BotUnderTest) -> None:
    await _click(bot, "next_step.run.fa-ai-system.7", "/health fa", thread_ts="1700000000.000001")

    [ack] = _answers(bot)
    assert ack == "`/health fa` — Checking FA AI System (3 probes)…"
    [post] = bot.slack.calls_to("chat.postMessage")
    assert post.channel == CHANNEL and post.thread_ts == "1700000000.000001"
    assert post.text.startswith("FA AI System: down")


async def test_a_double_click_runs_the_step_once(bot: BotUnderTest) -> None:
    await _click(bot, "next_step.run.fa-ai-system.1", "/health fa")
    await _click(bot, "next_step.run.fa-ai-system.1", "/health fa")
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert _answers(bot)[-1] == "Already running that step; its answer follows."


async def test_a_bad_command_on_a_button_gets_the_same_short_usage_as_typed(bot: BotUnderTest) -> None:
    await _click(bot, "next_step.run", "/latency ivy-v2 2h")
    [answer_text] = _answers(bot)
    assert answer_text.startswith(
        "`/latency ivy-v2 2h` — :grey_question: window must be one of 5m, 1h, 24h, 7d"
    )
    assert "Did you mean `1h`?" in answer_text
    assert answer_text.count("Usage:") == 1 and answer_text.count("\n") == 2
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_button_that_names_no_command_runs_nothing(bot: BotUnderTest) -> None:
    await _click(bot, "next_step.run.x.1", "rm -rf /")
    assert _answers(bot) == ["That button names no command; run the command yourself."]
    await _click(bot, "next_step.run.x.2", "/nope")
    assert "I don't know the command `/nope`" in _answers(bot)[-1]
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_runbook_link_click_is_only_acked(bot: BotUnderTest) -> None:
    await _click(bot, "next_step.link.fa-ai-system.3", None)
    assert _answers(bot) == []
    assert bot.slack.calls_to("chat.postEphemeral") == []


async def test_a_dangerous_step_clicked_is_still_guarded(bot: BotUnderTest, database_url: str) -> None:
    """The bundled catalog has no owners and BOT_ADMINS is unset: the flag preset is refused (fail closed), with
    how to configure it, audited, and nothing changes."""
    await _click(bot, "next_step.run.ivy-v2.1", "/flag preset ivy-v2 emergency")
    answers = _answers(bot)
    assert answers[0].startswith("`/flag preset ivy-v2 emergency` — ")
    assert any("BOT_ADMINS" in text or "owners" in text for text in answers[1:]), answers
    assert bot.slack.calls_to("chat.postMessage") == []
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT actor, action, outcome, service FROM audit_log")).fetchall()
    assert (USER, "flag.refused", "refused", "ivy-v2") in rows


# --- another capability's button: `/restart` through next_step.run ----------------------------------------------


@pytest.fixture
async def restart_bot(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> AsyncIterator[BotUnderTest]:
    admins = settings.model_copy(update={"bot_admins": [ADMIN]})
    async with running_bot(admins, catalog, slack) as bot:
        yield bot


async def test_a_restart_button_of_another_capability_runs_behind_its_guard(
    restart_bot: BotUnderTest,
) -> None:
    """The flag reply's "Restart ai-assistant" (plain `next_step.run`, value `/restart ai-assistant`) runs the
    rollback capability's real `/restart`: refused for a stranger, a restart request for an admin."""
    bot = restart_bot
    await _click(bot, "next_step.run", "/restart ai-assistant", user=USER)
    assert _answers(bot)[0] == "`/restart ai-assistant` — Preparing the restart of AI Assistant…"
    assert len(_answers(bot)) == 2, "refused: the clicking user owns nothing"
    assert "Only the owners" in _answers(bot)[1]
    assert bot.slack.calls_to("chat.postMessage") == []

    await _click(bot, "next_step.run", "/restart ai-assistant", user=ADMIN, message_ts="1700000000.000200")
    [post] = bot.slack.calls_to("chat.postMessage")
    assert post.channel == CHANNEL
    assert "Restart #1: AI Assistant" in blocks_text(post.blocks)


async def test_an_allowed_click_applies_the_preset_and_announces_it_in_ivys_own_alerts_channel(
    settings: Settings, slack: RecordingSlackServer, database_url: str
) -> None:
    """The Ivy BREACH's first step, clicked by an admin: the preset is applied as typed, and the announcement goes
    to IVY_ALERTS_CHANNEL, not the bot-wide #mira-copilot-alerts."""
    await PostgresFlagTable(database_url, "feature_flags").ensure_table()
    catalog = load_catalog(env={"IVY_DATABASE_URL": database_url, "IVY_ALERTS_CHANNEL": "#ivy-alerts"})
    admins = settings.model_copy(update={"bot_admins": [ADMIN]})
    async with running_bot(admins, catalog, slack) as bot:
        await _click(bot, "next_step.run.ivy-v2.1", "/flag preset ivy-v2 emergency", user=ADMIN)
    assert _answers(bot)[0] == "`/flag preset ivy-v2 emergency` — Checking preset `emergency` on Ivy v2…"
    [announcement] = slack.calls_to("chat.postMessage")
    assert announcement.channel == "#ivy-alerts"
    assert announcement.text.startswith(f"<@{ADMIN}> applied preset emergency on Ivy v2")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT name, value FROM feature_flags ORDER BY name")).fetchall()
    assert [name for name, _ in rows] == ["AI_BURST_LIMIT", "AI_RATE_LIMIT_PER_MIN", "IVY_MODAL_HEURISTICS"]
