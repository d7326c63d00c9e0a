"""`mira-bot console`: chat with the real bot in a terminal, no Slack workspace needed.

The console starts the same runtime as `serve` (catalog, storage, Bolt app, HTTP server on a loopback port) and an
in-process recording Slack server as the Web API. What you type becomes a request signed exactly as Slack signs
it and sent to `/slack/events`; what the bot posts to the Web API is rendered as text with channel, thread
structure and numbered buttons (and checkboxes) you can press. `--script FILE` runs lines non-interactively and
prints the transcript (the README's transcript is produced this way and checked by a test).

The bot's clock is the console's, and so is the world's: `clock +10m` moves the bot's clock forward (it keeps
running from there), and with it the recording PagerDuty's (incidents, notes and webhooks are dated by it) and
the demo services' (their events and their database's `now()`); then it runs at once everything that became due —
the scheduler (the weekly handoff checklist and its reminders), a delivery pass (incident SLA nudges and
reminders, debounced edits, storm digests) and a rollback pass (expired requests, finished waits) — so no timer is
left behind. Every timer in the bot reads the one injected clock (`BotContext.clock`), which is this one.
Scheduled slots from before the session started are not caught up, so a console opened on a Monday morning does
not post the week's checklist by itself.

This module is the command interpreter (what one typed line does, and rendering what the bot posted); the
session around it (servers, settings, script or REPL) is :mod:`stand_ins.console_runner`, the `pd …` commands and
the demo's on-call rotation :mod:`stand_ins.console_pagerduty`, the clock :mod:`stand_ins.console_clock`, the
modals :mod:`stand_ins.console_modals`, `break` / `slow` / `mend` :mod:`stand_ins.console_demo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import time
import uuid
from typing import Any, TextIO
from urllib.parse import urlencode

import httpx

from bot.cron import CronSchedule
from bot.runtime import Runtime
from bot.server import RunningServer
from bot.signing import sign_slack_request
from handlers import incidents
from stand_ins.console_clock import ConsoleClock, clock_target
from stand_ins.console_demo import DemoConsoleCommands
from stand_ins.console_modals import ModalConsoleCommands, OpenModal
from stand_ins.console_pagerduty import PagerDutyConsoleCommands
from stand_ins.console_render import Button, ConsoleRenderer
from stand_ins.demo import DemoStandIns
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import TEAM_ID, RecordingSlackServer

CONSOLE_USER = "U0CONSOLE"
CONSOLE_CHANNEL = "#ops"
CONSOLE_PD_TOKEN = "console-pagerduty-token"
CONSOLE_HELP = """\
*Console*
  `/command args`   run a slash command as the current user, in the current channel
  `press 2.1`       press button 1 of message 2 (the number in the message's header; a dialog that asks for
                    confirmation is confirmed); a checkbox is ticked or unticked the same way
  `fill TEXT`, `fill N TEXT`
                    type into the open modal's input (N when it has several; a select takes an option's value)
  `submit`, `close` submit the open modal (the view_submission Slack sends) or cancel it
  `as U0ALICE`      act as another Slack user ID from now on
  `in #channel`     type in another channel from now on
  `pd trigger SERVICE "title"`, `pd ack N`, `pd resolve N`
                    a signed PagerDuty V3 webhook for incident N, through the real webhook route
  `clock monday 09:00`, `clock 17:00`, `clock +10m`
                    move every clock forward (the handoff's time zone) and run what became due: the handoff
                    checklist and reminders, SLA nudges, flag and rollback expiries, rollback waits
  `help`, `quit` (or Ctrl-D, Ctrl-C)"""
DEMO_HELP = """\
*Demo stand-ins*
  `break SERVICE`   its health checks answer 503 (`break fa`: FA's ALB check, `healthy_targets: 0`)
  `slow SERVICE`    its events turn slow: `/latency SERVICE 5m` shows BREACH (`slow ivy`)
  `mend SERVICE`, `mend all`
                    healthy and fast again (a restart or rollback hook of the service mends it too)
  services: mira-copilot, ivy-v2, ai-assistant, fa-ai-system (or their aliases: mira, ivy, assistant, fa)"""


class Console(PagerDutyConsoleCommands, ModalConsoleCommands, DemoConsoleCommands):
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
        stand_ins: DemoStandIns | None = None,
    ) -> None:
        self.runtime = runtime
        self.clock = clock or ConsoleClock()
        self.stand_ins = stand_ins
        self.demo = stand_ins is not None
        self.modals: list[OpenModal] = []
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
        self.show_new_calls()  # what the bot posted meanwhile (a timer, a webhook) comes before this line's answer
        word, _, rest = line.partition(" ")
        lowered = word.lower()
        if lowered in ("quit", "exit"):
            return False
        if lowered == "help":
            self.say(*self.renderer.blocks_to_lines(None, self.runtime.registry.help_text(), None, None))
            self.say(*self.renderer.blocks_to_lines(None, CONSOLE_HELP, None, None))
            if self.demo:
                self.say(*self.renderer.blocks_to_lines(None, DEMO_HELP, None, None))
        elif lowered == "as" and rest.strip():
            self.user_id = rest.strip().upper()
            self.say(f"(you are now {self.user_id})")
        elif lowered == "in" and rest.strip():
            self.channel = "#" + rest.strip().lstrip("#")
            self.say(f"(you are now typing in {self.channel})")
        elif lowered in ("press", "click"):
            await self.press(rest.strip())
        elif lowered == "fill":
            self.fill(rest)
        elif lowered == "submit":
            await self.submit()
        elif lowered in ("close", "cancel"):
            await self.close_modal()
        elif lowered in ("break", "slow", "mend"):
            await self.demo_command(lowered, rest)
        elif word.startswith("/"):
            await self.slash_command(word, rest)
        elif lowered == "pd":
            await self.pagerduty_command(rest)
        elif lowered == "clock":
            await self.clock_command(rest)
        else:
            self.say(f"(the console doesn't understand {shlex.quote(line)}; type help)")
        return True

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
            if self.stand_ins is not None:
                self._seed_demo_oncalls()
                await self.stand_ins.move_clock()
        local = self.clock().astimezone(zone)
        self.say(f"(the bot's clock is now {local:%a %d %b %H:%M} {local.tzname()})")
        await self.run_due()
        await self._show_answer(None)

    async def run_due(self) -> None:
        """Everything whose time has come by the bot's clock, now rather than at the workers' next poll: the
        scheduler's slots and sweeps, a delivery pass (SLA timers, debounced edits, digests) and a rollback pass
        (expiries, waits)."""
        await self.runtime.scheduler.run_due()
        await self.runtime.bot.background.wait_idle()
        await self.runtime.delivery.run_once()
        await self.runtime.rollbacks.run_once()

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

    async def press(self, number: str) -> None:
        message, dot, control = number.partition(".")
        if not (message.isdigit() and dot and control.isdigit()):
            self.say("(usage: press M.N — button N of message M, the number in the message's header)")
            return
        button = self.renderer.buttons.get(number)
        if button is None:
            known = sorted(
                (b for b in self.renderer.buttons.values() if b.number.split(".")[0] == message),
                key=lambda b: int(b.number.split(".")[1]),
            )
            hint = f"; message {message} has " + ", ".join(b.number for b in known) if known else ""
            self.say(f"(there is no button {number}{hint})")
            return
        if not self.renderer.on_screen(number):
            self.say(f"(button {number} is no longer on message {message}: an edit removed it)")
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
        self.show_new_calls()

    def show_new_calls(self) -> None:
        """Draw what reached Slack since the last look (and follow the modals it opened)."""
        calls = self.slack.calls
        for call in calls[self._seen :]:
            if call.method in ("views.open", "views.push", "views.update"):
                self.track_view(call)
            self.say(*self.renderer.render_call(call))
        self._seen = len(calls)
