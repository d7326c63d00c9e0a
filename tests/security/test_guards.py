"""The registry enforces `dangerous=True` (issue 13): a dangerous command or button must carry a guard, and the
platform runs the guard's owners check before `run` — so a handler with no owner check of its own still never
runs for a non-owner. The commands here are test-only, registered in a test registry and reached through the
real Bolt app behind the real server, signed as Slack signs."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.capabilities import discover
from bot.catalog import Catalog, Service
from bot.commands import Action, Check, Command, CommandRegistry, OwnersCheck
from bot.context import ActionContext, CommandContext
from bot.settings import Settings
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import BotUnderTest, running_bot

ADMIN = "U0ADMIN01"  # BOT_ADMINS: owns every service (the bundled catalog names no owner)
STRANGER = "U0STRANGE"


async def _nothing(*args: Any) -> None:
    return None


async def _no_check(*args: Any) -> Check | None:
    return None


def test_a_dangerous_command_or_button_without_a_guard_is_refused_at_registration() -> None:
    registry = CommandRegistry()
    with pytest.raises(ValueError, match="/poke is dangerous but has no guard"):
        registry.add(
            Command(
                name="/poke",
                description="d",
                usage_hint="",
                dangerous=True,
                parse=lambda text, catalog: text,
                acknowledge=lambda parsed, catalog: "ok",
                run=_nothing,
            )
        )
    with pytest.raises(ValueError, match="action poke_button is dangerous but has no guard"):
        registry.add_action(Action(action_id="poke_button", run=_nothing, dangerous=True))
    assert registry.commands == {} and registry.actions == {}
    # Not built yet (no `run`): nothing to guard. Not dangerous: no guard needed.
    registry.add(Command(name="/later", description="d", usage_hint="", dangerous=True))
    registry.add_action(Action(action_id="harmless", run=_nothing))
    registry.add_action(Action(action_id="guarded", run=_nothing, dangerous=True, guard=_no_check))


def test_every_registered_dangerous_command_and_button_has_a_guard() -> None:
    registry = discover().registry
    assert all(c.guard is not None for c in registry.commands.values() if c.dangerous and c.available)
    assert all(a.guard is not None for a in registry.actions.values() if a.dangerous)


class Poke:
    """A dangerous test command and button whose handlers check nothing themselves: only the guard does."""

    def __init__(self, catalog: Catalog) -> None:
        service = catalog.find("ivy-v2")
        assert service is not None
        self.service: Service = service
        self.ran: list[str] = []

    def check(self) -> OwnersCheck:
        return OwnersCheck(self.service, f"poke {self.service.display_name}", "poke.refused", "the target")

    async def guard(self, parsed: str, ctx: CommandContext) -> Check | None:
        return None if parsed == "look" else self.check()

    async def run(self, parsed: str, ctx: CommandContext) -> None:
        self.ran.append(f"{ctx.invocation.user_id} {parsed}")
        await ctx.reply.ephemeral("poked")

    async def button_guard(self, ctx: ActionContext) -> Check | None:
        return self.check()

    async def click(self, ctx: ActionContext) -> None:
        self.ran.append(f"{ctx.user_id} clicked")

    def registry(self) -> CommandRegistry:
        registry = CommandRegistry()
        registry.add(
            Command(
                name="/poke",
                description="Poke Ivy (test only)",
                usage_hint="[look]",
                dangerous=True,
                parse=lambda text, catalog: text.strip(),
                acknowledge=lambda parsed, catalog: "Poking…",
                run=self.run,
                guard=self.guard,
            )
        )
        registry.add_action(
            Action(action_id="poke_button", run=self.click, dangerous=True, guard=self.button_guard)
        )
        return registry


@pytest.fixture
def poke(catalog: Catalog) -> Poke:
    return Poke(catalog)


@pytest.fixture
async def poke_bot(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer, poke: Poke
) -> AsyncIterator[BotUnderTest]:
    capabilities = dataclasses.replace(discover(), registry=poke.registry())
    admin_settings = settings.model_copy(update={"bot_admins": [ADMIN]})
    async with running_bot(admin_settings, catalog, slack, capabilities) as under_test:
        yield under_test


async def _refusals(bot: BotUnderTest) -> list[tuple[Any, ...]]:
    async with bot.runtime.bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT actor, action, outcome, service, target, detail->>'what' FROM audit_log ORDER BY id"
        )
        return list(await cursor.fetchall())


async def test_a_dangerous_command_whose_handler_checks_nothing_still_refuses_a_non_owner(
    poke_bot: BotUnderTest, poke: Poke
) -> None:
    bot = poke_bot
    await bot.command("/poke", "now", user=STRANGER)
    await bot.settle()
    told = [c.text or "" for c in bot.slack.calls_to("response_url")]
    assert told == [f":lock: Only the owners of Ivy v2 may poke Ivy v2: <@{ADMIN}>."], told
    assert poke.ran == []
    assert await _refusals(bot) == [
        (STRANGER, "poke.refused", "refused", "ivy-v2", "the target", "poke Ivy v2")
    ]

    await bot.click("C0OPS0001", "", "poke_button", "1", user=STRANGER)
    await bot.settle()
    assert poke.ran == []
    assert len(await _refusals(bot)) == 2

    # A request the guard says changes nothing runs for anyone; an owner's runs.
    await bot.command("/poke", "look", user=STRANGER)
    await bot.command("/poke", "now", user=ADMIN)
    await bot.click("C0OPS0001", "", "poke_button", "1", user=ADMIN)
    await bot.settle()
    assert sorted(poke.ran) == sorted([f"{STRANGER} look", f"{ADMIN} now", f"{ADMIN} clicked"])
    assert len(await _refusals(bot)) == 2
