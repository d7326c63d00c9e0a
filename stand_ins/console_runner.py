"""`mira-bot console`'s session: the recording servers, the runtime, then a script or the REPL.

Split from :mod:`stand_ins.console` (what one typed line does) because this is the wiring around it: the
operator's settings pointed at in-process recording Slack, Supabase and PagerDuty servers with fresh secrets, the
demo's throwaway world (embedded servers in a temporary directory), and reading lines from `--script FILE` (echoed
with the prompt, which is how the README's transcripts are made) or from the terminal.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
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
from stand_ins.demo import demo_settings, start_demo
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from stand_ins.recording_supabase import RecordingSupabaseServer


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


async def run_console(
    settings: Settings, script: TextIO | None = None, out: TextIO | None = None, *, demo: bool = False
) -> int:
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
        return await _run_console(settings, script, out, demo)
    finally:
        if demo_state is not None:
            shutil.rmtree(demo_state, ignore_errors=True)


async def _run_console(settings: Settings, script: TextIO | None, out: TextIO, demo: bool) -> int:
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
        runtime.scheduler.not_before = clock()
        runtime.start_background()
        server = await start_server(runtime.http_app)
        demo_server = None
        if demo:
            demo_server, demo_env = await start_demo(runtime.bot.storage)
            runtime.bot.catalog = await asyncio.to_thread(
                load_catalog, settings.bot_catalog, {**os.environ, **demo_env, **DEMO_PAGERDUTY_ENV}
            )
            pagerduty.add_routing_key(
                DEMO_PAGERDUTY_ENV["MIRA_PD_ROUTING_KEY"], "PSVCMIRADEMO", "Mira Co-Pilot"
            )
            for pd_id, name, email, slack_id in DEMO_ONCALLS:
                pagerduty.add_user(pd_id, name, email)
                slack.add_user(slack_id, email, name)
        pagerduty.send_webhooks_to(f"{server.url}/pagerduty/webhook", [webhook_secret])
        pagerduty.add_user("PCONSOLEU", "You (console)", f"{CONSOLE_USER.lower()}@example.com")
        console = Console(
            runtime, slack, server, signing_secret, out, pagerduty, webhook_secret, clock=clock, demo=demo
        )
        if demo:
            console.say("(demo: the four services are local stand-ins started by stand_ins/demo.py)")
        try:
            if script is not None:
                for line in script:
                    if line.strip() and not line.lstrip().startswith("#"):
                        console.say(console.prompt + line.rstrip("\n"))
                    if not await console.handle(line):
                        break
            else:
                console.say("mira-bot console: a local Slack workspace. Type help, or try /health.")
                loop = asyncio.get_running_loop()
                while True:
                    try:
                        line = await loop.run_in_executor(None, input, console.prompt)
                    except (EOFError, KeyboardInterrupt):
                        console.say("")
                        break
                    if not await console.handle(line):
                        break
        finally:
            await console.close()
            if demo_server is not None:
                await demo_server.stop()
            await server.stop()
            await runtime.close()
    return 0
