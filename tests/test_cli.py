"""`mira-bot` as an operator runs it: the real process, its start-up errors, serve, and the console transcript."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.signing import sign_slack_request
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import SIGNING_SECRET, closed_port

ROOT = Path(__file__).resolve().parents[1]
MIRA_BOT = [sys.executable, "-m", "bot.cli"]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a machine with only Python: none of the bot's settings, no proxies."""
    drop = re.compile(
        r"^(SLACK_|DATABASE_URL|REDIS_URL|PAGERDUTY_|SUPABASE_|BOT_|MIRA_|IVY_|AI_ASSISTANT_|FA_|"
        r"HOST$|PORT$|LOG_|STATE_DIR|HTTPS?_PROXY|ALL_PROXY|TEST_)",
        re.IGNORECASE,
    )
    env = {k: v for k, v in os.environ.items() if not drop.match(k)}
    env.update(extra)
    return env


def _run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MIRA_BOT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["serve"], {"PORT": "http"}, "mira-bot: PORT is invalid"),
        (["serve"], {}, "mira-bot: SLACK_BOT_TOKEN is not set: `mira-bot serve` expects a Slack bot token"),
        (
            ["serve"],
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "BOT_CATALOG": "broken.yaml"},
            "mira-bot: broken.yaml: services[x].escalation: Field required",
        ),
    ],
)
def test_bad_configuration_stops_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    (tmp_path / "broken.yaml").write_text("services:\n  - {name: x, display_name: X}\n")
    result = _run(args, _clean_env(**env), tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(expected)
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_catalog(tmp_path: Path) -> None:
    result = _run(["check-catalog"], _clean_env(), tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "ok: 4 services (mira-copilot, ivy-v2, ai-assistant, fa-ai-system)"


async def test_serve_answers_a_signed_health_command(
    tmp_path: Path, database_url: str, redis_url: str, slack: RecordingSlackServer
) -> None:
    port = closed_port()
    env = _clean_env(
        SLACK_BOT_TOKEN="xoxb-serve-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_FORMAT="json",
    )
    process = await asyncio.create_subprocess_exec(
        *MIRA_BOT,
        "serve",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("mira-bot serve did not come up")
            body = (
                f"command=%2Fhealth&text=&user_id=U0ALICE01&channel_id=C0OPS0001&team_id=T0CONSOLE"
                f"&response_url={slack.response_url('serve')}&trigger_id=1.2.3"
            ).encode()
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                **sign_slack_request(SIGNING_SECRET, body),
            }
            ack = await client.post("/slack/events", content=body, headers=headers)
            assert ack.status_code == 200
            assert ack.json()["text"] == "Checking 4 services…"
            # Only the answer in the channel it was typed in: on a Monday morning the real scheduler may also post
            # the week's handoff checklist in the alerts channel, as it should.
            [post] = await slack.wait_for("chat.postMessage", timeout=15, channel="C0OPS0001")
            assert post.channel == "C0OPS0001" and post.token == "xoxb-serve-test"
            assert post.text == "Health: 4 not configured"
            assert (await client.get("/readyz")).json()["ready"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert b"xoxb-serve-test" not in stderr


def _normalize(text: str) -> str:
    text = re.sub(r"\d{2}:\d{2}(:\d{2})? UTC", "HH:MM UTC", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)  # the demo deploy hooks' ephemeral port
    text = re.sub(r"/p\d{16}\b", "/pTS", text)  # a permalink carries its message's ts
    text = re.sub(r"thread_ts=\d+\.\d+", "thread_ts=TS", text)  # …and a thread reply's, its thread's
    text = re.sub(r"\b\d+\.\d s\b", "N.N s", text)  # a rollback step's elapsed time
    return re.sub(r"\d+ ms", "N ms", text).strip()


def _readme_transcript() -> tuple[list[str], str]:
    """The command the README says produced its transcript, and the transcript."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- transcript: mira-bot (.+?) -->\s*```text\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md has no console transcript block"
    args = [str(ROOT / arg) if arg.endswith(".txt") else arg for arg in match.group(1).split()]
    return args, match.group(2)


def test_readme_transcript_reproduces_on_a_machine_with_nothing_installed(tmp_path: Path) -> None:
    """The README's console command with no DATABASE_URL/REDIS_URL: embedded servers, the README's exact output."""
    args, expected = _readme_transcript()
    assert args[:1] == ["console"] and "--script" in args
    result = _run(args, _clean_env(STATE_DIR=str(tmp_path / "state")), tmp_path)
    assert result.returncode == 0, result.stderr
    assert _normalize(result.stdout) == _normalize(expected)
    assert not (tmp_path / "state").exists()  # the demo is a throwaway world: the real STATE_DIR is untouched


def test_bare_console_on_a_machine_with_nothing_installed(tmp_path: Path) -> None:
    """`mira-bot console --no-demo` with no Slack token, no DATABASE_URL, no REDIS_URL: the console on embedded
    servers. (Without --no-demo it is the demo: tests/test_demo.py.)"""
    result = subprocess.run(
        [*MIRA_BOT, "console", "--no-demo"],
        input="/health fa\nquit\n",
        env=_clean_env(STATE_DIR=str(tmp_path / "state")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "FA AI System: not configured (3 probes: 3 not configured)" in result.stdout
    assert (tmp_path / "state" / "postgres" / "PG_VERSION").exists()  # really the embedded Postgres
    assert list((tmp_path / "state" / "valkey").iterdir())  # and the embedded Valkey's data
