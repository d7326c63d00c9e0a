"""`mira-bot console`: chat with the real bot in a terminal, no Slack workspace needed.

The console starts the same runtime as `serve` (catalog, storage, Bolt app, HTTP server on a loopback port) and an
in-process recording Slack server as the Web API. What you type becomes a request signed exactly as Slack signs
it and sent to `/slack/events`; what the bot posts to the Web API is rendered as text with channel, thread
structure and numbered buttons (and checkboxes) you can press. `--script FILE` runs lines non-interactively and
prints the transcript (the README's transcript is produced this way and checked by a test).

The bot's clock is the console's: `clock monday 09:00` moves it forward (it keeps running from there) and runs the
scheduler at once, so the weekly handoff checklist and its reminders can be seen without waiting for Monday.
Scheduled slots from before the session started are not caught up, so a console opened on a Monday morning does
not post the week's checklist by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from bot.catalog import load_catalog
from bot.cron import CronSchedule
from bot.runtime import Runtime, start_runtime
from bot.server import RunningServer, start_server
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook, sign_slack_request
from handlers import incidents
from stand_ins import pagerduty_payloads as payloads
from stand_ins.console_render import Button, ConsoleRenderer
from stand_ins.demo import demo_settings, start_demo
from stand_ins.recording_pagerduty import RecordingPagerDutyServer, oncall_entry
from stand_ins.recording_slack import TEAM_ID, RecordingSlackServer
from stand_ins.recording_supabase import RecordingSupabaseServer

CONSOLE_USER = "U0CONSOLE"
CONSOLE_CHANNEL = "#ops"
CONSOLE_PD_TOKEN = "console-pagerduty-token"
# The demo's PagerDuty: Mira's escalation policy and Events API routing key, so the handoff names on-calls and its
# "Test PagerDuty integration" button goes round the loop through the in-process PagerDuty.
DEMO_PAGERDUTY_ENV = {
    "MIRA_PD_ESCALATION_POLICY": "PEPDEMOMIRA",
    "MIRA_PD_ROUTING_KEY": "demo0routing0key0for0mira0copilt",
}
DEMO_ONCALLS = (  # (PagerDuty id, name, email, Slack id): outgoing and incoming primary, secondary, manager
    ("PDEMOALI", "Alice (AI Squad)", "alice@demo.example", "U0ALICE"),
    ("PDEMOBOB", "Bob (AI Squad)", "bob@demo.example", "U0BOB"),
    ("PDEMOCAR", "Carol (Backend Team)", "carol@demo.example", "U0CAROL"),
    ("PDEMODAN", "Dana (Engineering Manager)", "dana@demo.example", "U0DANA"),
)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^(?:(?P<day>[a-z]+)\s+)?(?P<hh>\d{1,2}):(?P<mm>\d{2})$")
_CLOCK_STEP = re.compile(r"^\+(?P<n>\d+)(?P<unit>[mhd])$")

CONSOLE_HELP = """\
*Console*
  `/command args`   run a slash command as the current user, in the current channel
  `press N`         press button N (a dialog that asks for confirmation is confirmed)
  `as U0ALICE`      act as another Slack user ID from now on
  `in #channel`     type in another channel from now on
  `pd trigger SERVICE "title"`, `pd ack N`, `pd resolve N`
                    a signed PagerDuty V3 webhook for incident N, through the real webhook route
  `clock monday 09:00`, `clock 17:00`, `clock +4h`
                    move the bot's clock forward (the handoff's time zone) and run what is due, e.g. the weekly
                    handoff checklist; `press N` ticks or unticks checklist item N
  `help`, `quit`"""


class ConsoleClock:
    """Real time, shifted by what `clock` set: time keeps running after a jump, and only ever moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def jump_to(self, moment: datetime) -> None:
        self.offset = max(self.offset, moment - datetime.now(UTC))


def clock_target(text: str, now: datetime, zone_name: str) -> datetime | None:
    """`monday 09:00` / `mon 9:00` (the next such moment), `17:00` (the next one), `+4h` / `+30m` / `+1d`; in
    the handoff's time zone. None when the text is none of these."""
    schedule = CronSchedule("* * * * *", zone_name)  # validates and carries the zone
    words = text.strip().lower()
    step = _CLOCK_STEP.match(words)
    if step:
        n = int(step.group("n"))
        return (
            now
            + {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[step.group("unit")]
        )
    match = _CLOCK.match(words)
    if not match or int(match.group("hh")) > 23 or int(match.group("mm")) > 59:
        return None
    day = match.group("day")
    weekday = next((i for i, name in enumerate(_WEEKDAYS) if day and day.startswith(name)), None)
    if day and weekday is None:
        return None
    local = now.astimezone(schedule.zone)
    candidate = local.replace(
        hour=int(match.group("hh")), minute=int(match.group("mm")), second=0, microsecond=0
    )
    for _ in range(8):
        if candidate > local and (weekday is None or candidate.weekday() == weekday):
            return candidate.astimezone(UTC)
        candidate = (candidate + timedelta(days=1)).replace(hour=candidate.hour, minute=candidate.minute)
    return None


class Console:
    """One console session: who you are, where you type, and what the bot has shown so far."""

    def __init__(
        self,
        runtime: Runtime,
        slack: RecordingSlackServer,
        server: RunningServer,
        signing_secret: str,
        out: TextIO,
        pagerduty: RecordingPagerDutyServer,
        webhook_secret: str,
        clock: ConsoleClock | None = None,
        demo: bool = False,
    ) -> None:
        self.runtime = runtime
        self.clock = clock or ConsoleClock()
        self.demo = demo
        self.slack = slack
        self.server = server
        self.signing_secret = signing_secret
        self.out = out
        self.pagerduty = pagerduty
        self.webhook_secret = webhook_secret
        self._incidents: dict[int, dict[str, Any]] = {}
        self.user_id = CONSOLE_USER
        self.channel = CONSOLE_CHANNEL
        self.renderer = ConsoleRenderer(slack)
        self._seen = 0
        self._client = httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10.0)

    def say(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)
        self.out.flush()

    @property
    def prompt(self) -> str:
        return f"{self.user_id} in {self.channel}> "

    async def close(self) -> None:
        await self._client.aclose()

    async def handle(self, line: str) -> bool:
        """Run one line; False when the session should end."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        word, _, rest = line.partition(" ")
        lowered = word.lower()
        if lowered in ("quit", "exit"):
            return False
        if lowered == "help":
            self.say(*self.renderer.blocks_to_lines(None, self.runtime.registry.help_text(), None, None))
            self.say(*self.renderer.blocks_to_lines(None, CONSOLE_HELP, None, None))
        elif lowered == "as" and rest.strip():
            self.user_id = rest.strip().upper()
            self.say(f"(you are now {self.user_id})")
        elif lowered == "in" and rest.strip():
            self.channel = "#" + rest.strip().lstrip("#")
            self.say(f"(you are now typing in {self.channel})")
        elif lowered in ("press", "click") and rest.strip().isdigit():
            await self.press(int(rest.strip()))
        elif word.startswith("/"):
            await self.slash_command(word, rest)
        elif lowered == "pd":
            await self.pagerduty_command(rest)
        elif lowered == "clock":
            await self.clock_command(rest)
        else:
            self.say(f"(the console doesn't understand {shlex.quote(line)}; type help)")
        return True

    async def pagerduty_command(self, rest: str) -> None:
        """`pd trigger SERVICE "title"`, `pd ack N`, `pd resolve N`: what PagerDuty would send, signed, through
        the real webhook route; the delivery worker then posts it like any other webhook."""
        try:
            args = shlex.split(rest)
        except ValueError as exc:
            self.say(f"(could not read that: {exc})")
            return
        now = datetime.now(UTC)
        oncall = ("PCONSOLE", "Console On-call", "oncall@example.com")
        if len(args) >= 3 and args[0] == "trigger":
            service = self.runtime.bot.catalog.find(args[1])
            if service is None:
                self.say(f"(no service {args[1]!r}; services: {', '.join(self.runtime.bot.catalog.names())})")
                return
            number = len(self._incidents) + 1
            title = " ".join(args[2:])
            incident_id = f"PCON{number:04d}"
            service_id = f"PSVC{service.name.upper().replace('-', '')[:8]}"
            self.pagerduty.add_user(*oncall)
            self.pagerduty.add_incident(
                incident_id,
                number,
                title,
                service_id,
                assignees=[oncall],
                service_name=service.display_name,
                escalation_policy=("PEPCONSOLE", service.escalation.levels[0].name),
                priority=("PPRIO01", "P1"),
            )
            incident = payloads.incident(
                id=incident_id,
                number=number,
                title=title,
                service_id=service_id,
                service_name=service.display_name,
                assignees=(oncall,),
                escalation_policy=service.escalation.levels[0].name,
                created_at=now,
            )
            self._incidents[number] = incident
            payload = payloads.event("incident.triggered", incident, occurred_at=now)
        elif (
            len(args) == 2
            and args[0] in ("ack", "resolve")
            and args[1].isdigit()
            and int(args[1]) in self._incidents
        ):
            status = {"ack": "acknowledged", "resolve": "resolved"}[args[0]]
            incident = {**self._incidents[int(args[1])], "status": status}
            payload = payloads.event(f"incident.{status}", incident, occurred_at=now, agent=oncall)
        else:
            self.say('(usage: pd trigger SERVICE "title" | pd ack N | pd resolve N)')
            return
        body = payloads.body(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Id": payload["event"]["id"],
            **sign_pagerduty_webhook(self.webhook_secret, body),
        }
        response = await self._client.post("/pagerduty/webhook", content=body, headers=headers)
        if response.status_code != 202:
            self.say(f"(the bot answered HTTP {response.status_code})")
        await self._show_answer(None)

    async def clock_command(self, rest: str) -> None:
        """Move the bot's clock forward and run the scheduler once, so what became due shows now."""
        handoff = self.runtime.bot.catalog.handoff
        zone_name = handoff.timezone if handoff else "UTC"
        zone = CronSchedule("* * * * *", zone_name).zone
        if rest.strip():
            target = clock_target(rest, self.clock(), zone_name)
            if target is None:
                self.say("(usage: clock monday 09:00 | clock 17:00 | clock +4h — forward only)")
                return
            self.clock.jump_to(target)
            if self.demo:
                self._seed_demo_oncalls()
        local = self.clock().astimezone(zone)
        self.say(f"(the bot's clock is now {local:%a %d %b %H:%M} {local.tzname()})")
        await self.runtime.scheduler.run_due()
        await self._show_answer(None)

    def _seed_demo_oncalls(self) -> None:
        """The demo rotation: Alice hands over to Bob at the rotation the clock is in; Carol is secondary and
        Dana the escalation contact throughout."""
        handoff = self.runtime.bot.catalog.handoff
        if handoff is None:
            return
        rotation = CronSchedule(handoff.cron, handoff.timezone).latest(self.clock())
        week = timedelta(days=7)
        (alice, bob, carol, dana) = DEMO_ONCALLS
        policy = (DEMO_PAGERDUTY_ENV["MIRA_PD_ESCALATION_POLICY"], "Mira Co-Pilot")

        def entry(
            person: tuple[str, str, str, str], level: int, start: datetime | None, end: datetime | None
        ) -> dict[str, Any]:
            return oncall_entry(
                (person[0], person[1]),
                escalation_policy=policy,
                escalation_level=level,
                start=start.isoformat() if start else None,
                end=end.isoformat() if end else None,
            )

        self.pagerduty.set_oncalls(
            [
                entry(alice, 1, rotation - week, rotation),
                entry(bob, 1, rotation, rotation + week),
                entry(carol, 2, None, None),
                entry(dana, 3, None, None),
            ]
        )

    async def _wait_for_delivery(self) -> None:
        """Until the delivery worker has posted what is stored and made its debounced edits (bounded)."""
        for _ in range(100):
            if await incidents.undelivered(self.runtime.bot) == 0:
                # A pass may have claimed the last dirty root and still be editing it in Slack.
                await asyncio.wait_for(self.runtime.delivery.between_passes(), timeout=10.0)
                return
            await asyncio.sleep(0.1)

    async def _send(self, body: bytes, content_type: str) -> httpx.Response:
        headers = {"Content-Type": content_type, **sign_slack_request(self.signing_secret, body)}
        return await self._client.post("/slack/events", content=body, headers=headers)

    async def slash_command(self, command: str, text: str) -> None:
        channel_id = self.slack.channel_id(self.channel)
        form = {
            "token": "console",
            "team_id": TEAM_ID,
            "team_domain": "console",
            "channel_id": channel_id,
            "channel_name": self.channel.lstrip("#"),
            "user_id": self.user_id,
            "user_name": self.user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0CONSOLE",
            "response_url": self.slack.response_url(uuid.uuid4().hex),
            "trigger_id": f"{int(time.time())}.console.{uuid.uuid4().hex[:8]}",
        }
        response = await self._send(urlencode(form).encode(), "application/x-www-form-urlencoded")
        await self._show_answer(response)

    async def press(self, number: int) -> None:
        button = self.renderer.buttons.get(number)
        if button is None:
            self.say(f"(there is no button {number})")
            return
        if button.confirm:
            title = (button.confirm.get("title") or {}).get("text", "Are you sure?")
            text = (button.confirm.get("text") or {}).get("text", "")
            self.say(f"(dialog) {title} — {text} → confirmed")
        echoed = len(self.pagerduty.webhooks_sent)
        calls = len(self.pagerduty.calls)
        response = await self._send(
            urlencode({"payload": json.dumps(self._block_actions(button))}).encode(),
            "application/x-www-form-urlencoded",
        )
        await self.runtime.bot.background.wait_idle()
        if (
            len(self.pagerduty.calls) > calls
        ):  # the click reached PagerDuty: wait for the webhook it sends back
            with contextlib.suppress(TimeoutError):
                await self.pagerduty.wait_for_webhooks(echoed + 1, timeout=3.0)
        await self._show_answer(response)

    def _action(self, button: Button) -> dict[str, Any]:
        """What Slack sends for the press: a button's value, or a checkbox's new selection (toggled from what the
        message shows now)."""
        if button.option is None:
            return {
                "type": "button",
                "action_id": button.action_id,
                "block_id": button.block_id,
                "value": button.value,
                "text": {"type": "plain_text", "text": button.label},
                "action_ts": f"{time.time():.6f}",
            }
        current = self.renderer.buttons.get(button.number, button)
        return {
            "type": "checkboxes",
            "action_id": button.action_id,
            "block_id": button.block_id,
            "selected_options": [] if current.checked else [button.option],
            "action_ts": f"{time.time():.6f}",
        }

    def _block_actions(self, button: Button) -> dict[str, Any]:
        channel_id = button.channel or self.slack.channel_id(self.channel)
        message = self.slack.message(channel_id, button.message_ts) if button.message_ts else None
        return {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "console"},
            "user": {"id": self.user_id, "username": self.user_id.lower(), "team_id": TEAM_ID},
            "api_app_id": "A0CONSOLE",
            "token": "console",
            "container": {
                "type": "message",
                "message_ts": button.message_ts,
                "channel_id": channel_id,
                "is_ephemeral": button.message_ts is None,
            },
            "trigger_id": f"{int(time.time())}.console.{uuid.uuid4().hex[:8]}",
            "channel": {"id": channel_id, "name": self.slack.channel_name(channel_id).lstrip("#")},
            "message": {
                "ts": button.message_ts,
                "text": message.text if message else "",
                "blocks": message.blocks if message else [],
            },
            "response_url": self.slack.response_url(uuid.uuid4().hex),
            "actions": [self._action(button)],
        }

    async def _show_answer(self, response: httpx.Response | None) -> None:
        if response is None:
            pass
        elif response.status_code != 200:
            self.say(f"(the bot answered HTTP {response.status_code})")
        elif response.content:
            try:
                payload = response.json()
            except ValueError:
                payload = {"text": response.text}
            self.say(*self.renderer.render_ack(payload))
        await self.runtime.bot.background.wait_idle()
        await self._wait_for_delivery()
        await self.runtime.rollbacks.run_once()  # a confirmed rollback's steps, up to its first wait
        calls = self.slack.calls
        for call in calls[self._seen :]:
            self.say(*self.renderer.render_call(call))
        self._seen = len(calls)


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
