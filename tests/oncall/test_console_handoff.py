"""The console shows the weekly handoff: `clock monday 09:00` runs the scheduler on the bot's moved clock, the
checklist appears once, `press 1.N` ticks and unticks, reminders and the PagerDuty test go round the demo loop.
Runs docs/console-handoff.txt (the README's handoff tour) as an operator would, on embedded servers."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import ROOT, _clean_env, _run


def test_the_console_handoff_tour(tmp_path: Path) -> None:
    result = _run(
        ["console", "--demo", "--script", str(ROOT / "docs" / "console-handoff.txt")],
        _clean_env(STATE_DIR=str(tmp_path / "state")),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    before, after = out.split("> clock monday 09:00\n", 1)
    assert "No handoff checklist for the rotation of" in before
    posted = after.split("\n", 2)[1]
    assert (
        posted == "#mira-copilot-alerts · Mira Bot · message 1"
    )  # the scheduler ran at once: the checklist is there
    assert out.count("#mira-copilot-alerts · Mira Bot · message 1\n") == 1  # posted once, edited afterwards
    assert "Outgoing primary: @U0ALICE  →  Incoming primary: @U0BOB" in out
    assert "[1.1] ☐ 1. Review open incidents from previous week" in out
    ticked = out.split("U0CONSOLE in #ops> press 1.1\n", 1)[1]
    assert "[1.1] ☑ 1. Review open incidents from previous week" in ticked
    assert "Ticked by @U0CONSOLE at " in ticked
    unticked = out.split("U0BOB in #ops> press 1.1\n", 1)[1]
    assert "[1.1] ☐ 1. Review open incidents from previous week" in unticked.split("U0BOB in #ops>")[0]
    assert out.count("(reminder +4h)") == 1 and out.count("(reminder 17:00)") == 1
    assert "PagerDuty integration works: the test event's webhook came back" in out
    assert "1/5 done" in out.split("U0BOB in #ops> /oncall checklist\n", 1)[1]
    assert "Mira Co-Pilot — Primary @U0BOB" in out.split("U0BOB in #ops> /oncall\n", 1)[1]
