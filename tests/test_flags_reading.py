"""Issue 14, reading and asking: `/flag history`, `/flag preset [SERVICE]`, the runbooks' own words for values
(`ACTIVE_MODEL=openai`, `gpt-3.5`), arguments in the wrong order, and one usage line per mistake.

Real Postgres, the recording Slack server; assertions on what reached Slack and on the audit rows.
"""

from __future__ import annotations

import pytest

from integrations.flag_table import PostgresFlagTable
from tests import flag_fixtures
from tests.flag_fixtures import OWNER, STRANGER, rows
from tests.harness import BotUnderTest, blocks_text

supabase, settings, catalog = flag_fixtures.supabase, flag_fixtures.settings, flag_fixtures.catalog
catalog_env, owned_catalog_path = flag_fixtures.catalog_env, flag_fixtures.owned_catalog_path
flag_table, _group = flag_fixtures.flag_table, flag_fixtures.group

CHANNEL = "C0OPS0001"


async def _three_changes(bot: BotUnderTest) -> None:
    for text in ("preset ivy-v2 emergency", "set AI_RATE_LIMIT_PER_MIN 120", "off MIRA_MODE_COMMAND_ENABLED"):
        await bot.command("/flag", text, user=OWNER)  # changes 1, 2, 3
        await bot.settle()


async def test_history_shows_who_when_before_after_change_number_and_revert(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await _three_changes(bot)
    audit_before = await rows(database_url, "SELECT count(*) FROM audit_log")
    ack = await bot.command("/flag", "history ivy-v2", user=STRANGER)  # reading: anyone
    assert ack.json()["response_type"] == "ephemeral"
    await bot.settle()
    answer = bot.slack.calls_to("response_url")[-1]
    assert answer.text == "Flag history of Ivy v2: the last 2 changes"
    sections = [block["text"]["text"] for block in answer.blocks]
    assert sections[1].splitlines()[0].startswith(f"*Change 2* · set · <@{OWNER}> · ")
    assert sections[1].splitlines()[0].endswith(" UTC")
    assert "• `ivy-v2:AI_RATE_LIMIT_PER_MIN` 30 → 120" in sections[1]
    assert "Revert: `/flag revert 2`" in sections[1]
    assert sections[2].splitlines()[0].startswith(f"*Change 1* · preset emergency · <@{OWNER}>")
    assert "• `ivy-v2:IVY_MODAL_HEURISTICS` true (default) → false" in sections[2]
    assert "MIRA" not in blocks_text(answer.blocks)  # one service's history
    assert len(answer.blocks) <= 50 and all(len(text) <= 3000 for text in sections)
    assert await rows(database_url, "SELECT count(*) FROM audit_log") == audit_before  # read-only
    assert bot.slack.calls_to("chat.postMessage")[-1].text.startswith(f"<@{OWNER}> set mira-copilot:")


async def test_history_of_one_flag_with_a_limit_and_a_revert(
    bot: BotUnderTest, flag_table: PostgresFlagTable
) -> None:
    await _three_changes(bot)
    await bot.command("/flag", "revert 2", user=OWNER)  # 4
    await bot.settle()
    await bot.command("/flag", "history AI_RATE_LIMIT_PER_MIN 2", user=OWNER)
    await bot.settle()
    answer = bot.slack.calls_to("response_url")[-1]
    assert answer.text == "Flag history of `ivy-v2:AI_RATE_LIMIT_PER_MIN`: the last 2 changes"
    text = blocks_text(answer.blocks)
    assert "*Change 4* · revert" in text and "Reverts change 2." in text
    assert "*Change 2* · set" in text and "Reverted by change 4." in text
    assert "*Change 1*" not in text  # the limit


async def test_history_of_nothing_says_so(bot: BotUnderTest) -> None:
    await bot.command("/flag", "history", user=OWNER)
    await bot.settle()
    assert bot.slack.calls_to("response_url")[-1].text == "No flag changes of every service yet."


async def test_history_keeps_within_slacks_limits_for_many_changes(
    bot: BotUnderTest, flag_table: PostgresFlagTable
) -> None:
    for value in range(31, 56):  # 25 changes
        await bot.command("/flag", f"set AI_BURST_LIMIT {value % 100}", user=OWNER)
        await bot.settle()
    await bot.command("/flag", "history ivy-v2 500", user=OWNER)
    await bot.settle()
    answer = bot.slack.calls_to("response_url")[-1]
    assert answer.text == "Flag history of Ivy v2: the last 20 changes"
    assert len(answer.blocks) == 21


async def test_preset_with_a_service_lists_its_presets_and_what_each_sets(bot: BotUnderTest) -> None:
    ack = await bot.command("/flag", "preset ivy-v2", user=STRANGER)
    assert ack.json()["text"] == "Listing the presets of Ivy v2…"
    await bot.settle()
    text = blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    assert "*emergency* — Emergency Rollback (P95 &gt; 3s): disable modals, reduce rate limits" in text
    assert "Sets `IVY_MODAL_HEURISTICS` → false, `AI_RATE_LIMIT_PER_MIN` → 30, `AI_BURST_LIMIT` → 5" in text
    assert "`/flag preset ivy-v2 emergency`" in text and "*disable-v2*" in text
    assert "provider-failover" not in text


async def test_preset_alone_lists_every_services_presets(bot: BotUnderTest) -> None:
    await bot.command("/flag", "preset", user=STRANGER)
    await bot.settle()
    text = blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    assert "*provider-failover*" in text and "*emergency*" in text and "*disable-v2*" in text
    assert "`/flag preset mira-copilot provider-failover`" in text


@pytest.mark.parametrize(
    ("text", "message", "suggestion", "usage"),
    [
        (
            "set ACTIVE_MODEL openai",  # Ivy on-call runbook, Quick Fixes: `export ACTIVE_MODEL=openai`
            "`openai` is a value of `AI_MODEL_PROVIDER`, not of `ACTIVE_MODEL`.",
            "/flag set ivy-v2:AI_MODEL_PROVIDER openai",
            "`/flag set FLAG VALUE`",
        ),
        (
            "set ai-assistant:OPENAI_MODEL gpt-3.5",
            "expected one of gpt-4, gpt-4o-mini, gpt-3.5-turbo",
            "/flag set ai-assistant:OPENAI_MODEL gpt-3.5-turbo",
            "`/flag set FLAG VALUE`",
        ),
        (
            "set ACTIVE_MODEL gpt-4o",
            "expected one of gemini-2.0-flash, gpt-4o-mini",
            "/flag set ivy-v2:ACTIVE_MODEL gpt-4o-mini",
            "`/flag set FLAG VALUE`",
        ),
        (
            "IVY_MODAL_HEURISTICS off",
            "The subcommand comes first, then the flag.",
            "/flag off IVY_MODAL_HEURISTICS",
            "`/flag off FLAG`",
        ),
        (
            "AI_RATE_LIMIT_PER_MIN=30",  # the runbook's `export` line, pasted
            "The subcommand comes first, then the flag.",
            "/flag set AI_RATE_LIMIT_PER_MIN 30",
            "`/flag set FLAG VALUE`",
        ),
        (
            "preset emergency ivy-v2",
            "The service comes first, then the preset.",
            "/flag preset ivy-v2 emergency",
            "`/flag preset SERVICE NAME`",
        ),
        (
            "set AI_RATE_LIMIT_PER_MIN 0",
            "expected a whole number from 1 to 600",
            None,
            "`/flag set FLAG VALUE`",
        ),
        ("revert x", "takes the number of a change", None, "`/flag revert CHANGE`"),
        ("lsit", "`lsit` is not a /flag subcommand.", "list", "`/flag list [service]"),
    ],
)
async def test_mistakes_get_the_command_meant_and_the_one_usage_line_that_applies(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str, text, message, suggestion, usage
) -> None:
    ack = await bot.command("/flag", text, user=OWNER)
    reply = ack.json()["text"]
    assert ack.json()["response_type"] == "ephemeral"
    lines = reply.splitlines()
    assert message in lines[0]
    if suggestion:
        assert lines[1] == f"Did you mean `{suggestion}`?"
    assert lines[-1].startswith(f"Usage: {usage}")
    assert len(lines) == (3 if suggestion else 2)  # one usage line, not the block
    await bot.settle()
    assert await rows(database_url, "SELECT count(*) FROM flag_changes") == [(0,)]
    assert await rows(database_url, "SELECT * FROM feature_flags") == []


async def test_the_suggested_provider_switch_works_as_suggested(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    ack = await bot.command("/flag", "set ACTIVE_MODEL openai", user=OWNER)
    suggested = ack.json()["text"].splitlines()[1].removeprefix("Did you mean `/flag ").removesuffix("`?")
    await bot.command("/flag", suggested, user=OWNER)
    await bot.settle()
    await bot.click(CHANNEL, "", "flag_confirm", "1", user=OWNER)
    await bot.settle()
    assert await rows(database_url, "SELECT name, value FROM feature_flags") == [
        ("AI_MODEL_PROVIDER", "openai")
    ]
