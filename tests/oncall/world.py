"""The world of the on-call tests (fixtures in conftest.py): Mira's escalation policy with a weekly rotation (Alice
hands over to Bob at Monday 09:00 UTC), the people's Slack IDs, a clock the tests move, and helpers to find the
checklist and click it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bot.signing import sign_pagerduty_webhook
from stand_ins.recording_pagerduty import oncall_entry
from stand_ins.recording_slack import RecordingSlackServer, SlackCall
from tests import pd_payloads as pd
from tests.harness import BotUnderTest

ROTATION = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday: the bundled catalog's "0 9 * * 1", UTC
WEEK = timedelta(days=7)
PD_TOKEN = "pd-rest-token-for-oncall-tests"
WEBHOOK_SECRET = "pd-webhook-secret-oncall"
ROUTING_KEY = "mira0handoff0test0routing0key000"  # 32 characters, as PagerDuty's are
POLICY = ("PEPMIRA", "Mira Co-Pilot escalation")
ALERTS = "#mira-copilot-alerts"
RUNBOOK_URL = "https://runbooks.example/mira-copilot"

# PagerDuty id, name, email, Slack id.
ALICE = ("PUALICE", "Alice Outgoing", "alice@example.com", "U0ALICE01")
BOB = ("PUBOB", "Bob Incoming", "bob@example.com", "U0BOB0001")
CAROL = ("PUCAROL", "Carol Backend", "carol@example.com", "U0CAROL01")
DANA = ("PUDANA", "Dana Manager", "dana@example.com", "U0DANA001")
PEOPLE = (ALICE, BOB, CAROL, DANA)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(bot: BotUnderTest, moment: datetime) -> Clock:
    """Set the bot's clock (scheduler, ticks, reminders, test deadlines) to `moment`."""
    clock = Clock(moment)
    bot.runtime.bot.clock = clock
    return clock


def rotation_oncalls(rotation: datetime = ROTATION) -> list[dict[str, Any]]:
    def entry(person: tuple[str, str, str, str], level: int, start: Any, end: Any) -> dict[str, Any]:
        return oncall_entry(
            (person[0], person[1]),
            schedule=("PSCHMIRA", "AI Squad weekly") if level == 1 else None,
            escalation_policy=POLICY,
            escalation_level=level,
            start=start.isoformat() if start else None,
            end=end.isoformat() if end else None,
        )

    return [
        entry(ALICE, 1, rotation - WEEK, rotation),
        entry(BOB, 1, rotation, rotation + WEEK),
        entry(CAROL, 2, None, None),
        entry(DANA, 3, None, None),
        # Another team's policy: PagerDuty filters it out by escalation_policy_ids[].
        oncall_entry(("PUOTHER", "Someone Else"), escalation_policy=("PEPOTHER", "Other team")),
    ]


def checklists(slack: RecordingSlackServer) -> list[SlackCall]:
    """The checklist posts (roots in the alerts channel), as opposed to incident roots and thread replies."""
    return [
        c
        for c in slack.calls_to("chat.postMessage", channel=ALERTS)
        if not c.thread_ts and str(c.text or "").startswith("On-call handoff")
    ]


def thread(slack: RecordingSlackServer, root: SlackCall) -> list[SlackCall]:
    assert root.response is not None
    return [c for c in slack.calls_to("chat.postMessage") if c.thread_ts == root.response["ts"]]


def edits(slack: RecordingSlackServer, root: SlackCall) -> list[SlackCall]:
    assert root.response is not None
    return [c for c in slack.calls_to("chat.update") if c.body.get("ts") == root.response["ts"]]


def latest_blocks(slack: RecordingSlackServer, root: SlackCall) -> list[dict[str, Any]]:
    found = edits(slack, root)
    return (found[-1] if found else root).blocks


def checkbox(blocks: list[dict[str, Any]], item: int) -> dict[str, Any]:
    block = next(b for b in blocks if b.get("block_id") == f"handoff_item_{item}")
    element: dict[str, Any] = next(e for e in block["elements"] if e["type"] == "checkboxes")
    return element


def ticked(blocks: list[dict[str, Any]]) -> list[int]:
    return [n for n in range(1, 6) if checkbox(blocks, n).get("initial_options")]


async def tick(
    bot: BotUnderTest, root: SlackCall, item: int, checked: bool = True, *, user: str = ALICE[3]
) -> None:
    assert root.response is not None
    value = checkbox(root.blocks, item)["options"][0]["value"]
    response = await bot.toggle(
        root.response["channel"], root.response["ts"], f"handoff_item_{item}", value, checked, user=user
    )
    assert response.status_code == 200
    await bot.settle()


async def send_webhook(bot: BotUnderTest, payload: dict[str, Any]) -> int:
    body = pd.body(payload)
    response = await bot.client.post(
        "/pagerduty/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Webhook-Id": payload["event"]["id"],
            **sign_pagerduty_webhook(WEBHOOK_SECRET, body),
        },
    )
    return response.status_code


async def one_row(database_url: str, sql: str, *params: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await (await conn.execute(sql, params)).fetchone()


async def all_rows(database_url: str, sql: str, *params: Any) -> list[Any]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await (await conn.execute(sql, params)).fetchall()
