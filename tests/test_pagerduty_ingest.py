"""The PagerDuty webhook route as HTTP sees it, now that it is a bare ASGI app ahead of Starlette (issue 16): the
same answers, headers, limits and metrics as the Starlette route it replaced, and a group commit that a caller
giving up does not break. Storage and dedup under bursts are in tests/test_incidents.py, signatures in
tests/security/test_signatures.py, any signed body in tests/fuzz/test_pagerduty.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from pydantic import SecretStr

from bot.pagerduty_ingest import WebhookStore
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from integrations.pagerduty_envelope import parse_envelope
from tests import pd_payloads as pd
from tests.harness import BotUnderTest

SECRET = "pd-ingest-secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET)]})


async def _rows(database_url: str) -> list[tuple[str | None, str]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT event_id, status FROM pd_webhooks ORDER BY id")
        return await cursor.fetchall()


def _body(number: int) -> bytes:
    incident = pd.incident(id=f"PING{number:03d}", number=number)
    return pd.body(pd.event("incident.triggered", incident, event_id=f"ing-{number}"))


async def test_answers_are_json_with_their_length_and_counted_per_outcome(bot: BotUnderTest) -> None:
    body = _body(1)
    signed = {"Content-Type": "application/json", **sign_pagerduty_webhook(SECRET, body)}
    first = await bot.client.post("/pagerduty/webhook", content=body, headers=signed)
    again = await bot.client.post("/pagerduty/webhook", content=body, headers=signed)
    refused = await bot.client.post(
        "/pagerduty/webhook", content=body, headers={"X-PagerDuty-Signature": "v1=0"}
    )
    assert [(r.status_code, r.json()) for r in (first, again, refused)] == [
        (202, {"status": "accepted"}),
        (202, {"status": "duplicate"}),
        (401, {"error": "invalid signature"}),
    ]
    for response in (first, again, refused):
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(response.content)
    metrics = (await bot.client.get("/metrics")).text
    assert 'mira_http_requests_total{outcome="202",route="/pagerduty/webhook"}' in metrics
    assert 'mira_http_requests_total{outcome="401",route="/pagerduty/webhook"}' in metrics


async def test_other_methods_are_405_and_a_body_over_the_limit_413_streamed_or_declared(
    bot: BotUnderTest, database_url: str
) -> None:
    got = await bot.client.get("/pagerduty/webhook")
    assert got.status_code == 405 and got.headers["allow"] == "POST"

    big = b"x" * (256 * 1024 + 1)

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: refused as it streams in
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    declared = await bot.client.post(
        "/pagerduty/webhook", content=big, headers=sign_pagerduty_webhook(SECRET, big)
    )
    chunked = await bot.client.post(
        "/pagerduty/webhook", content=streamed(), headers=sign_pagerduty_webhook(SECRET, big)
    )
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json() == {"error": f"request body larger than {256 * 1024} bytes"}
    assert (
        'mira_http_requests_total{outcome="413",route="/pagerduty/webhook"}'
        in (await bot.client.get("/metrics")).text
    )
    assert await _rows(database_url) == []


async def test_a_caller_that_gives_up_leaves_its_webhook_stored_and_the_others_answered(
    bot: BotUnderTest, database_url: str
) -> None:
    """A webhook whose request was cancelled while it waited for the group commit (its client hung up) is still
    written with its batch, and the webhooks that share the batch are answered: the writer skips the future
    nobody waits for instead of failing on it."""
    store = WebhookStore(bot.runtime.bot)

    def stored(number: int) -> asyncio.Task[bool]:
        body = _body(number)
        return asyncio.create_task(store.store(body, None, parse_envelope(body), "pending", None))

    first = stored(0)  # starts the writer
    await asyncio.sleep(0)
    others = [stored(n) for n in range(1, 5)]  # in the first batch or queued behind it
    await asyncio.sleep(0)
    others[0].cancel()
    # (a writer that failed on the cancelled future would leave the rest waiting for ever: bounded, not timed)
    results = await asyncio.wait_for(asyncio.gather(first, *others, return_exceptions=True), 30)
    assert results[0] is True and isinstance(results[1], asyncio.CancelledError)
    assert results[2:] == [True, True, True]
    # The cancelled webhook was queued before the last three, so its batch had committed when they were answered.
    assert await _rows(database_url) == [(f"ing-{n}", "pending") for n in range(5)]
