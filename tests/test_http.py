"""The HTTP surface: body limits, probes of the bot itself, and the PagerDuty route without secrets. The full
sets of bad Slack and PagerDuty signatures are in tests/security/test_signatures.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import redis.asyncio as redis

from tests.harness import BotUnderTest, closed_port


async def _no_side_effect(bot: BotUnderTest, database_url: str) -> None:
    await bot.settle()
    assert bot.slack.calls == []  # not even auth.test: Bolt stopped at verification
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT count(*) FROM health_runs")
        assert (await cursor.fetchone()) == (0,)


def _headers(timestamp: int, signature: str) -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature,
    }


async def test_correctly_signed_request_passes_the_same_check(bot: BotUnderTest) -> None:
    """The control for the 401 cases: the same body, properly signed, is accepted."""
    response = await bot.post_signed(bot.command_body("/health", "fa"))
    assert response.status_code == 200


async def test_body_over_one_mebibyte_gets_413(bot: BotUnderTest, database_url: str) -> None:
    body = bot.command_body("/health") + b"&padding=" + b"x" * (1024 * 1024)
    response = await bot.post_signed(body)
    assert response.status_code == 413
    await _no_side_effect(bot, database_url)


async def test_streamed_body_over_the_limit_gets_413_without_a_length(
    bot: BotUnderTest, database_url: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 65536  # 1.25 MiB in all, sent chunked (no Content-Length)

    response = await bot.client.post(
        "/slack/events", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    await _no_side_effect(bot, database_url)


async def test_healthz_and_readyz(bot: BotUnderTest) -> None:
    assert (await bot.client.get("/healthz")).json() == {"status": "ok"}
    ready = await bot.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "postgres": "ok", "redis": "ok"}


async def test_readyz_is_503_when_redis_does_not_answer(bot: BotUnderTest) -> None:
    storage = bot.runtime.bot.storage
    working = storage.redis
    storage.redis = redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=0.5)
    try:
        ready = await bot.client.get("/readyz")
    finally:
        await storage.redis.aclose()
        storage.redis = working
    assert ready.status_code == 503
    body = ready.json()
    assert body["ready"] is False and body["postgres"] == "ok"
    assert body["redis"].startswith("unavailable")


async def test_pagerduty_webhooks_are_refused_without_configured_secrets(bot: BotUnderTest) -> None:
    """Fail closed: with PAGERDUTY_WEBHOOK_SECRETS unset no webhook can be verified, so none is accepted."""
    response = await bot.client.post(
        "/pagerduty/webhook", content=b"{}", headers={"X-PagerDuty-Signature": "v1=00"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "webhook signing secrets are not configured"}


async def test_unknown_route_is_404_not_500(bot: BotUnderTest) -> None:
    assert (await bot.client.get("/nope")).status_code == 404
    assert (await bot.client.get("/slack/events")).status_code == 405
