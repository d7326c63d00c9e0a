"""Issue 14, safe revert: `/flag revert N` never silently undoes a later change, and a risky revert asks for Confirm.

A preset (change 1), then `AI_RATE_LIMIT_PER_MIN 30 → 120` (change 2), then `/flag revert 1` used to set it back to
the default without a word. Real Postgres (Ivy's flag table), the recording Slack server; assertions on what reached
Slack, on the flag table and on the audit rows.
"""

from __future__ import annotations

import asyncio

from integrations.flag_table import PostgresFlagTable
from tests import flag_fixtures
from tests.flag_fixtures import OWNER, STRANGER, rows
from tests.harness import BotUnderTest, blocks_text

supabase, settings, catalog = flag_fixtures.supabase, flag_fixtures.settings, flag_fixtures.catalog
catalog_env, owned_catalog_path = flag_fixtures.catalog_env, flag_fixtures.owned_catalog_path
flag_table, _group = flag_fixtures.flag_table, flag_fixtures.group

CHANNEL = "C0OPS0001"
IVY_FLAGS = "SELECT name, value FROM feature_flags ORDER BY name"


async def _preset_then_later_change(bot: BotUnderTest) -> None:
    await bot.command("/flag", "preset ivy-v2 emergency", user=OWNER)  # change 1: rate 60 (default) → 30
    await bot.settle()
    await bot.command("/flag", "set AI_RATE_LIMIT_PER_MIN 120", user=OWNER)  # change 2: 30 → 120
    await bot.settle()


async def test_a_revert_that_would_overwrite_a_later_change_shows_the_conflict_and_changes_nothing(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await _preset_then_later_change(bot)
    before = await rows(database_url, IVY_FLAGS)

    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()

    question = bot.slack.calls_to("response_url")[-1]
    text = blocks_text(question.blocks)
    assert "Reverting change 1 would overwrite later changes" in text
    assert f"`AI_RATE_LIMIT_PER_MIN` was changed since by change 2 by <@{OWNER}>: it is *120* now" in text
    assert "the revert would set its default (60)" in text
    assert (
        "Put back either way: IVY_MODAL_HEURISTICS false → true (default), AI_BURST_LIMIT 5 → 10 (default)."
        in text
    )
    buttons = question.blocks[-1]["elements"]
    assert [(b["action_id"], b["text"]["text"], b["value"]) for b in buttons] == [
        ("flag_revert_anyway", "Revert anyway", "3"),
        ("flag_revert_skip", "Skip that flag", "3"),
        ("flag_cancel", "Cancel", "3"),
    ]
    assert await rows(database_url, IVY_FLAGS) == before  # nothing changed yet
    assert len(bot.slack.calls_to("chat.postMessage")) == 2  # the two changes, no revert announced
    assert await rows(database_url, "SELECT id, status, reverted_by FROM flag_changes ORDER BY id") == [
        (1, "applied", None),
        (2, "applied", None),
        (3, "pending", None),
    ]


async def test_skip_that_flag_keeps_the_later_change_and_a_double_click_reverts_once(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await _preset_then_later_change(bot)
    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()

    first, second = await asyncio.gather(
        bot.click(CHANNEL, "", "flag_revert_skip", "3", user=OWNER),
        bot.click(CHANNEL, "", "flag_revert_skip", "3", user=OWNER),
    )
    assert first.status_code == second.status_code == 200
    await bot.settle()

    assert await rows(database_url, IVY_FLAGS) == [("AI_RATE_LIMIT_PER_MIN", "120")]  # change 2 kept
    announcements = [c.text for c in bot.slack.calls_to("chat.postMessage")]
    assert len(announcements) == 3
    assert announcements[-1] == (
        f"<@{OWNER}> reverted change 1 on Ivy v2: ivy-v2:IVY_MODAL_HEURISTICS false → true (default), "
        "ivy-v2:AI_BURST_LIMIT 5 → 10 (default) (change 3, revert: `/flag revert 3`) "
        "— kept ivy-v2:AI_RATE_LIMIT_PER_MIN (changed since)"
    )
    replies = [c.text for c in bot.slack.calls_to("response_url")]
    assert sum("Change 3 applied" in r for r in replies) == 1
    assert any(
        r == f"Revert 3 was already applying by <@{OWNER}>." or "already applied" in r for r in replies
    )
    assert await rows(
        database_url,
        "SELECT action, target, after, outcome FROM audit_log WHERE action IN ('flag.set', 'flag.unset') "
        "AND detail->>'change' = '3' ORDER BY id",
    ) == [("flag.unset", "IVY_MODAL_HEURISTICS", None, "ok"), ("flag.unset", "AI_BURST_LIMIT", None, "ok")]
    [(detail,)] = await rows(database_url, "SELECT detail FROM audit_log WHERE action = 'flag.confirm'")
    assert detail == {"skipped": ["AI_RATE_LIMIT_PER_MIN"]}
    assert await rows(database_url, "SELECT id, status, reverted_by FROM flag_changes ORDER BY id") == [
        (1, "applied", 3),
        (2, "applied", None),
        (3, "applied", None),
    ]


async def test_revert_anyway_puts_every_flag_back_and_audits_the_overwrite(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await _preset_then_later_change(bot)
    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()
    await bot.click(CHANNEL, "", "flag_revert_anyway", "3", user=OWNER)
    await bot.settle()

    assert await rows(database_url, IVY_FLAGS) == []  # all three back to the service's defaults
    assert (
        "ivy-v2:AI_RATE_LIMIT_PER_MIN 120 → 60 (default)" in bot.slack.calls_to("chat.postMessage")[-1].text
    )
    [(detail,)] = await rows(database_url, "SELECT detail FROM audit_log WHERE action = 'flag.confirm'")
    assert detail == {"overwrote": ["AI_RATE_LIMIT_PER_MIN"]}

    await bot.click(CHANNEL, "", "flag_revert_skip", "3", user=OWNER)  # a late click on the other button
    await bot.settle()
    assert f"Revert 3 was already applied by <@{OWNER}>." == bot.slack.calls_to("response_url")[-1].text
    assert len(bot.slack.calls_to("chat.postMessage")) == 3


async def test_a_stranger_cannot_decide_a_revert(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await _preset_then_later_change(bot)
    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()
    before = await rows(database_url, IVY_FLAGS)
    for action in ("flag_revert_anyway", "flag_revert_skip"):
        await bot.click(CHANNEL, "", action, "3", user=STRANGER)
        await bot.settle()
        assert "Only the owners of Ivy v2" in bot.slack.calls_to("response_url")[-1].text
    assert await rows(database_url, IVY_FLAGS) == before
    assert await rows(database_url, "SELECT status FROM flag_changes WHERE id = 3") == [("pending",)]


async def test_a_later_change_that_put_the_same_value_back_is_no_conflict(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await _preset_then_later_change(bot)
    await bot.command(
        "/flag", "set AI_RATE_LIMIT_PER_MIN 30", user=OWNER
    )  # change 3: 120 → 30, as change 1 left it
    await bot.settle()
    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()
    assert "Change 4 applied" in blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    assert await rows(database_url, IVY_FLAGS) == []


async def test_reverting_a_risky_change_asks_for_confirm_and_applies_once(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await bot.command("/flag", "set AI_MODEL_PROVIDER openai", user=OWNER)
    await bot.settle()
    await bot.click(CHANNEL, "", "flag_confirm", "1", user=OWNER)
    await bot.settle()
    assert await rows(database_url, IVY_FLAGS) == [("AI_MODEL_PROVIDER", "openai")]

    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()
    confirmation = bot.slack.calls_to("response_url")[-1]
    assert "Risky change 2" in blocks_text(confirmation.blocks)
    assert "AI_MODEL_PROVIDER openai → gemini (default)" in blocks_text(confirmation.blocks)
    assert [(b["action_id"], b["value"]) for b in confirmation.blocks[-1]["elements"]] == [
        ("flag_confirm", "2"),
        ("flag_cancel", "2"),
    ]
    assert await rows(database_url, IVY_FLAGS) == [("AI_MODEL_PROVIDER", "openai")]  # waits for Confirm

    await asyncio.gather(
        bot.click(CHANNEL, "", "flag_confirm", "2", user=OWNER),
        bot.click(CHANNEL, "", "flag_confirm", "2", user=OWNER),
    )
    await bot.settle()
    assert await rows(database_url, IVY_FLAGS) == []
    reverts = [c.text for c in bot.slack.calls_to("chat.postMessage") if "reverted change 1" in c.text]
    assert len(reverts) == 1
    assert await rows(database_url, "SELECT reverted_by FROM flag_changes WHERE id = 1") == [(2,)]


async def test_two_pending_reverts_of_one_change_apply_one(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await bot.command("/flag", "set AI_MODEL_PROVIDER openai", user=OWNER)
    await bot.settle()
    await bot.click(CHANNEL, "", "flag_confirm", "1", user=OWNER)
    await bot.settle()
    await bot.command("/flag", "revert 1", user=OWNER)  # change 2, pending
    await bot.command("/flag", "revert 1", user=OWNER)  # change 3, pending
    await bot.settle()
    await bot.click(CHANNEL, "", "flag_confirm", "2", user=OWNER)
    await bot.settle()
    await bot.click(CHANNEL, "", "flag_confirm", "3", user=OWNER)
    await bot.settle()
    assert bot.slack.calls_to("response_url")[-1].text == (
        "Change 1 was reverted by someone else meanwhile: nothing changed."
    )
    assert await rows(database_url, "SELECT id, status FROM flag_changes ORDER BY id") == [
        (1, "applied"),
        (2, "applied"),
        (3, "cancelled"),
    ]


async def test_a_revert_with_nothing_left_to_put_back_records_nothing(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await bot.command("/flag", "set AI_BURST_LIMIT 7", user=OWNER)  # change 1
    await bot.settle()
    await bot.command("/flag", "unset AI_BURST_LIMIT", user=OWNER)  # change 2: back as before change 1
    await bot.settle()
    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()
    assert bot.slack.calls_to("response_url")[-1].text == (
        "Nothing to change: every flag of change 1 is already as it was before it."
    )
    assert await rows(database_url, "SELECT count(*) FROM flag_changes") == [(2,)]
    assert len(bot.slack.calls_to("chat.postMessage")) == 2
