"""`mira-bot console`'s session: the recording servers, the runtime, then a script or the REPL.

Split from :mod:`stand_ins.console` (what one typed line does) because this is the wiring around it: the
operator's settings pointed at in-process recording Slack, Supabase and PagerDuty servers with fresh secrets, the
demo's throwaway world (embedded servers in a temporary directory), and reading lines from `--script FILE` (echoed
with the prompt, which is how the README's transcripts are made) or from the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from bot.catalog import load_catalog
from bot.runtime import start_runtime
from bot.server import start_server
from bot.settings import Settings
from stand_ins.console import CONSOLE_PD_TOKEN, CONSOLE_USER, Console
from stand_ins.console_clock import ConsoleClock
from stand_ins.console_pagerduty import DEMO_ONCALLS, DEMO_PAGERDUTY_ENV
from stand_ins.demo import DemoStandIns, demo_settings, start_demo
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from stand_ins.recording_supabase import RecordingSupabaseServer

log = logging.getLogger(__name__)


def console_settings(
    settings: Settings, slack: RecordingSlackServer, pagerduty: RecordingPagerDutyServer, webhook_secret: str
) -> tuple[Settings, str]:
    """The operator's settings with Slack and PagerDuty pointed at in-process recording servers, and fresh
    secrets: the console signs its own Slack requests and PagerDuty webhooks."""
    signing_secret = secrets.token_hex(16)
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr("xoxb-console-" + secrets.token_hex(8)),
            "slack_signing_secret": SecretStr(signing_secret),
            "slack_app_token": None,
            "slack_api_url": slack.api_url,
            "pagerduty_api_token": SecretStr(CONSOLE_PD_TOKEN),
            "pagerduty_api_url": pagerduty.base_url,
            "pagerduty_events_url": pagerduty.base_url,
            "pagerduty_from_email": "console@example.com",
            "pagerduty_webhook_secrets": [SecretStr(webhook_secret)],
        }
    ), signing_secret


DEMO_BANNER = (
    "(demo: Mira Co-Pilot, Ivy v2, AI Assistant and FA AI System are local stand-ins (stand_ins/demo.py), with "
    "their events, flag tables and a PagerDuty rotation on call; nothing here reaches a real service. Type help for "
    "`break fa`, `slow ivy`, `mend all`. Setting any of {settings} points the console at real services instead; "
    "--no-demo gives the bare console.)"
)
BARE_BANNER = (
    "(no demo: the services are what your settings point at{found}; `--demo` plays local stand-ins.)"
)
#: The settings that point the console at real services (the catalog's `${…}` and the bot's own).
REAL_SERVICE_SETTINGS = (
    "MIRA_BASE_URL",
    "MIRA_DATABASE_URL",
    "IVY_BASE_URL",
    "IVY_DATABASE_URL",
    "AI_ASSISTANT_BASE_URL",
    "AI_ASSISTANT_DATABASE_URL",
    "FA_BASE_URL",
    "FA_DATABASE_URL",
    "SUPABASE_ACCESS_TOKEN",
    "SUPABASE_PROJECT_REF",
    "PAGERDUTY_API_TOKEN",
)


def configured_services(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Which of the settings that point at real services are set (the environment or, for the bot's own,
    `.env`): the console is the demo when none is, as storage is embedded when DATABASE_URL is unset."""
    environ = os.environ if environ is None else environ
    found = [name for name in REAL_SERVICE_SETTINGS if environ.get(name)]
    own = {
        "SUPABASE_ACCESS_TOKEN": settings.supabase_access_token,
        "SUPABASE_PROJECT_REF": settings.supabase_project_ref,
        "PAGERDUTY_API_TOKEN": settings.pagerduty_api_token,
    }
    found += [name for name, value in own.items() if value and name not in found]
    return found


def banner(demo: bool, settings: Settings) -> str:
    if demo:
        return DEMO_BANNER.format(settings=", ".join(f"`{name}`" for name in REAL_SERVICE_SETTINGS))
    found = configured_services(settings)
    return BARE_BANNER.format(found=f" ({', '.join(found)})" if found else "")


async def run_console(
    settings: Settings,
    script: TextIO | None = None,
    out: TextIO | None = None,
    *,
    demo: bool = False,
    read_line: Callable[[str], str] | None = None,
) -> int:
    """The console: `script`'s lines (echoed with the prompt), or lines typed at the terminal (`read_line`, by
    default `input`) until quit, EOF or Ctrl-C."""
    out = out or sys.stdout
    demo_state: Path | None = None
    if demo:
        # A throwaway world: embedded servers in a fresh directory, never the operator's DATABASE_URL/REDIS_URL,
        # so demo changes land nowhere real and every tour starts from the same state.
        demo_state = Path(tempfile.mkdtemp(prefix="mira-demo-"))
        settings = settings.model_copy(
            update={"database_url": None, "redis_url": None, "state_dir": demo_state}
        )
    try:
        async with console_session(settings, out, demo=demo) as console:
            console.say(banner(demo, settings))
            if script is not None:
                await _run_script(console, script)
            else:
                await _run_terminal(console, read_line or terminal_reader())
    finally:
        if demo_state is not None:
            shutil.rmtree(demo_state, ignore_errors=True)
    return 0


async def _run_script(console: Console, script: TextIO) -> None:
    for line in script:
        if line.strip() and not line.lstrip().startswith("#"):
            console.say(console.prompt + line.rstrip("\n"))
        if not await console.handle(line):
            break


async def _run_terminal(console: Console, read_line: Callable[[str], str]) -> None:
    """Lines from the terminal, read on a daemon thread (a thread blocked in input() must not keep the process
    alive after Ctrl-C), until quit, EOF (Ctrl-D) or Ctrl-C at the prompt. A Ctrl-C while a command runs cancels
    the session (asyncio.run's SIGINT handling), and `console_session` still stops every server."""
    console.say("mira-bot console: a local Slack workspace. Type help, or try /health.")
    loop = asyncio.get_running_loop()
    while True:
        answer: asyncio.Future[str | None] = loop.create_future()

        def read(prompt: str = console.prompt, answer: asyncio.Future[str | None] = answer) -> None:
            try:
                line: str | None = read_line(prompt)
            except (EOFError, KeyboardInterrupt):
                line = None
            except Exception:
                log.warning("reading the terminal failed; ending the console", exc_info=True)
                line = None
            loop.call_soon_threadsafe(_settle, answer, line)

        threading.Thread(target=read, name="console-input", daemon=True).start()
        line = await answer
        if line is None:
            console.say("")
            return
        if not await console.handle(line):
            return


def terminal_reader() -> Callable[[str], str]:
    """How the reader thread reads a line: `input()` on a terminal (line editing, history), raw reads of fd 0
    otherwise. Never `sys.stdin` on a pipe: a thread blocked in its buffered reader holds the buffer's lock, and
    the interpreter aborts at exit ("could not acquire lock … possibly due to daemon threads")."""
    if sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty():
        return input  # both a terminal: input() reads through readline, not sys.stdin's buffer

    def read_fd(prompt: str) -> str:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line = bytearray()
        while True:
            byte = os.read(0, 1)  # unbuffered: a line typed at a time is short
            if not byte:
                if line:
                    return line.decode("utf-8", "replace")
                raise EOFError
            if byte == b"\n":
                return line.decode("utf-8", "replace")
            line += byte

    return read_fd


def _settle(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)


@contextlib.asynccontextmanager
async def console_session(settings: Settings, out: TextIO, *, demo: bool = False) -> AsyncIterator[Console]:
    """The recording servers, the runtime on the console's clock, the demo stand-ins when `demo`, and the
    console; everything stopped on the way out, however the session ends (quit, EOF, Ctrl-C, an error)."""
    webhook_secret = secrets.token_hex(16)
    async with (
        RecordingSlackServer() as slack,
        RecordingSupabaseServer() as supabase,
        RecordingPagerDutyServer(CONSOLE_PD_TOKEN, subdomain="mira-demo") as pagerduty,
    ):
        bot_settings, signing_secret = console_settings(settings, slack, pagerduty, webhook_secret)
        if demo:
            bot_settings = demo_settings(bot_settings, supabase, CONSOLE_USER)
        runtime = await start_runtime(bot_settings)
        clock = ConsoleClock()
        runtime.bot.clock = clock
        pagerduty.clock = clock  # PagerDuty dates incidents and webhooks by the console's clock too
        runtime.scheduler.not_before = clock()
        stand_ins: DemoStandIns | None = None
        server = None
        console = None
        try:
            if demo:
                stand_ins = await start_demo(runtime.bot.storage, clock)
                runtime.bot.catalog = await asyncio.to_thread(
                    load_catalog, settings.bot_catalog, {**os.environ, **stand_ins.env, **DEMO_PAGERDUTY_ENV}
                )
                pagerduty.add_routing_key(
                    DEMO_PAGERDUTY_ENV["MIRA_PD_ROUTING_KEY"], "PSVCMIRADEMO", "Mira Co-Pilot"
                )
                for pd_id, name, email, slack_id in DEMO_ONCALLS:
                    pagerduty.add_user(pd_id, name, email)
                    slack.add_user(slack_id, email, name)
            runtime.start_background()
            server = await start_server(runtime.http_app)
            pagerduty.send_webhooks_to(f"{server.url}/pagerduty/webhook", [webhook_secret])
            pagerduty.add_user("PCONSOLEU", "You (console)", f"{CONSOLE_USER.lower()}@example.com")
            console = Console(
                runtime,
                slack,
                server,
                signing_secret,
                out,
                pagerduty,
                webhook_secret,
                clock=clock,
                stand_ins=stand_ins,
            )
            if stand_ins is not None:
                console._seed_demo_oncalls()  # a rotation on call from the start
            yield console
        finally:
            if console is not None:
                await console.close()
            if stand_ins is not None:
                await stand_ins.stop()
            if server is not None:
                await server.stop()
            await runtime.close()
