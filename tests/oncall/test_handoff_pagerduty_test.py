"""The handoff's "Test PagerDuty integration" button against the recording PagerDuty: an Events API v2 trigger
goes out, PagerDuty's signed webhook comes back through the real route, the round trip is reported in the thread
and the test incident resolved — or the loop is declared broken at the deadline. Once, whatever the clicks and
replicas; finished by another replica when the waiter's died."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.catalog import load_catalog
from bot.pagerduty_ingest import HANDOFF_TEST_KEY_PREFIX
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import SlackCall
from tests import pd_payloads as pd
from tests.harness import BotUnderTest, blocks_text, finishes
from tests.oncall.world import (
    ALICE,
    BOB,
    ROTATION,
    ROUTING_KEY,
    WEBHOOK_SECRET,
    all_rows,
    at,
    checklists,
    edits,
    latest_blocks,
    one_row,
    send_webhook,
    thread,
)

TEST_ACTION = "handoff_pagerduty_test"


async def _posted(bot: BotUnderTest) -> SlackCall:
    at(bot, ROTATION + timedelta(seconds=5))
    await bot.runtime.scheduler.run_due()
    [post] = checklists(bot.slack)
    return post


async def _press(bot: BotUnderTest, post: SlackCall, user: str = BOB[3]) -> int:
    assert post.response is not None
    [button] = [
        e for b in post.blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"
    ]
    assert button["action_id"] == TEST_ACTION
    response = await bot.click(
        post.response["channel"], post.response["ts"], TEST_ACTION, button["value"], user=user
    )
    return response.status_code


async def _status_becomes(database_url: str, status: str) -> None:
    """Liveness, not timing: the test row reaches `status` (the trigger was sent) before the check goes on."""
    for _ in range(200):
        row = await one_row(
            database_url, "SELECT status FROM handoff_pagerduty_tests ORDER BY id DESC LIMIT 1"
        )
        if row and row[0] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the PagerDuty test never reached {status!r}")


def _events(pagerduty: RecordingPagerDutyServer) -> list[dict[str, object]]:
    return [c.body for c in pagerduty.calls_to("POST", "/v2/enqueue")]


async def test_the_button_triggers_through_the_events_api_and_reports_the_round_trip(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer, database_url: str
) -> None:
    pagerduty.send_webhooks_to(f"{bot.server.url}/pagerduty/webhook", [WEBHOOK_SECRET])
    post = await _posted(bot)
    item3 = ":warning: *Mira Co-Pilot*: no PagerDuty webhook received yet"
    assert item3 in blocks_text(post.blocks)
    assert await _press(bot, post) == 200  # acked before any of the waiting
    await finishes(bot.settle(), within=30, what="the PagerDuty test")

    trigger, resolve = _events(pagerduty)
    assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
    dedup_key = str(trigger["dedup_key"])
    assert dedup_key.startswith(HANDOFF_TEST_KEY_PREFIX)
    assert trigger["payload"]["severity"] == "info"  # type: ignore[index]
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": dedup_key}
    [incident] = pagerduty.incidents()
    assert incident["status"] == "resolved" and incident["incident_key"] == dedup_key

    started, result = thread(bot.slack, post)
    assert started.text.startswith(f":satellite_antenna: <@{BOB[3]}> is testing the PagerDuty integration")
    assert result.text.startswith(
        ":white_check_mark: PagerDuty integration works: the test event's webhook came back "
    )
    assert result.text.endswith(
        f"after the trigger (incident {incident['id']}). The test incident is resolved."
    )
    # Item 4 shows the test, and item 3 ("Verify all alerts are functioning") the webhook it brought back.
    shown = blocks_text(latest_blocks(bot.slack, post))
    assert f"by <@{BOB[3]}>: webhook back " in shown
    assert item3 not in shown
    assert (
        ":incoming_envelope: *Mira Co-Pilot*: last PagerDuty webhook Mon 23 Nov 09:00 UTC (0 min before this check)"
        in shown
    )
    assert "_Checked again after the PagerDuty test at Mon 23 Nov 09:00 UTC_" in shown
    assert ":warning: *Ivy v2*: no PagerDuty webhook received yet" in shown  # the others as they were

    # The webhooks were stored (the loop) but not posted as an incident: a test is not an incident.
    stored = await all_rows(
        database_url,
        "SELECT event_type, status FROM pd_webhooks WHERE incident_key = %s ORDER BY id",
        dedup_key,
    )
    assert stored == [("incident.triggered", "ignored"), ("incident.resolved", "ignored")]
    await bot.runtime.delivery.run_once(ROTATION + timedelta(minutes=1))
    assert [c for c in bot.slack.calls_to("chat.postMessage") if "Handoff test" in str(c.text)] == []
    row = await one_row(
        database_url,
        "SELECT status, received_at >= sent_at, incident_id FROM handoff_pagerduty_tests",  # one clock: the bot's
    )
    assert row == ("ok", True, incident["id"])
    audit = await all_rows(
        database_url,
        "SELECT actor, outcome FROM audit_log WHERE action = 'handoff.pagerduty_test' ORDER BY id",
    )
    assert audit == [(BOB[3], "pending"), (BOB[3], "ok")]


async def test_a_double_click_and_a_click_on_another_replica_run_one_test(
    bot: BotUnderTest, replica: BotUnderTest, pagerduty: RecordingPagerDutyServer, database_url: str
) -> None:
    pagerduty.send_webhooks_to(None)  # the webhook is held back until every click has been answered
    post = await _posted(bot)
    at(replica, ROTATION + timedelta(minutes=1))
    assert await _press(bot, post) == 200
    await _status_becomes(database_url, "waiting")
    statuses = await asyncio.gather(_press(bot, post), _press(replica, post, user=ALICE[3]))
    assert statuses == [200, 200]
    told = [c.body.get("text", "") for c in await bot.slack.wait_for("response_url", count=2, timeout=15)]
    assert sum(f"A PagerDuty test is already running (started by <@{BOB[3]}>" in t for t in told) == 2
    # Now PagerDuty's webhook for the one trigger arrives (signed, through the real route).
    [trigger] = _events(pagerduty)
    [incident] = pagerduty.incidents()
    payload = pd.event(
        "incident.triggered", pd.incident(id=incident["id"], incident_key=str(trigger["dedup_key"]))
    )
    assert await send_webhook(replica, payload) == 202
    await finishes(asyncio.gather(bot.settle(), replica.settle()), within=30, what="the PagerDuty test")
    assert [e["event_action"] for e in _events(pagerduty)] == ["trigger", "resolve"]
    results = [c for c in thread(bot.slack, post) if "PagerDuty integration works" in str(c.text)]
    assert len(results) == 1


async def test_no_webhook_by_the_deadline_says_the_loop_is_broken(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer, database_url: str
) -> None:
    pagerduty.send_webhooks_to(None)  # PagerDuty's webhook subscription is missing: nothing comes back
    post = await _posted(bot)
    assert await _press(bot, post) == 200
    await _status_becomes(database_url, "waiting")
    at(bot, ROTATION + timedelta(seconds=5) + timedelta(seconds=121))  # the catalog's 120 s have passed
    await bot.runtime.scheduler.run_due()  # the sweep; or the waiter, reading the same clock, was first
    await finishes(bot.settle(), within=30, what="the waiter")  # it sees the test finished and stops

    [_, broken] = thread(bot.slack, post)
    assert broken.text.startswith(
        ":x: No webhook came back within 2 min of the test event: the PagerDuty → bot loop is broken."
    )
    assert [e["event_action"] for e in _events(pagerduty)] == [
        "trigger",
        "resolve",
    ]  # no test incident left open
    assert "no webhook came back — the PagerDuty loop is broken" in blocks_text(
        latest_blocks(bot.slack, post)
    )
    await bot.runtime.scheduler.run_due()
    assert len(thread(bot.slack, post)) == 2


async def test_a_test_whose_waiter_died_is_finished_once_by_another_replica(
    replica: BotUnderTest, bot: BotUnderTest, database_url: str
) -> None:
    """The replica that sent the trigger died while waiting (its lease ran out); the webhook arrived anyway. The
    other replica's sweep reports it, once."""
    post = await _posted(bot)
    dedup_key = f"{HANDOFF_TEST_KEY_PREFIX}died-while-waiting"
    async with bot.runtime.bot.storage.pool.connection() as conn:
        await conn.execute(
            """INSERT INTO handoff_pagerduty_tests (handoff_id, service, dedup_key, requested_by, status,
                   requested_at, deadline, sent_at, claimed_until)
               SELECT id, 'mira-copilot', %s, %s, 'waiting', %s, %s, now(), %s FROM handoffs""",
            (
                dedup_key,
                ALICE[3],
                ROTATION + timedelta(minutes=1),
                ROTATION + timedelta(minutes=3),
                ROTATION + timedelta(minutes=1, seconds=30),
            ),
        )
    incident = pd.incident(id="QTEST01", service_id="PSVCMIRA", incident_key=dedup_key, priority=None)
    assert await send_webhook(bot, pd.event("incident.triggered", incident)) == 202
    at(replica, ROTATION + timedelta(minutes=2))  # lease over, deadline not yet
    await replica.runtime.scheduler.run_due()
    await replica.runtime.scheduler.run_due()
    results = [c for c in thread(bot.slack, post) if "PagerDuty integration works" in str(c.text)]
    assert len(results) == 1 and "(incident QTEST01)" in results[0].text
    assert await one_row(database_url, "SELECT status FROM handoff_pagerduty_tests") == ("ok",)


async def test_pagerduty_refusing_the_event_is_said_in_its_words(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    post = await _posted(bot)
    pagerduty.fail_next("POST", 400, path_prefix="/v2/enqueue")
    assert await _press(bot, post) == 200
    await finishes(bot.settle(), within=30, what="the PagerDuty test")
    [_, failed] = thread(bot.slack, post)
    assert failed.text.startswith(":x: PagerDuty did not take the test event: PagerDuty answered 400: ")
    assert ROUTING_KEY not in failed.text
    assert "failed: PagerDuty answered 400" in blocks_text(latest_blocks(bot.slack, post))


async def test_without_a_routing_key_the_button_says_what_to_set(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer, catalog_env: dict[str, str]
) -> None:
    post = await _posted(bot)
    bot.runtime.bot.catalog = load_catalog(
        env={k: v for k, v in catalog_env.items() if k != "MIRA_PD_ROUTING_KEY"}
    )
    assert await _press(bot, post) == 200
    await bot.settle()
    [told] = bot.slack.calls_to("response_url")
    assert told.body["text"] == (
        ":warning: The PagerDuty test cannot run: set MIRA_PD_ROUTING_KEY "
        "(the Events API routing key of Mira Co-Pilot)."
    )
    assert _events(pagerduty) == []
    assert thread(bot.slack, post) == [] and edits(bot.slack, post) == []
