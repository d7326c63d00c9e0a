"""The console draws modals and submits them as Slack does; buttons are numbered per message; Ctrl-C and EOF end
the session cleanly. Driven in-process (and, for the signal, as the real process); assertions are on what reached
the recording Slack and PagerDuty servers."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import signal
from pathlib import Path

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from stand_ins.console_modals import state_values
from stand_ins.console_runner import _run_terminal, console_session
from tests.console_harness import console_for_test, console_settings_for_test, everything
from tests.test_cli import MIRA_BOT, _clean_env


async def test_add_note_opens_a_modal_that_is_filled_and_submitted(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        await typist.type('pd trigger fa "ALB 503"')
        mark = typist.mark
        shown = await typist.type(f"press {typist.button('Add note')}")
        [opened] = typist.calls_since(mark, "views.open")
        assert opened.body["view"]["title"]["text"] == "Add a note"
        assert (
            "(modal opened) Add a note\n    [input 1] Note\n    fill TEXT · submit (Add note) · close (Cancel)"
            in shown
        )

        notes = len(typist.console.pagerduty.calls_to("POST", "/incidents/PCON0001/notes"))
        refused = await typist.type("submit")  # a required input left empty: Slack does not submit
        assert "without Note: fill it first" in refused
        assert len(typist.console.pagerduty.calls_to("POST", "/incidents/PCON0001/notes")) == notes

        mark = typist.mark
        shown = await typist.type("fill Restarted the ECS tasks", "submit")
        assert "(Add a note submitted and closed)" in shown and typist.console.modals == []
        [note] = typist.console.pagerduty.calls_to("POST", "/incidents/PCON0001/notes")[notes:]
        assert note.body["note"]["content"] == "Restarted the ECS tasks"
        assert typist.said(mark, "Restarted the ECS tasks", "chat.postMessage", "#fa-ai-system-alerts")


async def test_resolve_with_a_note_resolves_the_incident(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        await typist.type('pd trigger ivy "Router p95 over 3 s"')
        await typist.type(f"press {typist.button('Resolve')}")
        assert typist.console.modals[-1].title == "Resolve incident"
        mark = typist.mark
        await typist.type("fill Rolled back to v1.9.0", "submit")
        [put] = [c for c in typist.console.pagerduty.calls_to("PUT", "/incidents/PCON0001") if c.body]
        assert put.body["incident"]["status"] == "resolved"
        assert put.body["incident"]["resolution"] == "Rolled back to v1.9.0"
        assert typist.said(mark, "Resolved by", "chat.postMessage", "#ivy-v2-alerts")


async def test_pushed_and_updated_views_are_followed_and_closed(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """views.push adds to the stack, views.update replaces by ID, `close` pops; what reached the recording Slack
    server is what the console draws."""
    async with console_for_test(database_url, redis_url, tmp_path, demo=False) as typist:
        slack = AsyncWebClient(token="xoxb-test", base_url=typist.console.slack.api_url)
        select = {
            "type": "input",
            "block_id": "level",
            "label": {"type": "plain_text", "text": "Level"},
            "element": {
                "type": "static_select",
                "action_id": "level",
                "options": [
                    {"text": {"type": "plain_text", "text": "Level 2"}, "value": "2"},
                    {"text": {"type": "plain_text", "text": "Level 3"}, "value": "3"},
                ],
            },
        }
        first = {
            "type": "modal",
            "callback_id": "a",
            "title": {"type": "plain_text", "text": "First"},
            "blocks": [],
        }
        opened = await slack.views_open(trigger_id="1.2.3", view=first)
        second = {
            "type": "modal",
            "callback_id": "b",
            "title": {"type": "plain_text", "text": "Escalate"},
            "submit": {"type": "plain_text", "text": "Escalate"},
            "blocks": [select],
        }
        await slack.views_push(trigger_id="1.2.4", view=second)
        shown = await typist.type("fill 4")
        assert "(modal opened) First" in shown and "(modal pushed) Escalate" in shown
        assert "[input 1] Level — one of: 2, 3" in shown
        assert "(input 1 is one of: 2, 3)" in shown
        assert [m.title for m in typist.console.modals] == ["First", "Escalate"]
        await slack.views_update(
            view_id=opened["view"]["id"], view={**first, "title": {"type": "plain_text", "text": "Renamed"}}
        )
        shown = await typist.type("fill Level 3")
        assert "(modal updated) Renamed" in shown
        assert state_values(second, typist.console.modals[-1].filled) == {
            "level": {"level": {"type": "static_select", "selected_option": select["element"]["options"][1]}}
        }
        assert "(Escalate submitted and closed)" in await typist.type(
            "submit"
        )  # the bot acked with an empty body
        assert [m.title for m in typist.console.modals] == ["Renamed"]
        assert "(Renamed closed)" in await typist.type("close")
        assert "(no modal is open" in await typist.type("submit")


async def test_buttons_are_numbered_per_message_and_never_reach_another_channel(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        first = await typist.type("/health mira")
        await typist.type("in #incidents")
        second = await typist.type("/health fa")
        assert "#ops · Mira Bot · message 1" in first and "[1.1] Run again" in first
        assert "#incidents · Mira Bot · message 2" in second and "[2.1] Run again" in second
        ops_post = typist.calls_since(0, "chat.postMessage", "#ops")[0]
        mark = typist.mark
        await typist.type(
            "press 1.1"
        )  # typed in #incidents, but message 1 is in #ops: its button re-runs there
        [update] = typist.calls_since(mark, "chat.update")
        assert typist.console.slack.channel_id(update.body["channel"]) == typist.console.slack.channel_id(
            "#ops"
        )
        assert update.body["ts"] == ops_post.response["ts"]  # type: ignore[index]
        assert "Mira Co-Pilot" in everything(update)
        mark = typist.mark
        refused = await typist.type("press 1", "press 7.1", "press 2.9")
        assert "(usage: press M.N — button N of message M" in refused
        assert "(there is no button 7.1)" in refused
        assert "(there is no button 2.9; message 2 has 2.1)" in refused
        assert typist.calls_since(mark) == []  # nothing was sent to Slack or the bot


async def test_a_button_an_edit_removed_cannot_be_pressed(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        await typist.type("/rollback ivy immediate p95 over 3 s", "as U0DANA")
        confirm = typist.button("Confirm rollback")
        await typist.type(f"press {confirm}")
        mark = typist.mark
        refused = await typist.type(f"press {confirm}")
        message = confirm.split(".")[0]
        assert f"(button {confirm} is no longer on message {message}: an edit removed it)" in refused
        assert typist.calls_since(mark) == []


@pytest.mark.parametrize("ending", [KeyboardInterrupt, EOFError])
async def test_ctrl_c_and_eof_at_the_prompt_end_the_session_and_stop_its_servers(
    database_url: str, redis_url: str, tmp_path: Path, ending: type[BaseException]
) -> None:
    lines = iter(["/health fa"])

    def read_line(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise ending from None

    out = io.StringIO()
    settings = console_settings_for_test(database_url, redis_url, tmp_path)
    async with console_session(settings, out) as console:
        await _run_terminal(console, read_line)
        bot_url, slack_url = console.server.url, console.slack.base_url
        assert console.slack.calls_to("chat.postMessage")  # /health fa was answered
    async with httpx.AsyncClient(trust_env=False) as http:
        for url in (f"{bot_url}/healthz", f"{slack_url}/api/auth.test"):
            with pytest.raises(httpx.ConnectError):
                await http.get(url)
    assert "Traceback" not in out.getvalue()


@pytest.mark.parametrize("stdin", ["pipe", "terminal"])
async def test_ctrl_c_ends_the_real_process_without_a_traceback(
    tmp_path: Path, database_url: str, redis_url: str, stdin: str
) -> None:
    """SIGINT while the prompt waits, on pipes (raw reads of stdin) or in a terminal (input() with line editing)."""
    env = _clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url)
    master, tty = pty.openpty() if stdin == "terminal" else (None, None)
    process = await asyncio.create_subprocess_exec(
        *MIRA_BOT,
        "console",
        "--no-demo",
        env=env,
        cwd=tmp_path,
        stdin=tty if tty is not None else asyncio.subprocess.PIPE,
        stdout=tty if tty is not None else asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    loop = asyncio.get_running_loop()

    async def output() -> bytes:
        if master is not None:
            return await loop.run_in_executor(None, os.read, master, 4096)
        assert process.stdout is not None
        return await process.stdout.readline()

    try:
        seen = b""
        while b"Type help" not in seen:
            chunk = await asyncio.wait_for(output(), timeout=60)
            assert chunk, seen.decode()
            seen += chunk
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
        for fd in (master, tty):
            if fd is not None:
                os.close(fd)
    assert process.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
