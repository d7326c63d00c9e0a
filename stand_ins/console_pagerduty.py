"""The console's PagerDuty: `pd trigger|ack|resolve` webhooks and the demo's on-call rotation.

Split from :mod:`stand_ins.console` (the command interpreter) because these commands play PagerDuty rather than
Slack: `pd …` builds what PagerDuty would send, signs it with the webhook secret and posts it through the bot's
real webhook route, and the demo's rotation (Alice hands over to Bob, Carol secondary, Dana the manager, on each
service's escalation policy) is what the in-process recording PagerDuty answers `GET /oncalls` with. :class:`PagerDutyConsoleCommands` is a mixin of
:class:`stand_ins.console.Console`, which owns the session state it reads.
"""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from bot.cron import CronSchedule
from bot.runtime import Runtime
from bot.signing import sign_pagerduty_webhook
from stand_ins import pagerduty_payloads as payloads
from stand_ins.console_clock import ConsoleClock
from stand_ins.recording_pagerduty import RecordingPagerDutyServer, oncall_entry

# The demo's PagerDuty: Mira's escalation policy and Events API routing key, so the handoff names on-calls and its
# "Test PagerDuty integration" button goes round the loop through the in-process PagerDuty.
DEMO_PAGERDUTY_ENV = {
    "MIRA_PD_ESCALATION_POLICY": "PEPDEMOMIRA",
    "MIRA_PD_ROUTING_KEY": "demo0routing0key0for0mira0copilt",
    "IVY_PD_ESCALATION_POLICY": "PEPDEMOIVY",
    "AI_ASSISTANT_PD_ESCALATION_POLICY": "PEPDEMOASSIST",
    "FA_PD_ESCALATION_POLICY": "PEPDEMOFA",
}
#: The other services' policies: the same people cover them in the demo (Bob primary after the handover).
_OTHER_POLICIES = (
    ("PEPDEMOIVY", "Ivy v2"),
    ("PEPDEMOASSIST", "AI Assistant"),
    ("PEPDEMOFA", "FA AI System"),
)
DEMO_ONCALLS = (  # (PagerDuty id, name, email, Slack id): outgoing and incoming primary, secondary, manager
    ("PDEMOALI", "Alice (AI Squad)", "alice@demo.example", "U0ALICE"),
    ("PDEMOBOB", "Bob (AI Squad)", "bob@demo.example", "U0BOB"),
    ("PDEMOCAR", "Carol (Backend Team)", "carol@demo.example", "U0CAROL"),
    ("PDEMODAN", "Dana (Engineering Manager)", "dana@demo.example", "U0DANA"),
)


class PagerDutyConsoleCommands:
    """`pd …` and the demo rotation, for :class:`stand_ins.console.Console`."""

    runtime: Runtime
    clock: ConsoleClock
    pagerduty: RecordingPagerDutyServer
    webhook_secret: str
    _incidents: dict[int, dict[str, Any]]
    _client: httpx.AsyncClient

    if TYPE_CHECKING:  # provided by Console

        def say(self, *lines: str) -> None: ...

        async def _show_answer(self, response: httpx.Response | None) -> None: ...

    async def pagerduty_command(self, rest: str) -> None:
        """`pd trigger SERVICE "title"`, `pd ack N`, `pd resolve N`: what PagerDuty would send, signed, through
        the real webhook route; the delivery worker then posts it like any other webhook."""
        try:
            args = shlex.split(rest)
        except ValueError as exc:
            self.say(f"(could not read that: {exc})")
            return
        now = self.clock()  # PagerDuty's clock is the console's: the SLA timers count from here
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
            person: tuple[str, str, str, str],
            level: int,
            start: datetime | None,
            end: datetime | None,
            on: tuple[str, str] = policy,
        ) -> dict[str, Any]:
            return oncall_entry(
                (person[0], person[1]),
                escalation_policy=on,
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
                *(
                    item
                    for other in _OTHER_POLICIES
                    for item in (
                        entry(alice, 1, rotation - week, rotation, other),
                        entry(bob, 1, rotation, rotation + week, other),
                        entry(carol, 2, None, None, other),
                        entry(dana, 3, None, None, other),
                    )
                ),
            ]
        )
