"""`clock +N` moves every timer, because every timer reads the one clock the console advances (the bot's injected
clock, which is also the recording PagerDuty's and the demo services'): flag confirmations expire, SLA nudges and
reminders fire, rollback requests expire, rollback waits and sign-off reminders move on, the scheduler posts the
handoff checklist and its reminders. Each test shows the timer has not fired before the jump and has after it,
asserting on what reached the recording Slack server."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from tests.console_harness import console_for_test, everything


async def test_a_flag_confirmation_expires_when_the_clock_moves(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        await typist.type("/flag on MIRA_COPILOT_ENABLED")
        confirm = typist.button("Confirm")
        await typist.type("clock +16m")
        mark = typist.mark
        await typist.type(f"press {confirm}")
        assert typist.said(mark, "expired: risky changes must be confirmed within 15 minutes")
        supabase_writes = [
            c for c in typist.console.slack.calls[mark:] if "MIRA_COPILOT_ENABLED →" in everything(c)
        ]
        assert supabase_writes == []  # nothing was announced as changed

        await typist.type("/flag on MIRA_COPILOT_ENABLED", "clock +14m")  # within the window: still confirms
        mark = typist.mark
        await typist.type(f"press {typist.button('Confirm')}")
        assert typist.said(mark, "MIRA_COPILOT_ENABLED", "chat.postMessage")
        assert not typist.said(mark, "expired")


async def test_sla_nudge_and_reminders_fire_when_the_clock_moves(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        mark = typist.mark
        await typist.type('pd trigger fa "ALB health check 503"', "clock +4m")
        assert not typist.said(mark, "not acknowledged")
        await typist.type("clock +2m")  # FA: "Acknowledge within 5 minutes"
        nudges = typist.said(mark, "not acknowledged 5 minutes after it triggered", "chat.postMessage")
        assert nudges and all(call.body.get("thread_ts") for call in nudges)
        assert not typist.said(mark, "past the 1-hour resolution SLA")
        await typist.type("clock +55m")
        assert typist.said(mark, "past the 1-hour resolution SLA", "chat.postMessage")
        await typist.type("pd resolve 1", "clock +47h")
        assert not typist.said(mark, "Resolved 48 hours ago")
        await typist.type("clock +2h")  # the post-mortem reminder, 48 hours after the resolve
        assert typist.said(mark, "Resolved 48 hours ago", "chat.postMessage")


async def test_incidents_are_dated_by_the_consoles_clock(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """After `clock +2h` a new incident starts its SLA timers at the moved time (no nudge at once), and what the
    recording PagerDuty sends back is dated by the same clock."""
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        await typist.type("clock +2h")
        mark = typist.mark
        await typist.type('pd trigger fa "Batch stuck"')
        assert not typist.said(mark, "not acknowledged")
        await typist.type(f"press {typist.button('Acknowledge')}")
        echoed = typist.console.pagerduty.webhooks_sent[-1]
        occurred = datetime.fromisoformat(
            json.loads(echoed.body)["event"]["occurred_at"].replace("Z", "+00:00")
        )
        assert abs(occurred - typist.console.clock()) < timedelta(minutes=1)


async def test_a_rollback_request_expires_when_the_clock_moves(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        await typist.type("/rollback ivy immediate p95 over 3 s", "clock +14m")
        mark = typist.mark
        await typist.type("clock +2m")  # requests expire after 15 minutes
        [edit] = typist.said(mark, "Expired at", "chat.update", "#ops")
        assert "Confirm rollback" not in everything(edit)


async def test_rollback_waits_and_signoff_reminders_move_with_the_clock(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        mark = typist.mark
        await typist.type("/rollback ai-assistant restart tour", "as U0DANA")
        await typist.type(f"press {typist.button('Confirm')}")
        assert not typist.said(mark, "steps done. Requested by")  # waiting 30 seconds
        await typist.type("clock +1m")
        assert typist.said(mark, "steps done. Requested by", "chat.postMessage", "#incidents")

        mark = typist.mark
        await typist.type("/rollback mira standard tour", "as U0CONSOLE")
        await typist.type(f"press {typist.button('Confirm')}", "submit")  # 12 steps: confirmed in a modal
        assert typist.said(mark, "waits for DBA", "chat.postMessage")
        assert not typist.said(mark, "Still waiting")
        await typist.type("clock +31m")
        assert typist.said(mark, "Still waiting", "chat.postMessage")


async def test_the_scheduler_posts_the_checklist_and_its_reminders_when_the_clock_moves(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        mark = typist.mark
        await typist.type("clock monday 09:00")
        [checklist] = typist.said(mark, "Incoming primary", "chat.postMessage", "#mira-copilot-alerts")
        assert not typist.said(mark, "(reminder +4h)")
        await typist.type("clock +4h")
        [reminder] = typist.said(mark, "(reminder +4h)", "chat.postMessage", "#mira-copilot-alerts")
        assert reminder.body["thread_ts"] == checklist.response["ts"]  # type: ignore[index]
