"""/help, short usage errors and `/oncall SERVICE` (issue 14), through signed requests to the running bot: the
ack's answer is what Slack shows the user, and what /oncall posts is what reached the recording Slack server."""

from __future__ import annotations

import pytest

from bot.commands import Command, Subcommand, UsageError
from handlers.capabilities import build_registry
from tests.harness import CHANNEL, BotUnderTest, blocks_text


async def _ack(bot: BotUnderTest, command: str, text: str = "") -> str:
    response = await bot.command(command, text)
    assert response.status_code == 200
    reply = response.json()
    assert reply["response_type"] == "ephemeral"
    return str(reply["text"])


async def test_help_lists_every_command_on_one_line_each(bot: BotUnderTest) -> None:
    text = await _ack(bot, "/help")
    assert "Did you mean" not in text
    lines = text.splitlines()
    assert lines[0] == "*Mira Bot commands*"
    for command in build_registry().commands.values():
        [line] = [line for line in lines if line.startswith(f"`{command.name}")]
        assert command.description in line
    assert not any(line.startswith("    ") for line in lines), "one line per command, no subcommand blocks"
    assert "`/COMMAND help` shows a command's forms" in text
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_help_for_one_command_shows_its_forms_and_a_typo_gets_did_you_mean(bot: BotUnderTest) -> None:
    text = await _ack(bot, "/help", "flag")
    assert text.splitlines()[0].startswith("`/flag list [service] | get FLAG")
    assert "    `/flag preset SERVICE NAME` — apply a runbook preset" in text
    assert (await _ack(bot, "/help", "/oncall")).startswith("`/oncall [SERVICE | handoff | checklist]`")
    typo = await _ack(bot, "/help", "flgg")
    assert "I don't know the command `flgg`." in typo
    assert "Did you mean `/help /flag`?" in typo
    assert typo.count("\n") == 2


async def test_an_unknown_command_is_answered_in_three_short_lines(bot: BotUnderTest) -> None:
    text = await _ack(bot, "/lat")
    assert text.splitlines() == [
        ":grey_question: I don't know the command `/lat`.",
        "Did you mean `/latency`? `/latency [service] [5m|1h|24h|7d] [kind]` — p50/p95/p99 against the service's SLOs",
        "`/help` lists every command.",
    ]


@pytest.mark.parametrize(
    ("command", "text", "usage"),
    [
        ("/health", "mira ivy", "Usage: `/health [service]` — Probe every service"),
        ("/latency", "ivy 2h", "Usage: `/latency [service] [5m|1h|24h|7d] [kind]` — p50/p95/p99"),
        ("/oncall", "checklst", "Usage: `/oncall checklist` — the status of this week's checklist"),
        ("/oncall", "ivy-v3", "Usage: `/oncall [SERVICE | handoff | checklist]` — Who is on call now"),
        ("/flag", "preset ivy-v3", "Usage: `/flag preset SERVICE NAME` — apply a runbook preset"),
        ("/rollback", "plans", "Usage: `/rollback plans SERVICE` — the service's rollback plans"),
    ],
)
async def test_a_usage_error_shows_the_one_line_that_applies(
    bot: BotUnderTest, command: str, text: str, usage: str
) -> None:
    answer = await _ack(bot, command, text)
    [line] = [line for line in answer.splitlines() if line.startswith("Usage:")]
    assert line.startswith(usage)
    assert len(answer.splitlines()) <= 3, answer
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []


def test_usage_line_prefers_the_subcommand_the_handler_names() -> None:
    command = Command(
        name="/demo",
        description="A demo",
        usage_hint="a X | b Y",
        subcommands=(Subcommand("a", "a X", "does a"), Subcommand("b", "b Y", "does b")),
    )
    assert command.usage_line(None, "b oops") == "`/demo b Y` — does b"
    assert command.usage_line("a", "b oops") == "`/demo a X` — does a", (
        "the handler knows better than the text"
    )
    assert command.usage_line(None, "zzz") == "`/demo a X | b Y` — A demo (`/demo help` for each form)"
    assert UsageError("x", subcommand="a").subcommand == "a"


async def test_oncall_for_one_service_shows_only_that_service(bot: BotUnderTest) -> None:
    assert await _ack(bot, "/oncall", "ivy") == "Asking PagerDuty who is on call for Ivy v2…"
    [post] = await bot.slack.wait_for("chat.postMessage", timeout=10)
    assert post.channel == CHANNEL
    text = blocks_text(post.blocks)
    assert "*Ivy v2*" in text and "AI Team Lead" in text  # its escalation path, from its runbook
    for other in ("Mira Co-Pilot", "AI Assistant", "FA AI System"):
        assert other not in text
    assert post.text.startswith("On call now: Ivy v2 ")


async def test_oncall_with_a_misspelt_service_gets_did_you_mean(bot: BotUnderTest) -> None:
    answer = await _ack(bot, "/oncall", "ivy-v3")
    assert "I don't understand `/oncall ivy-v3`: it is not a service" in answer
    assert "Did you mean `/oncall ivy-v2`?" in answer
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []
