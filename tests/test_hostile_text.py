"""Text Postgres cannot store, in the fields the delivery worker writes and posts: a NUL (`\\u0000` in the JSON) and
a lone surrogate (`\\ud800` escaped in the JSON: Python keeps it in the str, UTF-8 cannot encode it). The webhook
is stored byte for byte at ingest and is valid; its delivery must not fail on every attempt — nor take the
incidents folded in the same batch with it. The worker cleans the text where it builds the event from the body
(NUL dropped, a lone surrogate replaced by U+FFFD), so Postgres and Slack both see clean text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from tests import pd_payloads as pd
from tests.harness import BotUnderTest

SECRET = "pd-hostile-text-secret"
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
ALERTS, INCIDENTS = "#mira-copilot-alerts", "#incidents"
ALICE = ("PUSER01", "Alice Example")
HOSTILE = "Mal\u0000lory \ud800Example"  # an agent name with both


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"pagerduty_webhook_secrets": [SecretStr(SECRET)], "storm_threshold": 0}
    )


async def send(bot: BotUnderTest, payload: dict[str, Any]) -> int:
    body = json.dumps(payload).encode()  # ensure_ascii: the surrogate travels as the escape `\ud800`
    response = await bot.client.post(
        "/pagerduty/webhook", content=body, headers=sign_pagerduty_webhook(SECRET, body)
    )
    return response.status_code


def trigger(incident_id: str, number: int, title: str, minute: int) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, number=number, title=title, created_at=T0)
    return pd.event(
        "incident.triggered",
        inc,
        event_id=f"evt-{incident_id}-trigger",
        occurred_at=T0 + timedelta(minutes=minute),
        agent=ALICE,
    )


def later(
    incident_id: str, number: int, event_type: str, minute: int, content: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    inc = pd.incident(id=incident_id, number=number, title="Queue backlog", created_at=T0)
    payload = pd.event(
        event_type,
        inc,
        event_id=f"evt-{incident_id}-{event_type}",
        occurred_at=T0 + timedelta(minutes=minute),
        **kwargs,
    )
    if content is not None:  # set afterwards: the builder derives the note id from its text, in UTF-8
        payload["event"]["data"]["content"] = content
    return payload


async def test_hostile_text_in_a_batch_is_cleaned_and_every_incident_is_delivered(
    bot: BotUnderTest, database_url: str
) -> None:
    events = [
        trigger("PNORMAL", 1, "Normal incident", 0),
        trigger("PTITLE0", 2, "Edge \u0000function <503s>", 0),
        trigger("PTITLE1", 3, "Edge \ud800function 503s", 0),
        trigger("PNOTES1", 4, "Queue backlog", 0),
        trigger("PAGENT1", 5, "Queue backlog", 0),
        later("PNORMAL", 1, "incident.acknowledged", 1, agent=ALICE),
        later("PNOTES1", 4, "incident.annotated", 1, agent=ALICE, content="Rolled \u0000back \udfff <@U1>"),
        later("PAGENT1", 5, "incident.annotated", 1, agent=("PUSER09", HOSTILE), content="Looking"),
        later("PAGENT1", 5, "incident.acknowledged", 2, agent=("PUSER09", HOSTILE)),
    ]
    for payload in events:  # all stored before the worker runs: one claim, one fold
        assert await send(bot, payload) == 202
    # One pass claims them all (one batch, one fold); before the fix it failed and every one stayed pending.
    assert await bot.runtime.delivery.run_once(T0 + timedelta(minutes=3)) == len(events)
    await bot.settle()

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT event_id, status FROM pd_webhooks")).fetchall()
    assert sorted(rows) == sorted((p["event"]["id"], "delivered") for p in events)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        titles = dict(await (await conn.execute("SELECT id, title FROM incidents")).fetchall())
    assert titles["PTITLE0"] == "Edge function <503s>" and titles["PTITLE1"] == "Edge \ufffdfunction 503s"

    replacement = "Mallory \ufffdExample"  # HOSTILE: the NUL dropped, the surrogate replaced
    for channel in (ALERTS, INCIDENTS):
        posts = bot.slack.calls_to("chat.postMessage", channel=channel)
        roots = {c.text for c in posts if not c.thread_ts}
        assert roots == {
            "Triggered: [#1] Normal incident (Mira Co-Pilot, high urgency)",
            "Triggered: [#2] Edge function &lt;503s&gt; (Mira Co-Pilot, high urgency)",
            "Triggered: [#3] Edge \ufffdfunction 503s (Mira Co-Pilot, high urgency)",
            "Triggered: [#4] Queue backlog (Mira Co-Pilot, high urgency)",
            "Triggered: [#5] Queue backlog (Mira Co-Pilot, high urgency)",
        }, channel
        lines = sorted(c.text for c in posts if c.thread_ts)
        assert lines == sorted(
            [
                ":eyes: Acknowledged by Alice Example",
                ":memo: Note by Alice Example: Rolled back \ufffd &lt;@U1&gt;",
                f":memo: Note by {replacement}: Looking",
                f":eyes: Acknowledged by {replacement}",
            ]
        ), channel
    for call in bot.slack.calls:
        text = json.dumps(call.body, ensure_ascii=False)
        assert "\\u0000" not in text and "\\ud800" not in text and "\\udfff" not in text
