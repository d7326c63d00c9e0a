"""/health end to end: signed request → ack → probes against real upstreams → what reached the Slack API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import psycopg
import pytest
import redis.asyncio as redis

from tests.harness import (
    CHANNEL,
    USER,
    BotUnderTest,
    answer,
    blocks_text,
    closed_port,
    fake_service,
    silent_server,
)

EVERY_SERVICE = ("Mira Co-Pilot", "Ivy v2", "AI Assistant", "FA AI System")


@pytest.fixture
async def upstreams(database_url: str, redis_url: str) -> AsyncIterator[dict[str, str]]:
    """The four services' deployments, each in a known state, reached through the bundled catalog's `${VAR}`s."""
    async with (
        fake_service({"/functions/v1/agent-chat": answer({"status": "degraded"})}) as mira,
        fake_service({"/ai/router/health": answer({"ok": True}), "/health": answer(None, 503)}) as ivy,
        silent_server() as hung_port,
        fake_service({"/health": answer({"status": "ok"})}) as fa,
    ):
        yield {
            "MIRA_BASE_URL": mira,  # edge function says "degraded"
            "MIRA_DATABASE_URL": database_url,  # real Postgres: ok
            "IVY_BASE_URL": ivy,  # router ok, backend 503
            "AI_ASSISTANT_BASE_URL": f"http://127.0.0.1:{hung_port}",  # accepts, never answers
            "AI_ASSISTANT_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/x",  # refused
            # AI_ASSISTANT_REDIS_URL left unset: "not configured"
            "FA_BASE_URL": fa,
            "FA_DATABASE_URL": database_url,
            "FA_REDIS_URL": redis_url,
        }


@pytest.fixture
def catalog_env(upstreams: dict[str, str]) -> dict[str, str]:
    return upstreams


async def _health_runs(database_url: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT requested_by, scope, channel, message_channel, message_ts, results "
            "FROM health_runs ORDER BY id"
        )
        return await cursor.fetchall()


async def test_health_acks_at_once_then_posts_every_service(bot: BotUnderTest, database_url: str) -> None:
    response = await bot.command("/health")

    assert response.status_code == 200
    assert response.json() == {"text": "Checking 4 services…", "response_type": "ephemeral"}
    # The ack did not wait for the probes: the hung one is still pending, nothing is posted yet.
    assert bot.slack.calls_to("chat.postMessage") == []

    [post] = await bot.slack.wait_for("chat.postMessage", timeout=10)
    assert post.channel == CHANNEL
    assert post.text == "Health: 1 down (ai-assistant), 2 degraded (mira-copilot, ivy-v2), 1 ok"
    text = blocks_text(post.blocks)
    for name in EVERY_SERVICE:
        assert name in text
    assert ":red_circle: *AI Assistant* — down" in text
    assert "`health` down" in text and "timed out after 2.0 s" in text  # cut at its own timeout
    assert "`database` down" in text and "connection refused" in text
    assert "`redis` not configured — set AI_ASSISTANT_REDIS_URL" in text
    assert ":large_yellow_circle: *Mira Co-Pilot* — degraded" in text and 'body said "degraded"' in text
    assert ":large_yellow_circle: *Ivy v2* — degraded" in text and "HTTP 503 (expected 200)" in text
    assert ":large_green_circle: *FA AI System* — ok" in text
    assert post.blocks[-1]["elements"][0]["action_id"] == "health_rerun"

    await bot.settle()
    [run] = await _health_runs(database_url)
    assert run[:4] == (USER, None, CHANNEL, post.response["channel"])
    assert run[4] == post.response["ts"]
    assert run[5]["ai-assistant"]["status"] == "down"


async def test_health_for_one_service_shows_every_probe(bot: BotUnderTest) -> None:
    response = await bot.command("/health", "mira")  # an alias
    assert response.json()["text"] == "Checking Mira Co-Pilot (2 probes)…"
    [post] = await bot.slack.wait_for("chat.postMessage", timeout=10)
    assert post.text == "Mira Co-Pilot: degraded (2 probes: 1 degraded, 1 ok)"
    text = blocks_text(post.blocks)
    assert "`edge-function` degraded" in text
    assert "`database` ok" in text and "SELECT 1 ok" in text and " ms" in text
    assert "Ivy v2" not in text
    assert post.blocks[-1]["elements"][0]["value"] == "mira-copilot"


async def test_unknown_service_gets_usage_and_did_you_mean_and_nothing_runs(
    bot: BotUnderTest, database_url: str
) -> None:
    response = await bot.command("/health", "mira-copilt")
    assert response.status_code == 200
    reply = response.json()
    assert reply["response_type"] == "ephemeral"
    assert "I don't know a service called `mira-copilt`" in reply["text"]
    assert "Did you mean `mira-copilot`?" in reply["text"]
    assert "Usage: `/health [service]`" in reply["text"]
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []
    assert await _health_runs(database_url) == []


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        (
            "/helth",
            "",
            ["I don't know the command `/helth`", "Did you mean `/health`?", "`/health [service]`"],
        ),
        (
            "/rollback",
            "",
            ["Tell me which service to roll back.", "Usage: `/rollback SERVICE [plan] [reason]` — Show"],
        ),
        (
            "/oncall",
            "handof",
            [
                "I don't understand `/oncall handof`",
                "Did you mean `/oncall handoff`?",
                "Usage: `/oncall handoff` — post this week's handoff checklist",
            ],
        ),
        ("/health", "help", ["`/health [service]` — Probe every service"]),
        ("/health", "mira ivy", ["takes at most one service", "Usage: `/health [service]`"]),
    ],
)
async def test_bad_or_unbuilt_commands_answer_ephemerally(
    bot: BotUnderTest, command: str, text: str, expected: list[str]
) -> None:
    response = await bot.command(command, text)
    assert response.status_code == 200
    reply = response.json()
    assert reply["response_type"] == "ephemeral"
    for fragment in expected:
        assert fragment in reply["text"]
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_run_again_works_without_redis(bot: BotUnderTest) -> None:
    await bot.command("/health", "fa")
    [post] = await bot.slack.wait_for("chat.postMessage", timeout=10)
    await bot.settle()
    storage = bot.runtime.bot.storage
    working = storage.redis
    storage.redis = redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=0.2)
    try:
        await bot.click(post.response["channel"], post.response["ts"], "health_rerun", "fa-ai-system")
        await bot.settle()
    finally:
        await storage.redis.aclose()
        storage.redis = working
    [update] = bot.slack.calls_to("chat.update")
    assert update.text.startswith("FA AI System: ok")
    assert bot.slack.calls_to("response_url") == []


async def test_run_again_updates_the_same_message_once_for_a_double_click(
    bot: BotUnderTest, database_url: str
) -> None:
    await bot.command("/health")
    [post] = await bot.slack.wait_for("chat.postMessage", timeout=10)
    await bot.settle()
    channel, ts = post.response["channel"], post.response["ts"]

    first, second = await asyncio.gather(
        bot.click(channel, ts, "health_rerun", ""), bot.click(channel, ts, "health_rerun", "")
    )
    assert first.status_code == second.status_code == 200
    await bot.settle()

    [update] = bot.slack.calls_to("chat.update")
    assert (update.channel, update.body["ts"]) == (channel, ts)
    assert update.text == post.text
    [busy] = bot.slack.calls_to("response_url")
    assert busy.text == "Already re-checking that message; it will update in a moment."
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert len(await _health_runs(database_url)) == 2


async def test_failure_after_the_ack_is_logged_and_told_to_the_user(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    bot.slack.fail_next("chat.postMessage", status=200, error="invalid_blocks")
    with caplog.at_level(logging.ERROR):
        response = await bot.command("/health", "fa")
        assert response.status_code == 200
        await bot.settle()

    [told] = bot.slack.calls_to("response_url")
    assert told.text.startswith(
        ":warning: `/health` failed after it was acknowledged: Slack answered `invalid_blocks`"
    )
    failures = [r for r in caplog.records if r.getMessage() == "post-ack work failed"]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert failures[0].error_id in told.text  # type: ignore[attr-defined]


async def test_not_in_channel_joins_and_posts(bot: BotUnderTest) -> None:
    bot.slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    await bot.command("/health", "fa")
    await bot.settle()
    assert [c.method for c in bot.slack.calls if c.method.startswith(("chat.", "conversations."))] == [
        "chat.postMessage",
        "conversations.join",
        "chat.postMessage",
    ]
    assert bot.slack.calls_to("conversations.join")[0].channel == CHANNEL


async def test_channel_the_bot_cannot_join_gets_a_private_answer(bot: BotUnderTest) -> None:
    bot.slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    bot.slack.fail_next("conversations.join", status=200, error="method_not_supported_for_channel_type")
    await bot.command("/health", "fa")
    await bot.settle()
    [private] = bot.slack.calls_to("response_url")
    assert private.body["response_type"] == "ephemeral"
    assert "FA AI System" in blocks_text(private.blocks)
    assert "Invite me with `/invite @Mira Bot`" in blocks_text(private.blocks)


async def test_health_still_answers_when_the_run_cannot_be_recorded(
    bot: BotUnderTest, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("DROP TABLE health_runs")
    await bot.command("/health", "fa")
    await bot.settle()
    [post] = bot.slack.calls_to("chat.postMessage")
    assert post.text.startswith("FA AI System: ok")
    assert "this run was not recorded" in blocks_text(post.blocks)
    assert bot.slack.calls_to("chat.update") == []


async def test_metrics_count_requests_acks_and_slack_calls(bot: BotUnderTest) -> None:
    await bot.command("/health", "fa")
    await bot.settle()
    metrics = (await bot.client.get("/metrics")).text
    assert 'mira_http_requests_total{outcome="200",route="/slack/events"}' in metrics
    assert 'mira_slack_ack_seconds_bucket{kind="form",le="3.0"}' in metrics
    assert 'mira_slack_api_calls_total{method="chat.postMessage",status="ok"}' in metrics
