"""A console tour played as a person would run it: `mira-bot console --demo --script FILE` as a real process on
embedded servers (tests/test_console_runbooks.py, tests/test_console_diagnostics.py)."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import _clean_env, _run


def play_tour(script: Path, tmp_path: Path) -> str:
    """What the console printed for `script`; it must have exited 0, with no traceback and every press finding
    its button."""
    result = _run(
        ["console", "--demo", "--script", str(script)],
        _clean_env(STATE_DIR=str(tmp_path / "state")),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "(there is no button" not in result.stdout, "a press in the script missed its button"
    return result.stdout
