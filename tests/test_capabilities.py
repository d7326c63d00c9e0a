"""The platform finds the capabilities through the installed entry point, and runs without the stand-ins."""

from __future__ import annotations

import sys

import pytest

from bot import cli
from bot.capabilities import Capabilities, discover


def test_the_installed_entry_point_gives_every_command_and_the_worker_hooks() -> None:
    capabilities = discover()
    assert isinstance(capabilities, Capabilities)
    assert {"/health", "/flag", "/latency", "/rollback", "/oncall"} <= set(capabilities.registry.commands)
    assert capabilities.delivery.periodic and capabilities.rollbacks.advance


def test_the_console_on_an_install_without_stand_ins_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    # As if stand_ins/ were not installed (also when another test module imported the console already).
    for module in ("stand_ins.console", "stand_ins.console_runner"):
        monkeypatch.setitem(sys.modules, module, None)
    assert cli.main(["console"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the console needs the stand-ins" in err
