"""The weekly handoff checklist end to end: the scheduler at the rotation (clock injected, never slept), PagerDuty's
on-calls from the recording PagerDuty, and what reached the recording Slack server — one post per rotation
across replicas and restarts, ticks stored and audited with the message edited in place, reminders once each."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from bot.scheduler import Scheduler
from handlers.handoff import checklist as handoff
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer, SlackCall
from tests import pd_payloads as pd
from tests.harness import BotUnderTest, blocks_text
from tests.oncall.world import (
    ALERTS,
    ALICE,
    BOB,
    CAROL,
    DANA,
    POLICY,
    ROTATION,
    RUNBOOK_URL,
    WEEK,
    all_rows,
    at,
    checkbox,
    checklists,
    edits,
    latest_blocks,
    one_row,
    send_webhook,
    thread,
    tick,
    ticked,
)


async def _open_incident(bot: BotUnderTest) -> None:
    """An incident triggered on Sunday and still open, delivered to Slack by the real worker (its root exists)."""
    sunday = ROTATION - timedelta(days=1)
    at(bot, sunday)  # the bot's clock stamps the webhook (received_at, next_attempt_at) and drives the worker
    incident = pd.incident(id="PINC042", number=42, title="Edge function 503s", created_at=sunday)
    assert await send_webhook(bot, pd.event("incident.triggered", incident, occurred_at=sunday)) == 202
    await bot.runtime.delivery.run_once(sunday)
    await bot.settle()


async def test_the_rotation_posts_one_checklist_naming_outgoing_and_incoming_with_evidence(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer, database_url: str
) -> None:
    await _open_incident(bot)
    before = len(bot.slack.calls)
    at(bot, ROTATION + timedelta(seconds=5))
    assert "handoff.checklist" in await bot.runtime.scheduler.run_due()

    [post] = checklists(bot.slack)
    assert post.channel == ALERTS
    assert post.text == (f"On-call handoff, week of 23 Nov 2026: <@{ALICE[3]}> → <@{BOB[3]}> · 0/5 done")
    text = blocks_text(post.blocks)
    assert f"*Outgoing primary:* <@{ALICE[3]}>  →  *Incoming primary:* <@{BOB[3]}>" in text
    assert f"*Secondary:* <@{CAROL[3]}>" in text
    assert f"*Escalation:* <@{DANA[3]}>" in text
    assert (
        "AI Squad (primary on-call) → Backend Team (secondary on-call) · 15 min → Engineering Manager · 1 h"
        in text
    )
    # One checkbox per runbook item, the PagerDuty test button beside item 4.
    labels = [checkbox(post.blocks, n)["options"][0]["text"]["text"] for n in range(1, 6)]
    assert labels == [
        "*1. Review open incidents from previous week*",
        "*2. Check system health dashboards*",
        "*3. Verify all alerts are functioning*",
        "*4. Test PagerDuty integration*",
        "*5. Review this runbook for updates*",
    ]
    item4 = next(b for b in post.blocks if b.get("block_id") == "handoff_item_4")
    assert [e["type"] for e in item4["elements"]] == ["checkboxes", "button"]
    assert item4["elements"][1]["action_id"] == "handoff_pagerduty_test"

    # Evidence: the open incident linked to its thread, /health of every service, the last webhook per service,
    # the runbook's link and date.
    [incident_root] = [
        c for c in bot.slack.calls[:before] if c.method == "chat.postMessage" and c.channel == post.channel
    ]
    link = (
        f"https://console.slack.test/archives/{incident_root.response['channel']}/"
        f"p{incident_root.response['ts'].replace('.', '')}"
    )
    assert (
        f"1 open incident at Mon 23 Nov 09:00 UTC, from any week:\n• <{link}|#42 Edge function 503s> "
        "(Mira Co-Pilot, triggered, since Sun 22 Nov" in text
    )
    # Which week the count is about: the seven days before the rotation, named.
    assert (
        "Triggered in the week before this rotation (Mon 16 Nov 09:00 UTC – Mon 23 Nov 09:00 UTC): 1, "
        "0 of them resolved since." in text
    )
    assert ":large_green_circle: *Mira Co-Pilot* ok" in text
    assert ":red_circle: *FA AI System* down — `health` down (HTTP 503 (expected 200))" in text
    assert ":white_circle: *Ivy v2* not configured" in text
    assert ":incoming_envelope: *Mira Co-Pilot*: last PagerDuty webhook" in text
    assert ":warning: *Ivy v2*: no PagerDuty webhook received yet" in text
    assert (
        f"<{RUNBOOK_URL}|Mira Co-Pilot Production Runbook> — last updated 2025-11-12 "
        "(376 days before this rotation)" in text
    )
    assert "a test event goes to Mira Co-Pilot through the Events API v2" in text

    # What PagerDuty and Slack were asked.
    [oncalls] = pagerduty.calls_to("GET", "/oncalls")
    assert oncalls.query["escalation_policy_ids[]"] == [POLICY[0]]
    assert oncalls.query["since"] == [(ROTATION - timedelta(minutes=1)).isoformat()]
    assert oncalls.query["until"] == [(ROTATION + timedelta(minutes=1)).isoformat()]
    looked_up = {c.body["email"] for c in bot.slack.calls_to("users.lookupByEmail")}
    assert {ALICE[2], BOB[2], CAROL[2], DANA[2]} <= looked_up
    assert await one_row(database_url, "SELECT count(*) FROM health_runs WHERE requested_by = 'handoff'") == (
        1,
    )

    # The scheduler again, a minute later: nothing new.
    at(bot, ROTATION + timedelta(minutes=1))
    assert "handoff.checklist" not in await bot.runtime.scheduler.run_due()
    assert len(checklists(bot.slack)) == 1


async def test_two_bot_processes_sharing_postgres_and_redis_post_once(
    bot: BotUnderTest, replica: BotUnderTest, database_url: str
) -> None:
    for runtime in (bot, replica):
        at(runtime, ROTATION + timedelta(seconds=1))
    # Both schedulers at the rotation, and someone typing /oncall handoff on the second process meanwhile.
    ran = await asyncio.gather(
        bot.runtime.scheduler.run_due(),
        replica.runtime.scheduler.run_due(),
        replica.command("/oncall", "handoff"),
    )
    await bot.settle()
    await replica.settle()
    assert sum("handoff.checklist" in names for names in ran[:2]) == 1
    assert len(checklists(bot.slack)) == 1
    assert await one_row(database_url, "SELECT count(*) FROM handoffs") == (1,)
    assert await one_row(database_url, "SELECT count(*) FROM job_runs WHERE job = 'handoff.checklist'") == (
        1,
    )


async def test_a_bot_started_40_minutes_late_posts_once_and_not_again_after_restart(
    bot: BotUnderTest, replica: BotUnderTest
) -> None:
    at(bot, ROTATION + timedelta(minutes=40))  # down at 09:00, up at 09:40: within the 2-hour grace
    assert "handoff.checklist" in await bot.runtime.scheduler.run_due()
    assert len(checklists(bot.slack)) == 1

    at(replica, ROTATION + timedelta(minutes=55))  # restarted (a new process) at 09:55
    assert "handoff.checklist" not in await replica.runtime.scheduler.run_due()
    assert len(checklists(bot.slack)) == 1


async def test_a_bot_started_after_the_grace_period_does_not_post_by_itself(bot: BotUnderTest) -> None:
    at(bot, ROTATION + timedelta(hours=2, minutes=1))
    assert "handoff.checklist" not in await bot.runtime.scheduler.run_due()
    assert checklists(bot.slack) == []


async def test_a_poster_that_died_mid_post_is_taken_over_after_its_lease(
    bot: BotUnderTest, database_url: str
) -> None:
    """A replica claimed the rotation and died before posting: the slot and the checklist stay claimed for a
    while (no second post while it might still be working), then another replica posts it once."""
    async with bot.runtime.bot.storage.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO job_runs (job, slot, claimed_by, claimed_at) VALUES ('handoff.checklist', %s, 'dead', %s)",
            (ROTATION, ROTATION),
        )
        await conn.execute(
            """INSERT INTO handoffs (rotation, channel, claimed_by, claimed_at, items)
               VALUES (%s, %s, 'dead', %s, '[]')""",
            (ROTATION, ALERTS, ROTATION),
        )
    at(bot, ROTATION + timedelta(minutes=5))
    assert "handoff.checklist" not in await bot.runtime.scheduler.run_due()
    at(
        bot, ROTATION + timedelta(minutes=11)
    )  # past the scheduler's 10-minute lease and the 5-minute stale claim
    assert "handoff.checklist" in await bot.runtime.scheduler.run_due()
    [post] = checklists(bot.slack)
    assert "*5. Review this runbook for updates*" in json.dumps(post.blocks)
    claims = await one_row(database_url, "SELECT count(*), min(claimed_by) FROM handoffs")
    assert claims == (1, bot.runtime.bot.replica)


async def test_a_checklist_slack_stored_but_answered_5xx_is_posted_once_and_found_later(
    bot: BotUnderTest, database_url: str
) -> None:
    """Slack stores the checklist and answers 500 anyway: the post is not resent blindly (it once was, through
    the retrying client: two checklists). The claim stays, uncertain; once it is stale, `/oncall handoff` looks
    the message up by its metadata and records it instead of posting a second one."""
    bot.slack.fail_after_accept("chat.postMessage", status=500)
    at(bot, ROTATION + timedelta(seconds=1))
    await bot.runtime.scheduler.run_due()
    await bot.settle()
    assert [m.text for m in bot.slack.messages(ALERTS) if str(m.text).startswith("On-call handoff")] != []
    assert len([m for m in bot.slack.messages(ALERTS) if str(m.text).startswith("On-call handoff")]) == 1
    assert await one_row(database_url, "SELECT ts FROM handoffs") == (None,)

    at(bot, ROTATION + timedelta(minutes=10))
    await bot.command("/oncall", "handoff")
    await bot.settle()
    [stored] = [m for m in bot.slack.messages(ALERTS) if str(m.text).startswith("On-call handoff")]
    assert await one_row(database_url, "SELECT ts FROM handoffs") == (stored.ts,)


async def _posted(bot: BotUnderTest) -> SlackCall:
    at(bot, ROTATION + timedelta(seconds=5))
    await bot.runtime.scheduler.run_due()
    [post] = checklists(bot.slack)
    return post


async def test_ticks_and_unticks_are_stored_audited_and_edit_the_message_in_place(
    bot: BotUnderTest, database_url: str
) -> None:
    post = await _posted(bot)
    at(bot, ROTATION + timedelta(minutes=20))
    await tick(bot, post, 2, user=ALICE[3])
    await tick(bot, post, 2, user=ALICE[3])  # a double click: the same state, no second tick
    assert await all_rows(database_url, "SELECT item, ticked_by, ticked_at FROM handoff_ticks") == [
        (2, ALICE[3], ROTATION + timedelta(minutes=20))
    ]
    blocks = latest_blocks(bot.slack, post)
    assert ticked(blocks) == [2]
    assert f":ballot_box_with_check: Ticked by <@{ALICE[3]}> at Mon 23 Nov 09:20 UTC" in blocks_text(blocks)
    assert all(e.body["channel"] == post.response["channel"] for e in edits(bot.slack, post))
    assert edits(bot.slack, post)[-1].text.endswith("· 1/5 done")

    at(bot, ROTATION + timedelta(minutes=30))
    await tick(bot, post, 2, checked=False, user=BOB[3])
    assert await all_rows(database_url, "SELECT item FROM handoff_ticks") == []
    assert ticked(latest_blocks(bot.slack, post)) == []
    audit = await all_rows(
        database_url, "SELECT actor, action, before, after, outcome FROM audit_log ORDER BY id"
    )
    assert audit == [
        (
            ALICE[3],
            "handoff.tick",
            {"ticked": False},
            {"ticked": True, "by": ALICE[3], "at": (ROTATION + timedelta(minutes=20)).isoformat()},
            "ok",
        ),
        (
            BOB[3],
            "handoff.untick",
            {"ticked": True, "by": ALICE[3], "at": (ROTATION + timedelta(minutes=20)).isoformat()},
            {"ticked": False},
            "ok",
        ),
    ]
    assert len(checklists(bot.slack)) == 1  # edited in place, never re-posted


async def test_two_people_ticking_at_once_leave_the_message_showing_both(
    bot: BotUnderTest, replica: BotUnderTest
) -> None:
    post = await _posted(bot)
    at(replica, ROTATION + timedelta(minutes=20))
    await asyncio.gather(tick(bot, post, 1, user=ALICE[3]), tick(replica, post, 3, user=BOB[3]))
    assert ticked(latest_blocks(bot.slack, post)) == [1, 3]


async def test_reminders_fire_once_each_with_an_injected_clock(
    bot: BotUnderTest, replica: BotUnderTest, slack: RecordingSlackServer
) -> None:
    post = await _posted(bot)
    await tick(bot, post, 1)

    at(bot, ROTATION + timedelta(hours=4))
    assert "handoff.reminder.+4h" in await bot.runtime.scheduler.run_due()
    [reminder] = thread(slack, post)
    assert reminder.text == (
        f":bell: <@{BOB[3]}>: 4 of 5 handoff items are still open: 2. Check system health dashboards · "
        "3. Verify all alerts are functioning · 4. Test PagerDuty integration · 5. Review this runbook for updates. "
        "Tick them above when done. _(reminder +4h)_"
    )
    at(bot, ROTATION + timedelta(hours=4, minutes=30))
    at(replica, ROTATION + timedelta(hours=4, minutes=30))
    await bot.runtime.scheduler.run_due()
    await replica.runtime.scheduler.run_due()
    assert len(thread(slack, post)) == 1

    for runtime in (bot, replica):
        at(runtime, ROTATION + timedelta(hours=8))  # 17:00 UTC, the rotation's day
    await asyncio.gather(bot.runtime.scheduler.run_due(), replica.runtime.scheduler.run_due())
    second = thread(slack, post)[1:]
    assert [r.text.rsplit("_", 2)[-2] for r in second] == ["(reminder 17:00)"]
    at(bot, ROTATION + timedelta(hours=9))
    await bot.runtime.scheduler.run_due()
    assert len(thread(slack, post)) == 2


async def test_completing_the_checklist_posts_one_summary_and_stops_the_reminders(
    bot: BotUnderTest, slack: RecordingSlackServer
) -> None:
    post = await _posted(bot)
    at(bot, ROTATION + timedelta(hours=2, minutes=10))
    for item in range(1, 6):
        await tick(bot, post, item, user=ALICE[3] if item < 3 else BOB[3])
    [summary] = thread(slack, post)
    assert summary.text == (
        ":white_check_mark: Handoff checklist complete (5/5), 2 h 10 min after the rotation. "
        f"Ticked by <@{ALICE[3]}>, <@{BOB[3]}>."
    )
    assert edits(slack, post)[-1].text.endswith("· 5/5 done — complete :white_check_mark:")
    await tick(bot, post, 5, checked=False, user=BOB[3])  # unticked and ticked again: no second summary
    await tick(bot, post, 5, user=BOB[3])
    at(bot, ROTATION + timedelta(hours=4))
    await bot.runtime.scheduler.run_due()
    at(bot, ROTATION + timedelta(hours=8))
    await bot.runtime.scheduler.run_due()
    assert thread(slack, post) == [summary]


async def test_reminders_of_a_checklist_never_posted_stay_silent(bot: BotUnderTest) -> None:
    at(bot, ROTATION + timedelta(hours=4))  # the bot was down all morning: no checklist this week
    ran = await bot.runtime.scheduler.run_due()
    assert "handoff.reminder.+4h" in ran
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_second_scheduler_on_the_same_runtime_is_another_replica_for_the_reminders(
    bot: BotUnderTest,
) -> None:
    """The reminder jobs claim their slot like any job: a second scheduler (another replica) does not repeat it."""
    post = await _posted(bot)
    clock = at(bot, ROTATION + timedelta(hours=4))
    other = Scheduler(bot.runtime.bot.storage.pool, clock=clock)
    for job in handoff.jobs(bot.runtime.bot):
        other.add(job)
    ran = await asyncio.gather(bot.runtime.scheduler.run_due(), other.run_due())
    assert sum("handoff.reminder.+4h" in names for names in ran) == 1
    assert len(thread(bot.slack, post)) == 1


async def test_next_week_gets_its_own_checklist(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    await _posted(bot)
    pagerduty.set_oncalls([])  # PagerDuty has nobody this time: the post still comes, saying so
    at(bot, ROTATION + WEEK + timedelta(seconds=5))
    assert "handoff.checklist" in await bot.runtime.scheduler.run_due()
    first, second = checklists(bot.slack)
    assert second.text == "On-call handoff, week of 30 Nov 2026 · 0/5 done"
    assert "*Outgoing primary:* nobody  →  *Incoming primary:* nobody" in blocks_text(second.blocks)


async def test_a_bystander_can_neither_tick_nor_untick_and_the_refusal_is_audited(
    bot: BotUnderTest, database_url: str
) -> None:
    """Unticking is limited like ticking (issue 14): the people the handoff is between (outgoing, incoming,
    secondary, escalation) and the service's owners; anyone else is refused, audited, and the message shows the
    stored state again (their Slack ticked the box locally)."""
    post = await _posted(bot)
    at(bot, ROTATION + timedelta(minutes=20))
    await tick(bot, post, 1, user=ALICE[3])
    edits_before = len(edits(bot.slack, post))
    await tick(bot, post, 1, checked=False, user="U0EVE0001")  # a bystander unticks Alice's tick
    await tick(bot, post, 2, user="U0EVE0001")  # and ticks another item
    assert await all_rows(database_url, "SELECT item, ticked_by FROM handoff_ticks") == [(1, ALICE[3])]
    refusals = [c.text for c in bot.slack.calls_to("response_url")]
    people = f"<@{ALICE[3]}>, <@{BOB[3]}>, <@{CAROL[3]}>, <@{DANA[3]}>"
    assert refusals == [
        f":lock: Only the people this handoff is between and the service's owners may untick it: {people}.",
        f":lock: Only the people this handoff is between and the service's owners may tick it: {people}.",
    ]
    assert len(edits(bot.slack, post)) == edits_before + 2  # the local ticks undone on the bystander's screen
    assert ticked(latest_blocks(bot.slack, post)) == [1]
    audit = await all_rows(
        database_url, "SELECT actor, action, outcome FROM audit_log WHERE actor = 'U0EVE0001' ORDER BY id"
    )
    assert audit == [
        ("U0EVE0001", "handoff.untick.refused", "refused"),
        ("U0EVE0001", "handoff.tick.refused", "refused"),
    ]

    await tick(bot, post, 1, checked=False, user=CAROL[3])  # the secondary may, as she may tick
    assert await all_rows(database_url, "SELECT item FROM handoff_ticks") == []
