"""Bad input to every registered command: any text gets a clear, bounded, ephemeral answer — never an exception,
never a 500, never a traceback.

Two targets: the parse-and-acknowledge path of each command (pure, what answers within Slack's 3 seconds), and the
real route (`POST /slack/events`, signed) with whatever post-ack work the text leads to.
Run long: `MIRA_FUZZ=long python3 dev.py test tests/fuzz -p no:cacheprovider` (≥ 10,000 examples per target).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import acknowledge_command
from bot.catalog import load_catalog
from handlers.capabilities import build_registry
from tests.fuzz.strategies import command_text, fuzz
from tests.harness import BotUnderTest

REGISTRY = build_registry()
CATALOG = load_catalog(env={})
COMMANDS = sorted(REGISTRY.commands)
#: Slack shows at most this much of a message; an answer must stay well within it whatever was typed.
MAX_ANSWER = 4_000


@pytest.mark.parametrize("name", COMMANDS)
@fuzz(300)
@given(text=command_text())
def test_any_text_to_any_command_gets_a_bounded_answer(name: str, text: str) -> None:
    command = REGISTRY.get(name)
    assert command is not None
    answer = acknowledge_command(REGISTRY, SimpleNamespace(catalog=CATALOG), name, text)  # type: ignore[arg-type]
    assert isinstance(answer, str) and answer.strip()
    assert len(answer) <= MAX_ANSWER, f"{len(answer)} characters"
    assert "Traceback" not in answer and "went wrong" not in answer  # no internal failure behind the answer


@fuzz(200)
@given(name=st.text(max_size=40), text=command_text())
def test_unknown_commands_get_help_not_an_error(name: str, text: str) -> None:
    answer = acknowledge_command(REGISTRY, SimpleNamespace(catalog=CATALOG), "/" + name, text)  # type: ignore[arg-type]
    assert answer.strip() and len(answer) <= MAX_ANSWER and "went wrong" not in answer


@fuzz(60)
@given(name=st.sampled_from(COMMANDS), text=command_text())
async def test_any_text_through_the_real_route_is_answered_200_and_ephemeral(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture, name: str, text: str
) -> None:
    caplog.set_level(logging.ERROR)
    response = await bot.command(name, text)
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral" and body["text"].strip()
    await bot.settle()
    failures = [r.getMessage() for r in caplog.records if r.name in ("bot.background", "bot.app")]
    assert failures == [], f"{name} {text!r} raised after the ack: {failures}"
