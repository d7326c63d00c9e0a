"""Incident lifecycles as PagerDuty sends them, each event carrying a token that shows where it reached Slack.

An incident of a lifecycle benchmark gets five events, in this order: triggered, acknowledged, annotated,
escalated, resolved (README, PagerDuty incidents: each becomes a line of its thread). Every event carries its own
token `EV<number>K<step>` in the one piece of outside text its line shows — the title (triggered), the
acknowledging agent's name, the note, the new assignee's name (escalated), the resolving agent's name — so the
recording Slack server's calls tell, without asking the bot, which event reached which message (bench/slack_view.py).

The requests go out wave by wave (every incident's trigger, then every acknowledgement, …) and each one waits
until the same incident's previous event has been answered, so an incident's events reach the bot in order
whatever the rate and the concurrency: `after[i]` is the index of the request that must be answered first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.signing import sign_pagerduty_webhook
from stand_ins import pagerduty_payloads as pd

STEPS = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.annotated",
    "incident.escalated",
    "incident.resolved",
)
RESOLVED_STEP = len(STEPS) - 1
TOKEN = re.compile(r"EV(\d+)K(\d+)")
ON_CALL = ("PBENCHU1", "Bench On-call", "oncall@bench.example")


def token(number: int, step: int) -> str:
    return f"EV{number}K{step}"


@dataclass(frozen=True)
class LifecycleRequest:
    number: int
    step: int
    event_id: str
    body: bytes
    headers: dict[str, str]
    after: int  # index of the request that must be answered first, -1 for none


def _snapshot(spec: dict[str, Any], number: int, step: int, created: datetime) -> dict[str, Any]:
    services = spec["services"]
    service_id, service_name = services[(number - int(spec["number_start"])) % len(services)]
    assignees = (
        [ON_CALL] if step < 3 else [("PBENCHU2", f"Escalated {token(number, 3)}", "esc@bench.example")]
    )
    status = "triggered" if step == 0 else ("resolved" if step == RESOLVED_STEP else "acknowledged")
    return pd.incident(
        id=f"{spec['prefix']}{number:06d}",
        number=number,
        title=f"{spec.get('title', 'Upstream dependency down')} {token(number, 0)}",
        status=status,
        service_id=service_id,
        service_name=service_name,
        assignees=assignees,
        created_at=created,
    )


def _payload(spec: dict[str, Any], number: int, step: int, created: datetime) -> dict[str, Any]:
    incident = _snapshot(spec, number, step, created)
    kind = STEPS[step]
    event_id = f"{incident['id']}-{kind.removeprefix('incident.')}"
    extra: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": created + timedelta(milliseconds=step),  # PagerDuty's order is the events' order
    }
    if step in (1, 4):
        extra["agent"] = (f"PBENCHA{step}", f"Agent {token(number, step)}", "agent@bench.example")
    if step == 2:
        extra["agent"] = ON_CALL
        extra["content"] = f"Looking into it ({token(number, step)})"
    return pd.event(kind, incident, **extra)


def lifecycle_requests(spec: dict[str, Any]) -> list[LifecycleRequest]:
    """`spec`: incidents, number_start, prefix, secret, services ([[service id, name], …], round robin), title."""
    incidents = int(spec["incidents"])
    first = int(spec["number_start"])
    created = datetime.now(UTC)
    requests: list[LifecycleRequest] = []
    for step in range(len(STEPS)):
        for offset in range(incidents):
            number = first + offset
            payload = _payload(spec, number, step, created)
            body = pd.body(payload)
            event_id = payload["event"]["id"]
            headers = {
                "Content-Type": "application/json",
                "X-Webhook-Id": event_id,
                **sign_pagerduty_webhook(spec["secret"], body),
            }
            after = (step - 1) * incidents + offset if step else -1
            requests.append(LifecycleRequest(number, step, event_id, body, headers, after))
    return requests
