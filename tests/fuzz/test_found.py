"""What the fuzzers found, kept as plain tests so CI checks them whatever the random draw."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest
from pydantic import SecretStr

from bot.app import ANSWER_LIMIT, acknowledge_command
from bot.catalog import load_catalog
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from handlers.capabilities import build_registry
from tests import pd_payloads as pd
from tests.harness import BotUnderTest

SECRET = "pd-found-secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"pagerduty_webhook_secrets": [SecretStr(SECRET)], "storm_threshold": 0}
    )


async def _send(bot: BotUnderTest, payload: dict) -> int:  # type: ignore[type-arg]
    body = json.dumps(payload).encode()
    response = await bot.client.post(
        "/pagerduty/webhook", content=body, headers=sign_pagerduty_webhook(SECRET, body)
    )
    return response.status_code


async def test_a_nul_in_an_event_id_is_kept_as_malformed_not_answered_503(
    bot: BotUnderTest, database_url: str
) -> None:
    """Postgres text cannot hold NUL: the insert used to fail and the event was answered 503 on every retry."""
    assert await _send(bot, pd.event("incident.triggered", pd.incident(), event_id="evt\u0000")) == 202
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT status FROM pd_webhooks")).fetchall()
    assert rows == [("malformed",)]


@pytest.mark.parametrize(
    ("where", "hostile"),
    [
        (
            "a NUL in the name of a service outside the catalog",
            pd.event("incident.triggered", pd.incident(service_name="Not\u0000 Ours"), event_id="evt-bad"),
        ),
        (
            "a NUL in the incident key",
            pd.event("incident.triggered", pd.incident(incident_key="edge-503\u0000"), event_id="evt-bad"),
        ),
        (
            "a lone surrogate in the event id (JSON may escape one; UTF-8 cannot encode it)",
            pd.event("incident.triggered", pd.incident(), event_id="evt-\ud800"),
        ),
        (
            "a lone surrogate in the service id",
            pd.event("incident.triggered", pd.incident(service_id="P\udfff"), event_id="evt-bad"),
        ),
    ],
)
async def test_a_field_postgres_text_cannot_hold_is_kept_as_malformed_and_its_batch_is_stored(
    bot: BotUnderTest,
    database_url: str,
    where: str,
    hostile: dict,  # type: ignore[type-arg]
) -> None:
    """Found reading the route (issue 16): a NUL in the service name (quoted in an ignored row's reason) or in
    the incident key (a column of its own), or a lone surrogate in any filed field, failed the whole
    group-committed INSERT, so every webhook sharing the statement was answered 503 (500 for the surrogate),
    and the hostile one again on every retry for two days."""
    neighbours = [
        pd.event("incident.triggered", pd.incident(id=f"PNB{n}", number=n), event_id=f"evt-nb-{n}")
        for n in range(5)
    ]
    statuses = await asyncio.gather(*(_send(bot, event) for event in [hostile, *neighbours]))
    assert statuses == [202] * 6, where
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT event_id, status FROM pd_webhooks")).fetchall()
    assert sorted(rows, key=str) == sorted(
        [(None, "malformed"), *((f"evt-nb-{n}", "pending") for n in range(5))], key=str
    )


async def test_a_nul_in_an_incident_title_is_delivered(bot: BotUnderTest, database_url: str) -> None:
    now = datetime.now(UTC)
    inc = pd.incident(id="PNUL001", title="Edge \u0000function 503s", created_at=now)
    assert (
        await _send(bot, pd.event("incident.triggered", inc, occurred_at=now, event_id="evt-nul-title"))
        == 202
    )
    await bot.runtime.delivery.run_once(now + timedelta(seconds=1))
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT status FROM pd_webhooks")).fetchall()
    assert rows == [("delivered",)]
    assert any("Edge function 503s" in (c.text or "") for c in bot.slack.calls_to("chat.postMessage"))


def test_a_huge_pasted_word_is_quoted_clipped_and_the_hints_stay_whole() -> None:
    registry, catalog = build_registry(), load_catalog(env={})
    answer = acknowledge_command(registry, SimpleNamespace(catalog=catalog), "/flag", "x" * 100_000)  # type: ignore[arg-type]
    assert len(answer) <= ANSWER_LIMIT and "`xxxxxxxx" in answer and "…`" in answer
    assert "Usage: `/flag list [service]" in answer
    typo = acknowledge_command(registry, SimpleNamespace(catalog=catalog), "/health", "mira-copilt")  # type: ignore[arg-type]
    assert "Did you mean `mira-copilot`?" in typo
