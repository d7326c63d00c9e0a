"""Who may do what: one row per (user, command, expected reply), in the style of Errbot's access-control tests,
plus the fail-closed sweep — with no owner and no BOT_ADMINS configured, every dangerous command and button of the
registry is refused, saying where to configure owners.

Extending it: a new dangerous command (e.g. /rollback, its confirmation and the two-person rule, the handoff
ticks) adds rows to `TABLE` and its invocations to `DANGEROUS_INVOCATIONS` / `DANGEROUS_ACTIONS`.
`test_every_dangerous_command_and_button_is_in_the_sweep` fails until it does, so nothing dangerous ships
without a refusal test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml
from pydantic import SecretStr

from bot.catalog import BUNDLED_CATALOG, Catalog, load_catalog
from bot.settings import Settings
from handlers.capabilities import build_registry
from handlers.flags import changes as flag_changes
from handlers.rollback import store as rollbacks
from integrations.flag_table import PostgresFlagTable
from stand_ins.recording_slack import RecordingSlackServer
from stand_ins.recording_supabase import RecordingSupabaseServer
from tests.harness import BotUnderTest, blocks_text

OWNER = "U0OWNER01"  # catalog owner of every service except the FA AI System
ADMIN = "U0ADMIN01"  # BOT_ADMINS: owns every service
ONCALL_GROUP = "S0ONCALL1"  # a user group owning Mira Co-Pilot only
MEMBER = "U0MEMBER1"  # in that group
STRANGER = "U0STRANGE"
PROJECT = "abcdefghijklmnopqrst"
SUPABASE_TOKEN = "sbp_permission_table_token"

REFUSED = ":lock:"


@dataclass(frozen=True)
class Row:
    user: str
    command: str
    text: str
    reply: str  # a fragment of what the user is told
    allowed: bool

    def __str__(self) -> str:
        return f"{self.user} {self.command} {self.text}"


TABLE = [
    # Flags (Mira: Supabase secrets; owners OWNER and the on-call group)
    Row(OWNER, "/flag", "off MIRA_MODE_COMMAND_ENABLED", "applied", True),
    Row(ADMIN, "/flag", "on MIRA_MODE_COMMAND_ENABLED", "applied", True),
    Row(MEMBER, "/flag", "off MIRA_MODE_INSIGHT_ENABLED", "", True),
    Row(
        STRANGER,
        "/flag",
        "off MIRA_MODE_COMMAND_ENABLED",
        "Only the owners of Mira Co-Pilot may change",
        False,
    ),
    Row(STRANGER, "/flag", "unset MIRA_AUTO_EXECUTE_ENABLED", "Only the owners of Mira Co-Pilot", False),
    # Risky flags: the request is owners-only too (the Confirm rows are below)
    Row(OWNER, "/flag", "on MIRA_COPILOT_ENABLED", "Risky change", True),
    Row(STRANGER, "/flag", "on MIRA_COPILOT_ENABLED", "Only the owners of Mira Co-Pilot", False),
    Row(MEMBER, "/flag", "rollout MIRA_COPILOT_ENABLED 10%", "Risky change", True),
    Row(STRANGER, "/flag", "rollout MIRA_COPILOT_ENABLED 10%", "Only the owners of Mira Co-Pilot", False),
    # Ivy v2 (Postgres flag table; owner OWNER, the group does not own it)
    Row(OWNER, "/flag", "set AI_BURST_LIMIT 5", "applied", True),
    Row(MEMBER, "/flag", "set AI_BURST_LIMIT 6", "Only the owners of Ivy v2", False),
    Row(STRANGER, "/flag", "set AI_BURST_LIMIT 7", "Only the owners of Ivy v2", False),
    # Presets
    Row(OWNER, "/flag", "preset ivy-v2 emergency", "applied", True),
    Row(ADMIN, "/flag", "preset ivy-v2 disable-v2", "applied", True),
    Row(MEMBER, "/flag", "preset ivy-v2 emergency", "Only the owners of Ivy v2", False),
    Row(STRANGER, "/flag", "preset ivy-v2 disable-v2", "Only the owners of Ivy v2", False),
    # Revert: an owners-only change too
    Row(STRANGER, "/flag", "revert 1", "Only the owners of Mira Co-Pilot", False),
    # FA AI System: no catalog owner — only BOT_ADMINS (its flag store is not configured here)
    Row(
        OWNER,
        "/flag",
        "on ENABLE_HAIKU_ROUTING",
        f"Only the owners of FA AI System may change the flags of FA AI System: <@{ADMIN}>",
        False,
    ),
    Row(ADMIN, "/flag", "on ENABLE_HAIKU_ROUTING", "not configured", True),
    # Rollback requests: owners (and BOT_ADMINS, and the on-call group for Mira); FA only BOT_ADMINS
    Row(OWNER, "/rollback", "ivy-v2 immediate p95 above 3 s", "Rollback #1 of Ivy v2", True),
    Row(MEMBER, "/rollback", "mira", "Rollback #2 of Mira Co-Pilot", True),
    Row(MEMBER, "/rollback", "ivy-v2 full", "Only the owners of Ivy v2 may request a rollback", False),
    Row(STRANGER, "/rollback", "ivy-v2 full", "Only the owners of Ivy v2 may request a rollback", False),
    Row(OWNER, "/rollback", "fa", "Only the owners of FA AI System may request a rollback", False),
    Row(ADMIN, "/rollback", "fa", "Rollback #3 of FA AI System", True),
    Row(STRANGER, "/rollback", "plans ivy-v2", "immediate", True),
    Row(STRANGER, "/rollback", "status ivy-v2", "Rollback #1", True),
    # Reading is for everyone
    Row(STRANGER, "/flag", "get AI_BURST_LIMIT", "AI_BURST_LIMIT", True),
    Row(STRANGER, "/flag", "list ivy-v2", "AI_BURST_LIMIT", True),
    Row(STRANGER, "/health", "mira-copilot", "", True),
]


@pytest.fixture
async def supabase() -> AsyncIterator[RecordingSupabaseServer]:
    async with RecordingSupabaseServer(token=SUPABASE_TOKEN) as server:
        yield server


@pytest.fixture
def catalog_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Ivy configured enough for its plans' preflight (nothing here calls its hook or probes)."""
    monkeypatch.setenv("IVY_HOOK_SECRET", "ivy-hook-secret")
    return {
        "IVY_DATABASE_URL": database_url,
        "IVY_BASE_URL": "http://127.0.0.1:9/ivy",
        "IVY_RESTART_HOOK_URL": "http://127.0.0.1:9/hooks/ivy-restart",
        "MIRA_INTERNAL_USERS": "ana@example.com",
    }


def owned_catalog(tmp_path: Path, env: dict[str, str]) -> Catalog:
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for service in data["services"]:
        if service["name"] != "fa-ai-system":
            groups = [ONCALL_GROUP] if service["name"] == "mira-copilot" else []
            service["owners"] = {"users": [OWNER], "groups": groups}
    path = tmp_path / "owned-catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_catalog(path, env=env)


@pytest.fixture
def catalog(tmp_path: Path, catalog_env: dict[str, str]) -> Catalog:
    return owned_catalog(tmp_path, catalog_env)


@pytest.fixture
def settings(settings: Settings, supabase: RecordingSupabaseServer) -> Settings:
    return settings.model_copy(
        update={
            "supabase_api_url": supabase.base_url,
            "supabase_access_token": SecretStr(SUPABASE_TOKEN),
            "supabase_project_ref": PROJECT,
            "bot_admins": [ADMIN],
        }
    )


@pytest.fixture(autouse=True)
async def _world(slack: RecordingSlackServer, database_url: str) -> None:
    slack.add_usergroup(ONCALL_GROUP, [MEMBER])
    await PostgresFlagTable(database_url, "feature_flags").ensure_table()


async def answer_to(bot: BotUnderTest, command: str, text: str, user: str) -> str:
    before = len(bot.slack.calls_to("response_url"))
    await bot.command(command, text, user=user)
    await bot.settle()
    told = bot.slack.calls_to("response_url")[before:] + bot.slack.calls_to("chat.postMessage")
    return "\n".join((c.text or "") + "\n" + blocks_text(c.blocks) for c in told)


async def test_permission_table(bot: BotUnderTest) -> None:
    """Every row in one bot, in order (a revert row refers to the first change): each user is told what the
    table says, and only the allowed rows get past the owners check."""
    for row in TABLE:
        told = await answer_to(bot, row.command, row.text, row.user)
        assert row.reply in told, f"{row}: told {told!r}"
        assert (REFUSED in told) == (not row.allowed), f"{row}: told {told!r}"


async def test_risky_change_confirm_is_owners_only(bot: BotUnderTest) -> None:
    await answer_to(bot, "/flag", "on MIRA_COPILOT_ENABLED", OWNER)  # change 1, pending
    for user, allowed in ((STRANGER, False), (MEMBER, True)):
        before = len(bot.slack.calls_to("response_url"))
        await bot.click("C0OPS0001", "", "flag_confirm", "1", user=user)
        await bot.settle()
        told = " ".join(
            (c.text or "") + blocks_text(c.blocks) for c in bot.slack.calls_to("response_url")[before:]
        )
        assert (REFUSED in told) == (not allowed), f"{user}: {told}"
    assert "applied" in told


async def test_risky_change_cancel_is_owners_only(bot: BotUnderTest, database_url: str) -> None:
    """Cancel discards a pending change, so it needs what Confirm needs: a stranger is refused and the change
    stays pending (an owner can still confirm it); an owner (here a Mira group member) cancels it."""
    await answer_to(bot, "/flag", "on MIRA_COPILOT_ENABLED", OWNER)  # change 1, pending
    told = await _click_told(bot, "flag_cancel", "1", STRANGER)
    assert REFUSED in told and "Only the owners of Mira Co-Pilot may change the flags" in told, told
    assert await _change_status(database_url, 1) == "pending"
    told = await _click_told(bot, "flag_cancel", "1", MEMBER)
    assert REFUSED not in told and "Change 1 cancelled: nothing changed." in told, told
    assert await _change_status(database_url, 1) == "cancelled"


async def _change_status(database_url: str, change_id: int) -> str:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute("SELECT status FROM flag_changes WHERE id = %s", (change_id,))
        ).fetchone()
    assert row is not None
    return str(row[0])


async def _click_told(bot: BotUnderTest, action_id: str, value: str, user: str) -> str:
    before = len(bot.slack.calls_to("response_url"))
    await bot.click("C0OPS0001", "", action_id, value, user=user)
    await bot.settle()
    return " ".join(
        (c.text or "") + blocks_text(c.blocks) for c in bot.slack.calls_to("response_url")[before:]
    )


async def test_rollback_confirm_needs_an_owner_other_than_the_requester(bot: BotUnderTest) -> None:
    """The two-person rule on a production service: the requester is refused, so are non-owners (a Mira group
    member does not own Ivy); another owner (here a BOT_ADMIN) confirms."""
    await answer_to(bot, "/rollback", "ivy-v2 immediate", OWNER)  # rollback 1, pending
    for user, allowed, words in (
        (OWNER, False, "the two-person rule says the requester cannot confirm their own rollback"),
        (STRANGER, False, "Only the owners of Ivy v2 may confirm a rollback"),
        (MEMBER, False, "Only the owners of Ivy v2 may confirm a rollback"),
        (ADMIN, True, ""),
    ):
        told = await _click_told(bot, "rollback_confirm", "1", user)
        assert (REFUSED in told) == (not allowed) and words in told, f"{user}: {told}"
    async with bot.runtime.bot.storage.pool.connection() as conn:
        row = await (await conn.execute("SELECT status, confirmed_by FROM rollback_runs")).fetchone()
    assert row == ("running", ADMIN)


# --- fail closed ---------------------------------------------------------------------------------------------

#: A dangerous invocation of every dangerous command; a new dangerous command adds its own.
DANGEROUS_INVOCATIONS = {
    "/flag": [
        "off MIRA_MODE_COMMAND_ENABLED",
        "on MIRA_COPILOT_ENABLED",
        "set AI_BURST_LIMIT 5",
        "unset IVY_MODAL_HEURISTICS",
        "preset ivy-v2 emergency",
        "rollout MIRA_COPILOT_ENABLED 10%",
    ],
    "/rollback": ["ivy-v2 immediate", "mira p95 above 3 s", "fa"],
    "/restart": ["ai-assistant", "fa unhealthy targets"],
}
#: Every dangerous button, by action_id, with the value it is clicked with in the sweep: {change} is a pending
#: flag change, {run} a Mira rollback (its step 4 is the DBA's manual step).
DANGEROUS_ACTIONS = {
    "flag_confirm": "{change}",
    "flag_cancel": "{change}",
    "flag_revert_anyway": "{change}",
    "flag_revert_skip": "{change}",
    "rollback_confirm": "{run}",
    "rollback_review": "{run}",
    "rollback_abort": "{run}",
    "rollback_skip": "{run}:1",
    "rollback_mark_done": "{run}:1",
    "rollback_retry": "{run}:1",
    "rollback_signoff": "{run}:4",
}


def test_every_dangerous_command_and_button_is_in_the_sweep() -> None:
    registry = build_registry()
    dangerous = {
        name for name, command in registry.commands.items() if command.dangerous and command.available
    }
    assert dangerous == set(DANGEROUS_INVOCATIONS), "add the new dangerous command's invocations to the sweep"
    buttons = {action_id for action_id, action in registry.actions.items() if action.dangerous}
    assert buttons == set(DANGEROUS_ACTIONS), "add the new dangerous button to the sweep"


async def test_with_no_owners_every_dangerous_command_and_button_is_refused(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, catalog_env: dict[str, str], database_url: str
) -> None:
    owned = bot.runtime.bot
    # A pending risky change exists (requested while Ivy had an owner), then the owners are removed.
    ivy = owned.catalog.find("ivy-v2")
    assert ivy is not None
    items = await flag_changes.plan(owned, ivy, {"AI_MODEL_PROVIDER": "openai"})
    change = await flag_changes.record_change(
        owned,
        ivy,
        kind="set",
        label=None,
        requested_by=OWNER,
        requested_in="C0OPS0001",
        items=items,
        pending=True,
    )
    mira = owned.catalog.find("mira-copilot")
    assert mira is not None
    run = await rollbacks.create(
        owned,
        mira,
        mira.rollback_plans[0],
        reason=None,
        requested_by=OWNER,
        requested_in="C0OPS0001",
        now=owned.clock(),
    )
    owned.catalog = load_catalog(env=catalog_env)  # the bundled catalog: no owners anywhere
    owned.settings = owned.settings.model_copy(update={"bot_admins": []})
    for command, texts in DANGEROUS_INVOCATIONS.items():
        for text in texts:
            for user in (OWNER, ADMIN, STRANGER):
                told = await answer_to(bot, command, text, user)
                assert "Nobody may" in told and "no owner is configured" in told, (
                    f"{user} {command} {text}: {told}"
                )
                assert "BOT_ADMINS" in told
    for action_id, value in DANGEROUS_ACTIONS.items():
        told = await _click_told(bot, action_id, value.format(change=change.id, run=run), OWNER)
        assert "Nobody may" in told, f"{action_id}: {told}"
    assert [c for c in supabase.calls if c.method != "GET"] == []
    async with owned.storage.pool.connection() as conn:
        rows = await (await conn.execute("SELECT count(*) FROM feature_flags")).fetchone()
        assert rows == (0,)
