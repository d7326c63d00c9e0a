"""/flag end to end: owners, typed values, confirmation, presets and revert, against real Postgres, the recording
Supabase Management API and the recording Slack server."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from bot.catalog import load_catalog
from bot.signing import sign_slack_request
from bot.storage import redis_client
from integrations.flag_table import PostgresFlagTable
from stand_ins.recording_supabase import RecordingSupabaseServer
from tests import flag_fixtures
from tests.flag_fixtures import ON_CALL_ENGINEER, OWNER, PROJECT, STRANGER, SUPABASE_TOKEN, rows, secrets_path
from tests.harness import SIGNING_SECRET, BotUnderTest, blocks_text, closed_port

# The shared /flag fixtures, bound here so pytest finds them (assigned, not imported: a parameter of the same name
# is the fixture's value, not a redefinition).
supabase, settings, catalog = flag_fixtures.supabase, flag_fixtures.settings, flag_fixtures.catalog
catalog_env, owned_catalog_path = flag_fixtures.catalog_env, flag_fixtures.owned_catalog_path
flag_table, _group = flag_fixtures.flag_table, flag_fixtures.group


async def test_owner_turns_a_mira_flag_off_with_exactly_the_documented_request(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, database_url: str
) -> None:
    ack = await bot.command("/flag", "off MIRA_MODE_COMMAND_ENABLED", user=OWNER)
    assert ack.json()["text"] == "Checking `MIRA_MODE_COMMAND_ENABLED` on Mira Co-Pilot…"
    await bot.settle()

    [post] = supabase.calls_to("POST")
    assert post.path == secrets_path()
    assert post.body == [{"name": "MIRA_MODE_COMMAND_ENABLED", "value": "false"}]
    assert post.headers["authorization"] == f"Bearer {SUPABASE_TOKEN}"
    assert [c.method for c in supabase.calls] == ["GET", "POST"]  # read the current value, then set

    [answer] = bot.slack.calls_to("response_url")
    assert "Change 1 applied" in blocks_text(answer.blocks)
    assert "Verify: `MIRA_MODE_COMMAND_ENABLED`: Run /health mira-copilot" in blocks_text(answer.blocks)
    [line] = bot.slack.calls_to("chat.postMessage")
    assert line.channel == "#mira-copilot-alerts"
    assert line.text == (
        f"<@{OWNER}> set mira-copilot:MIRA_MODE_COMMAND_ENABLED true → false (change 1, revert: `/flag revert 1`)"
    )
    audit = await rows(
        database_url,
        "SELECT actor, action, target, before, after, outcome FROM audit_log WHERE action = 'flag.set'",
    )
    assert audit == [
        (
            OWNER,
            "flag.set",
            "MIRA_MODE_COMMAND_ENABLED",
            {"present": False, "value": None, "known": True},
            "false",
            "ok",
        )
    ]
    assert await rows(database_url, "SELECT flag, value, set_by FROM flag_values") == [
        ("MIRA_MODE_COMMAND_ENABLED", "false", OWNER)
    ]


@pytest.mark.parametrize(
    ("user", "command", "allowed", "reply"),
    [
        (OWNER, "off MIRA_MODE_COMMAND_ENABLED", True, "Change 1 applied"),
        (ON_CALL_ENGINEER, "off MIRA_MODE_COMMAND_ENABLED", True, "Change 1 applied"),  # via the user group
        (
            STRANGER,
            "off MIRA_MODE_COMMAND_ENABLED",
            False,
            "Only the owners of Mira Co-Pilot may change the flags",
        ),
        (
            ON_CALL_ENGINEER,
            "preset ivy-v2 emergency",
            False,
            "Only the owners of Ivy v2",
        ),  # group owns Mira only
        (STRANGER, "revert 1", False, "There is no change 1"),
    ],
)
async def test_permission_table(
    bot: BotUnderTest,
    supabase: RecordingSupabaseServer,
    flag_table: PostgresFlagTable,
    database_url: str,
    user: str,
    command: str,
    allowed: bool,
    reply: str,
) -> None:
    await bot.command("/flag", command, user=user)
    await bot.settle()
    [answer] = bot.slack.calls_to("response_url")
    assert reply in (answer.text or "") + blocks_text(answer.blocks)
    writes = [c for c in supabase.calls if c.method != "GET"]
    assert bool(writes) == (allowed and "MIRA" in command)
    if not allowed:
        assert supabase.calls == []
        assert await rows(database_url, "SELECT * FROM feature_flags") == []
    if "Only the owners" in reply:
        assert await rows(database_url, "SELECT actor, outcome FROM audit_log") == [(user, "refused")]


async def test_no_owners_configured_refuses_and_says_where_to_configure(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, database_url: str
) -> None:
    bot.runtime.bot.catalog = load_catalog(env={})  # the bundled catalog: no owners anywhere
    await bot.command("/flag", "off MIRA_MODE_COMMAND_ENABLED", user=OWNER)
    await bot.settle()
    [answer] = bot.slack.calls_to("response_url")
    assert "Nobody may change the flags of Mira Co-Pilot yet: no owner is configured" in answer.text
    assert "`services[mira-copilot].owners`" in answer.text and "BOT_ADMINS" in answer.text
    assert supabase.calls == []
    assert await rows(database_url, "SELECT outcome FROM audit_log") == [("refused",)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "set AI_RATE_LIMIT_PER_MIN 0",
            "`0` is not a valid value for `AI_RATE_LIMIT_PER_MIN`: expected a whole number from 1 to 600",
        ),
        ("set ACTIVE_MODEL nonsense", "expected one of gemini-2.0-flash, gpt-4o-mini"),
        (
            "set OPENAI_MODEL gpt-4",
            "`OPENAI_MODEL` is a flag of several services: write `mira-copilot:OPENAI_MODEL`",
        ),
        ("set mira-copilot:OPENAI_BASE_URL not-a-url", "expected an http(s) URL"),
        ("set IVY_MODAL_HEURISTICS maybe", "expected true or false"),
        ("on AI_BURST_LIMIT", "`/flag on` is for true/false flags"),
        ("lsit", "Did you mean `list`?"),
        ("get IVY_MODAL_HEURISTIC", "Did you mean `IVY_MODAL_HEURISTICS`?"),
        ("preset ivy-v2 emergancy", "Did you mean `emergency`?"),
    ],
)
async def test_bad_values_are_refused_with_what_is_allowed_and_nothing_changes(
    bot: BotUnderTest,
    supabase: RecordingSupabaseServer,
    flag_table: PostgresFlagTable,
    database_url: str,
    text: str,
    expected: str,
) -> None:
    ack = await bot.command("/flag", text, user=OWNER)
    assert ack.json()["response_type"] == "ephemeral"
    assert expected in ack.json()["text"]
    assert "Usage: `/flag" in ack.json()["text"]
    await bot.settle()
    assert supabase.calls == [] and bot.slack.calls_to("chat.postMessage") == []
    assert await rows(database_url, "SELECT * FROM feature_flags") == []
    assert await rows(database_url, "SELECT * FROM audit_log") == []


async def test_preset_applied_and_reverted_leaves_every_flag_as_it_was(
    bot: BotUnderTest, flag_table: PostgresFlagTable, database_url: str
) -> None:
    await flag_table.set({"AI_RATE_LIMIT_PER_MIN": "60"}, actor="someone-before")
    before = await rows(database_url, "SELECT name, value FROM feature_flags ORDER BY name")

    await bot.command("/flag", "preset ivy-v2 emergency", user=OWNER)
    await bot.settle()
    assert await rows(database_url, "SELECT name, value FROM feature_flags ORDER BY name") == [
        ("AI_BURST_LIMIT", "5"),
        ("AI_RATE_LIMIT_PER_MIN", "30"),
        ("IVY_MODAL_HEURISTICS", "false"),
    ]
    [line] = bot.slack.calls_to("chat.postMessage")
    assert line.text == (
        f"<@{OWNER}> applied preset emergency on Ivy v2: ivy-v2:IVY_MODAL_HEURISTICS true → false, "
        "ivy-v2:AI_RATE_LIMIT_PER_MIN 60 → 30, ivy-v2:AI_BURST_LIMIT 10 → 5 (change 1, revert: `/flag revert 1`)"
    )

    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()
    assert await rows(database_url, "SELECT name, value FROM feature_flags ORDER BY name") == before
    assert bot.slack.calls_to("chat.postMessage")[-1].text.startswith(
        f"<@{OWNER}> reverted change 1 on Ivy v2:"
    )

    audit = await rows(
        database_url,
        "SELECT action, target, after, outcome FROM audit_log "
        "WHERE action IN ('flag.set', 'flag.unset') ORDER BY id",
    )
    assert audit == [
        ("flag.set", "IVY_MODAL_HEURISTICS", "false", "ok"),
        ("flag.set", "AI_RATE_LIMIT_PER_MIN", "30", "ok"),
        ("flag.set", "AI_BURST_LIMIT", "5", "ok"),
        (
            "flag.unset",
            "IVY_MODAL_HEURISTICS",
            None,
            "ok",
        ),  # the revert: flags that were unset go back to unset,
        ("flag.unset", "AI_BURST_LIMIT", None, "ok"),  # one request per operation
        ("flag.set", "AI_RATE_LIMIT_PER_MIN", "60", "ok"),
    ]
    await bot.command("/flag", "revert 1", user=OWNER)
    await bot.settle()
    assert "was already reverted by change 2" in bot.slack.calls_to("response_url")[-1].text


async def test_risky_flag_waits_for_confirm_and_a_double_click_applies_once(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, database_url: str
) -> None:
    await bot.command("/flag", "on MIRA_COPILOT_ENABLED", user=OWNER)
    await bot.settle()
    [confirmation] = bot.slack.calls_to("response_url")
    text = blocks_text(confirmation.blocks)
    assert "Risky change 1" in text and "MIRA_COPILOT_ENABLED false → true" in text
    assert [c.method for c in supabase.calls] == ["GET"]  # nothing changed yet
    buttons = confirmation.blocks[-1]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("flag_confirm", "1"), ("flag_cancel", "1")]

    channel = "C0OPS0001"
    first, second = await asyncio.gather(
        bot.click(channel, "", "flag_confirm", "1", user=OWNER),
        bot.click(channel, "", "flag_confirm", "1", user=OWNER),
    )
    assert first.status_code == second.status_code == 200
    await bot.settle()
    posts = supabase.calls_to("POST")
    assert [p.body for p in posts] == [[{"name": "MIRA_COPILOT_ENABLED", "value": "true"}]]
    replies = [c.text for c in bot.slack.calls_to("response_url")[1:]]
    assert any("Change 1 applied" in r for r in replies)
    assert any(
        r == f"Change 1 was already applying by <@{OWNER}>." or "was already applied" in r for r in replies
    )
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert await rows(
        database_url, "SELECT action, outcome FROM audit_log WHERE action = 'flag.confirm'"
    ) == [("flag.confirm", "ok")]


async def test_cancel_changes_nothing_and_confirm_after_cancel_is_refused(
    bot: BotUnderTest, supabase: RecordingSupabaseServer
) -> None:
    await bot.command("/flag", "set mira-copilot:OPENAI_BASE_URL https://api.anthropic.com/v1", user=OWNER)
    await bot.settle()
    await bot.click("C0OPS0001", "", "flag_cancel", "1", user=OWNER)
    await bot.settle()
    await bot.click("C0OPS0001", "", "flag_confirm", "1", user=OWNER)
    await bot.settle()
    assert supabase.calls_to("POST") == []
    texts = [c.text for c in bot.slack.calls_to("response_url")]
    assert "Change 1 cancelled: nothing changed." in texts
    assert f"Change 1 was already cancelled by <@{OWNER}>." in texts


async def test_stranger_cannot_confirm_an_owners_risky_change(
    bot: BotUnderTest, supabase: RecordingSupabaseServer
) -> None:
    await bot.command("/flag", "on MIRA_COPILOT_ENABLED", user=OWNER)
    await bot.settle()
    await bot.click("C0OPS0001", "", "flag_confirm", "1", user=STRANGER)
    await bot.settle()
    assert supabase.calls_to("POST") == []
    assert "Only the owners of Mira Co-Pilot" in bot.slack.calls_to("response_url")[-1].text


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "Supabase answered 401"), (429, "Supabase rate limit reached"), (503, "Supabase answered 503")],
)
async def test_backend_failure_is_told_audited_and_changes_nothing(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, database_url: str, status: int, words: str
) -> None:
    supabase.fail_next("POST", status=status, retry_after=30 if status == 429 else None)
    await bot.command("/flag", "off MIRA_MODE_COMMAND_ENABLED", user=OWNER)
    await bot.settle()
    [answer] = bot.slack.calls_to("response_url")
    assert "Change 1 failed" in blocks_text(answer.blocks) and words in blocks_text(answer.blocks)
    assert "Nothing changed." in blocks_text(answer.blocks)
    assert bot.slack.calls_to("chat.postMessage") == []
    assert await rows(database_url, "SELECT * FROM flag_values") == []
    [row] = await rows(database_url, "SELECT outcome, detail FROM audit_log WHERE action = 'flag.set'")
    assert row[0] == "failed" and words in row[1]["backend"]["error"]
    assert await rows(database_url, "SELECT status FROM flag_changes") == [("failed",)]


async def test_flag_changed_outside_the_bot_is_detected_from_the_digest(
    bot: BotUnderTest, supabase: RecordingSupabaseServer
) -> None:
    await bot.command("/flag", "off MIRA_AUTO_EXECUTE_ENABLED", user=OWNER)
    await bot.settle()
    await bot.command("/flag", "get MIRA_AUTO_EXECUTE_ENABLED", user=OWNER)
    await bot.settle()
    assert "MIRA_AUTO_EXECUTE_ENABLED on Mira Co-Pilot: false" in bot.slack.calls_to("response_url")[-1].text

    supabase.set_outside(PROJECT, "MIRA_AUTO_EXECUTE_ENABLED", "true")
    await bot.command("/flag", "get MIRA_AUTO_EXECUTE_ENABLED", user=OWNER)
    await bot.settle()
    answer = bot.slack.calls_to("response_url")[-1]
    assert "unknown (changed outside the bot)" in answer.text
    assert "someone changed it outside the bot" in blocks_text(answer.blocks)


async def test_list_shows_values_defaults_backends_and_last_change(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, flag_table: PostgresFlagTable
) -> None:
    await bot.command("/flag", "set AI_BURST_LIMIT 7", user=OWNER)
    await bot.settle()
    await bot.command("/flag", "list ivy", user=OWNER)
    await bot.settle()
    listing = blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    assert "`AI_BURST_LIMIT` *7* · default 10 · flag table" in listing
    assert f"last set by <@{OWNER}>" in listing and "(change 1)" in listing
    assert "`IVY_MODAL_HEURISTICS` *true (default)* · default true · flag table" in listing
    assert "`ACTIVE_MODEL` *gemini-2.0-flash (default)*" in listing and ":warning: risky" in listing


async def test_list_of_every_service_shows_unconfigured_stores(
    bot: BotUnderTest, supabase: RecordingSupabaseServer
) -> None:
    await bot.command("/flag", "list", user=STRANGER)  # reading needs no ownership
    await bot.settle()
    listing = blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    assert "`MIRA_COPILOT_ENABLED` *false (default)*" in listing
    assert "FA AI System's flag table is not configured: set FA_DATABASE_URL" in listing


async def test_gradual_rollout_stage_sets_the_catalogs_flags(
    bot: BotUnderTest, supabase: RecordingSupabaseServer
) -> None:
    """The stage's flags that already hold its value (MIRA_COPILOT_ENABLED false, MIRA_ROLLOUT_PERCENT 0 by default)
    are left out, so the internal stage only writes the allowlist; every stage of the risky flag's rollout is
    confirmed."""
    await bot.command("/flag", "rollout MIRA_COPILOT_ENABLED internal", user=OWNER)
    await bot.settle()
    assert "Risky change 1" in blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    await bot.click("C0OPS0001", "", "flag_confirm", "1", user=OWNER)
    await bot.settle()
    [post] = supabase.calls_to("POST")
    assert post.body == [{"name": "MIRA_ENABLED_USERS", "value": "ana@example.com,bo@example.com"}]
    assert bot.slack.calls_to("chat.postMessage")[-1].text == (
        f'<@{OWNER}> moved the Mira Co-Pilot rollout to internal: mira-copilot:MIRA_ENABLED_USERS "" → '
        "ana@example.com,bo@example.com (change 1, revert: `/flag revert 1`)"
    )
    await bot.command("/flag", "rollout MIRA_COPILOT_ENABLED 100%", user=OWNER)
    await bot.settle()
    assert "Risky change 2" in blocks_text(bot.slack.calls_to("response_url")[-1].blocks)
    await bot.click("C0OPS0001", "", "flag_confirm", "2", user=OWNER)
    await bot.settle()
    assert sorted(supabase.calls_to("POST")[-1].body, key=lambda s: s["name"]) == [
        {"name": "MIRA_COPILOT_ENABLED", "value": "true"},
        {"name": "MIRA_ROLLOUT_PERCENT", "value": "100"},
    ]


async def test_confirm_after_fifteen_minutes_is_refused(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, database_url: str
) -> None:
    await bot.command("/flag", "on MIRA_COPILOT_ENABLED", user=OWNER)
    await bot.settle()
    later = bot.runtime.bot.clock() + timedelta(minutes=16)
    bot.runtime.bot.clock = lambda: later
    await bot.click("C0OPS0001", "", "flag_confirm", "1", user=OWNER)
    await bot.settle()
    assert supabase.calls_to("POST") == []
    assert "Change 1 expired: risky changes must be confirmed within 15 minutes" in (
        bot.slack.calls_to("response_url")[-1].text
    )


async def _replayed(bot: BotUnderTest, body: bytes, *, retry: bool = False) -> list[int]:
    """The byte-identical signed request three times (with `retry`: then twice more as Slack retries it,
    re-signed with another timestamp and carrying X-Slack-Retry-Num); the statuses."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **sign_slack_request(SIGNING_SECRET, body),
    }
    statuses = []
    for _ in range(3):
        statuses.append((await bot.client.post("/slack/events", content=body, headers=headers)).status_code)
    if retry:
        for attempt in (1, 2):
            resigned = sign_slack_request(SIGNING_SECRET, body, int(time.time()) - attempt)
            retried = {
                **headers,
                **resigned,
                "X-Slack-Retry-Num": str(attempt),
                "X-Slack-Retry-Reason": "timeout",
            }
            statuses.append(
                (await bot.client.post("/slack/events", content=body, headers=retried)).status_code
            )
    await bot.settle()
    return statuses


async def test_a_replayed_flag_off_writes_once_and_announces_once(
    bot: BotUnderTest, supabase: RecordingSupabaseServer
) -> None:
    """Issue 12: a valid signed /flag off sent again within the 5-minute window ran again (three Supabase writes,
    three announcements). A replay, and a Slack retry of the same body, are answered 200 and do nothing."""
    body = bot.command_body("/flag", "off MIRA_MODE_COMMAND_ENABLED", user=OWNER)
    assert await _replayed(bot, body, retry=True) == [200] * 5
    assert len(supabase.calls_to("POST")) == 1
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert len(bot.slack.calls_to("response_url")) == 1


async def test_replays_arriving_together_with_the_original_run_it_once(
    bot: BotUnderTest, supabase: RecordingSupabaseServer
) -> None:
    """Requests arriving together share one Redis command for their replay claims (bot/slack_replays.py,
    ReplayClaims): the same signed /flag off five times at once, with two Slack retries of it, still runs once."""
    body = bot.command_body("/flag", "off MIRA_MODE_COMMAND_ENABLED", user=OWNER)
    signed = {"Content-Type": "application/x-www-form-urlencoded", **sign_slack_request(SIGNING_SECRET, body)}
    retries = [
        {
            **signed,
            **sign_slack_request(SIGNING_SECRET, body, int(time.time()) - attempt),
            "X-Slack-Retry-Num": str(attempt),
        }
        for attempt in (1, 2)
    ]
    answers = await asyncio.gather(
        *(
            bot.client.post("/slack/events", content=body, headers=headers)
            for headers in [signed] * 5 + retries
        )
    )
    await bot.settle()
    assert [answer.status_code for answer in answers] == [200] * 7
    assert len(supabase.calls_to("POST")) == 1
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert len(bot.slack.calls_to("response_url")) == 1


async def test_a_replayed_flag_off_is_refused_from_postgres_while_redis_is_down(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, database_url: str
) -> None:
    """Redis down (nothing listens on its port): the replay cache falls back to Postgres and still dedupes."""
    storage = bot.runtime.bot.storage
    working = storage.redis
    storage.redis = redis_client(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        body = bot.command_body("/flag", "off MIRA_MODE_COMMAND_ENABLED", user=OWNER)
        assert await _replayed(bot, body, retry=True) == [200] * 5
    finally:
        await storage.redis.aclose()
        storage.redis = working
    assert len(supabase.calls_to("POST")) == 1
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert len(bot.slack.calls_to("response_url")) == 1  # ran once: one answer to the user
    keys = [key for (key,) in await rows(database_url, "SELECT key FROM slack_replays")]
    assert sorted(key.split(":")[0] for key in keys) == ["body", "sig", "sig", "sig"]  # 3 signatures, 1 body
