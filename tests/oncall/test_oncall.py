"""/oncall end to end: signed slash commands, PagerDuty's on-calls from the recording PagerDuty, Slack mentions
from users.lookupByEmail, and what reached the recording Slack server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.catalog import load_catalog
from bot.commands import UsageError
from bot.settings import Settings
from handlers.oncall.command import parse
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from tests.harness import CHANNEL, BotUnderTest, blocks_text
from tests.harness import USER as USER_ID
from tests.oncall.world import (
    ALICE,
    BOB,
    CAROL,
    DANA,
    POLICY,
    ROTATION,
    at,
    checklists,
    tick,
)

MIRA_PATH = (
    "AI Squad (primary on-call) → Backend Team (secondary on-call) · 15 min → Engineering Manager · 1 h"
)
FA_PATH = (
    "Primary on-call · 15 min → Secondary on-call · 30 min → Engineering Manager · 1 h → VP Engineering · 2 h"
)


async def test_oncall_names_who_is_on_call_per_service_with_the_runbook_escalation_paths(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    at(bot, ROTATION + timedelta(hours=3))
    response = await bot.command("/oncall")
    assert response.json()["text"] == "Asking PagerDuty who is on call for 4 services…"
    await bot.settle()
    [post] = bot.slack.calls_to("chat.postMessage")
    assert post.channel == CHANNEL
    assert post.text == (
        f"On call now: Mira Co-Pilot <@{BOB[3]}> · Ivy v2 unknown · AI Assistant unknown · FA AI System unknown"
    )
    text = blocks_text(post.blocks)
    assert (
        f"*Mira Co-Pilot* — Primary <@{BOB[3]}> (until Mon 30 Nov 09:00 UTC) · Secondary <@{CAROL[3]}> "
        f"· Level 3 <@{DANA[3]}>\n_Escalation path:_ {MIRA_PATH}"
    ) in text
    assert f"<@{ALICE[3]}>" not in text  # her week ended at the rotation
    assert "*Ivy v2* — :white_circle: unknown (set IVY_PD_ESCALATION_POLICY or IVY_PD_SCHEDULE)" in text
    assert f"_Escalation path:_ {FA_PATH}" in text
    [call] = pagerduty.calls_to("GET", "/oncalls")
    assert call.query["escalation_policy_ids[]"] == [POLICY[0]] and call.token is not None
    assert {c.body["email"] for c in bot.slack.calls_to("users.lookupByEmail")} == {
        ALICE[2],
        BOB[2],
        CAROL[2],
        DANA[2],
    }


async def test_a_pagerduty_error_is_shown_in_its_words_for_that_service(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    pagerduty.fail_next("GET", 403, path_prefix="/oncalls")
    await bot.command("/oncall")
    await bot.settle()
    [post] = bot.slack.calls_to("chat.postMessage")
    assert "*Mira Co-Pilot* — :white_circle: unknown (PagerDuty answered 403: Access Denied)" in blocks_text(
        post.blocks
    )


async def test_without_a_pagerduty_token_the_roster_says_what_to_set(
    settings: Settings, bot: BotUnderTest
) -> None:
    bot.runtime.bot.pagerduty = None
    await bot.command("/oncall")
    await bot.settle()
    [post] = bot.slack.calls_to("chat.postMessage")
    assert "*Mira Co-Pilot* — :white_circle: unknown (set PAGERDUTY_API_TOKEN)" in blocks_text(post.blocks)


async def test_oncall_handoff_posts_this_weeks_checklist_once_and_links_it(bot: BotUnderTest) -> None:
    at(bot, ROTATION + timedelta(days=2))  # Wednesday: the rotation of Monday is the current one
    assert (await bot.command("/oncall", "handoff")).json()[
        "text"
    ] == "Posting this week's handoff checklist…"
    await bot.settle()
    [post] = checklists(bot.slack)
    assert post.text.startswith(f"On-call handoff, week of 23 Nov 2026: <@{ALICE[3]}> → <@{BOB[3]}>")
    assert f"Posted by <@{USER_ID}> with `/oncall handoff`" in blocks_text(post.blocks)
    link = f"https://console.slack.test/archives/{post.response['channel']}/p{post.response['ts'].replace('.', '')}"
    [told] = bot.slack.calls_to("response_url")
    assert told.body["text"] == f"Posted this week's handoff checklist <{link}|in #mira-copilot-alerts>."

    await bot.command("/oncall", "handoff", user=BOB[3])
    await bot.settle()
    assert len(checklists(bot.slack)) == 1
    again = bot.slack.calls_to("response_url")[-1]
    assert again.body["text"] == (
        f"This week's handoff checklist is already posted <{link}|in #mira-copilot-alerts> "
        f"(by <@{USER_ID}>, Wed 25 Nov 09:00 UTC): 0/5 items done."
    )


async def test_oncall_checklist_before_and_after_the_post(bot: BotUnderTest) -> None:
    at(bot, ROTATION + timedelta(minutes=30))
    await bot.command("/oncall", "checklist")
    await bot.settle()
    [told] = bot.slack.calls_to("response_url")
    assert told.body["text"] == (
        "No handoff checklist for the rotation of Mon 23 Nov 09:00 UTC yet: it is posted at the rotation, "
        "or now with `/oncall handoff`."
    )
    assert bot.slack.calls_to("chat.postMessage") == []

    await bot.runtime.scheduler.run_due()
    [post] = checklists(bot.slack)
    at(bot, ROTATION + timedelta(minutes=45))
    await tick(bot, post, 3, user=BOB[3])
    await bot.command("/oncall", "checklist")
    await bot.settle()
    status = bot.slack.calls_to("chat.postMessage", channel=CHANNEL)[-1]
    assert status.text == "Handoff checklist for the rotation of Mon 23 Nov 09:00 UTC: 1/5 done"
    text = blocks_text(status.blocks)
    assert (
        f":ballot_box_with_check: 3. Verify all alerts are functioning — <@{BOB[3]}> Mon 23 Nov 09:45 UTC"
        in text
    )
    assert ":white_large_square: 1. Review open incidents from previous week" in text
    assert "|Open the checklist> in #mira-copilot-alerts" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("checklst", ["I don't understand `/oncall checklst`", "Did you mean `/oncall checklist`?"]),
        ("handoff now", ["I don't understand `/oncall handoff now`"]),
        (
            "help",
            [
                "`/oncall [SERVICE | handoff | checklist]` — Who is on call now",
                "`/oncall handoff` — post this week",
            ],
        ),
    ],
)
async def test_bad_input_gets_usage_and_nothing_is_posted(
    bot: BotUnderTest, text: str, expected: list[str]
) -> None:
    reply = (await bot.command("/oncall", text)).json()
    assert reply["response_type"] == "ephemeral"
    for fragment in expected:
        assert fragment in reply["text"]
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []


def test_parse_without_a_handoff_section(catalog_env: dict[str, str]) -> None:
    catalog = load_catalog(env=catalog_env).model_copy(update={"handoff": None})
    assert parse("", catalog).action == "now"
    with pytest.raises(UsageError, match="no `handoff` section"):
        parse("handoff", catalog)
