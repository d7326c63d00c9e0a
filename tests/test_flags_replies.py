"""Issue 14, flags that cannot surprise: a no-op is recorded as nothing on both backends, every announcement names
the service, the verification hint fits the direction of the change, and a restart-only flag offers the restart.

Real Postgres (the Ivy and AI Assistant flag tables), the recording Supabase Management API (Mira) and the
recording Slack server; assertions on what reached them and on the audit rows.
"""

from __future__ import annotations

from integrations.flag_table import PostgresFlagTable
from stand_ins.recording_supabase import RecordingSupabaseServer
from tests import flag_fixtures
from tests.flag_fixtures import OWNER, rows
from tests.harness import BotUnderTest, blocks_text

supabase, settings, catalog = flag_fixtures.supabase, flag_fixtures.settings, flag_fixtures.catalog
catalog_env, owned_catalog_path = flag_fixtures.catalog_env, flag_fixtures.owned_catalog_path
flag_table, _group = flag_fixtures.flag_table, flag_fixtures.group

CHANNEL = "C0OPS0001"


async def _counts(database_url: str) -> tuple[list[tuple], list[tuple]]:
    return (
        await rows(database_url, "SELECT count(*) FROM flag_changes"),
        await rows(database_url, "SELECT count(*) FROM audit_log"),
    )


async def test_a_no_op_on_supabase_secrets_is_answered_and_recorded_as_nothing(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, database_url: str
) -> None:
    await bot.command("/flag", "off MIRA_MODE_COMMAND_ENABLED", user=OWNER)  # change 1: true → false
    await bot.settle()
    recorded = await _counts(database_url)

    for text, answer in [
        ("off MIRA_MODE_COMMAND_ENABLED", "`MIRA_MODE_COMMAND_ENABLED` is already false"),  # false → false
        (
            "on MIRA_AUTO_EXECUTE_ENABLED",
            "`MIRA_AUTO_EXECUTE_ENABLED` is already true (default)",
        ),  # the default
        ("unset MIRA_ANALYTICS_AGENT_ENABLED", "`MIRA_ANALYTICS_AGENT_ENABLED` is already false (default)"),
    ]:
        await bot.command("/flag", text, user=OWNER)
        await bot.settle()
        assert bot.slack.calls_to("response_url")[-1].text == f"Nothing to change on Mira Co-Pilot: {answer}."

    assert [c.method for c in supabase.calls] == ["GET", "POST", "GET", "GET", "GET"]  # reads only, no write
    assert len(bot.slack.calls_to("chat.postMessage")) == 1  # change 1's announcement only
    assert await _counts(database_url) == recorded  # no change number, no audit row


async def test_a_no_op_on_a_postgres_flag_table_is_answered_and_recorded_as_nothing(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await bot.command("/flag", "preset ivy-v2 emergency", user=OWNER)  # change 1
    await bot.settle()
    table_before = await rows(database_url, "SELECT name, value, updated_at FROM feature_flags ORDER BY name")
    recorded = await _counts(database_url)

    await bot.command("/flag", "set AI_RATE_LIMIT_PER_MIN 30", user=OWNER)  # the current value
    await bot.settle()
    assert bot.slack.calls_to("response_url")[-1].text == (
        "Nothing to change on Ivy v2: `AI_RATE_LIMIT_PER_MIN` is already 30."
    )
    await bot.command("/flag", "preset ivy-v2 emergency", user=OWNER)  # a preset that changes nothing
    await bot.settle()
    assert bot.slack.calls_to("response_url")[-1].text == (
        "Nothing to change on Ivy v2: `IVY_MODAL_HEURISTICS` is already false, "
        "`AI_RATE_LIMIT_PER_MIN` is already 30, `AI_BURST_LIMIT` is already 5."
    )
    assert await rows(database_url, "SELECT name, value, updated_at FROM feature_flags ORDER BY name") == (
        table_before
    )  # no write at all: the row's updated_at did not move
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert await _counts(database_url) == recorded


async def test_a_preset_records_only_the_flags_it_changes(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await bot.command("/flag", "set AI_BURST_LIMIT 5", user=OWNER)  # change 1: what the preset would set
    await bot.settle()
    await bot.command("/flag", "preset ivy-v2 emergency", user=OWNER)  # change 2
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage")[-1].text == (
        f"<@{OWNER}> applied preset emergency on Ivy v2: ivy-v2:IVY_MODAL_HEURISTICS true → false, "
        "ivy-v2:AI_RATE_LIMIT_PER_MIN 60 → 30 (change 2, revert: `/flag revert 2`)"
    )
    assert await rows(
        database_url,
        "SELECT target FROM audit_log WHERE action = 'flag.set' AND detail->>'change' = '2' ORDER BY id",
    ) == [("IVY_MODAL_HEURISTICS",), ("AI_RATE_LIMIT_PER_MIN",)]


async def test_the_announcement_names_the_service_and_the_reply_offers_the_restart(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    """AI Assistant SOP-002: a configuration change needs a restart to apply. OPENAI_MODEL is a flag of two
    services, so the announcement says which."""
    await bot.command("/flag", "set ai-assistant:OPENAI_MODEL gpt-3.5-turbo", user=OWNER)
    await bot.settle()
    confirmation = blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    assert "AI Assistant reads this at start: it needs a restart to apply afterwards." in confirmation
    await bot.click(CHANNEL, "", "flag_confirm", "1", user=OWNER)
    await bot.settle()

    [line] = bot.slack.calls_to("chat.postMessage")
    assert line.text == (
        f"<@{OWNER}> set ai-assistant:OPENAI_MODEL gpt-4 → gpt-3.5-turbo (change 1, revert: `/flag revert 1`) "
        "— needs a restart to apply: `/restart ai-assistant`"
    )
    result = bot.slack.calls_to("response_url")[-1]
    assert "AI Assistant needs a restart to apply: `/restart ai-assistant`" in blocks_text(result.blocks)
    [button] = result.blocks[-1]["elements"]
    assert button == {
        "type": "button",
        "action_id": "next_step.run",
        "text": {"type": "plain_text", "text": "Restart ai-assistant"},
        "value": "/restart ai-assistant",
    }
    assert "After the restart: curl /health and /info" in blocks_text(result.blocks)


async def test_a_flag_read_on_every_request_offers_no_restart(
    bot: BotUnderTest, flag_table: PostgresFlagTable
) -> None:
    await bot.command("/flag", "set AI_BURST_LIMIT 7", user=OWNER)
    await bot.settle()
    result = bot.slack.calls_to("response_url")[-1]
    assert "restart" not in blocks_text(result.blocks)
    assert all(block["type"] != "actions" for block in result.blocks)
    assert "restart" not in bot.slack.calls_to("chat.postMessage")[-1].text


async def test_the_verification_hint_fits_the_direction_of_the_change(
    bot: BotUnderTest, flag_table: PostgresFlagTable
) -> None:
    steps = [
        (
            "off IVY_MODAL_HEURISTICS",
            "`IVY_MODAL_HEURISTICS`: All queries now return conversational responses",
        ),
        (
            "on IVY_MODAL_HEURISTICS",
            "`IVY_MODAL_HEURISTICS`: Leads with a leadScore or aiInsights open modals again",
        ),
        ("set AI_RATE_LIMIT_PER_MIN 30", "`AI_RATE_LIMIT_PER_MIN`: 429 responses stay under 1% of requests"),
        ("set AI_RATE_LIMIT_PER_MIN 120", "`AI_RATE_LIMIT_PER_MIN`: Rate-limited users get through"),
        ("unset AI_RATE_LIMIT_PER_MIN", "`AI_RATE_LIMIT_PER_MIN`: 429 responses stay under 1%"),  # 120 → 60
    ]
    for text, hint in steps:
        await bot.command("/flag", text, user=OWNER)
        await bot.settle()
        shown = blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
        assert f"Verify: {hint}" in shown, text
    opposite = blocks_text(bot.slack.calls_to("response_url")[0].blocks)
    assert "open modals again" not in opposite


async def test_get_shows_each_direction_s_verification(
    bot: BotUnderTest, flag_table: PostgresFlagTable
) -> None:
    await bot.command("/flag", "get IVY_MODAL_HEURISTICS", user=OWNER)
    await bot.settle()
    shown = blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    assert "Verify after a change — turned off: All queries now return conversational responses" in shown
    assert "turned on: Leads with a leadScore or aiInsights open modals again" in shown
