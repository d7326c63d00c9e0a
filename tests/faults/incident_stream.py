"""PagerDuty traffic for the fault tests, and what Slack must show for it afterwards.

`incident_stream` builds the lifecycle of many incidents as signed-ready V3 webhooks, interleaved the way a busy
PagerDuty account sends them. `check_slack` reads the recording Slack server's *state* (what a person would see
in the channels, after every retry) and checks the promises: every accepted event is shown, each incident has
exactly one root per channel, no reply appears twice, and (optionally) each thread is in event order. Messages
are identified by the metadata the bot attaches to them, and counted by text too, so a duplicate posted without
metadata would still be caught.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stand_ins.recording_slack import BOT_USER_ID, RecordingSlackServer, StoredMessage
from tests import pd_payloads as pd

CHANNELS = ("#mira-copilot-alerts", "#incidents")  # the bundled catalog's channels for Mira Co-Pilot
ALICE = ("PUSER01", "Alice Example", "alice@example.com")
STEPS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("incident.triggered", "triggered", {}),
    ("incident.acknowledged", "acknowledged", {"agent": ALICE}),
    ("incident.annotated", "acknowledged", {"agent": ALICE, "content": "Rolled back agent-chat"}),
    ("incident.priority_updated", "acknowledged", {"agent": ALICE}),
    ("incident.resolved", "resolved", {"agent": ALICE}),
)


@dataclass(frozen=True)
class Event:
    event_id: str
    incident_id: str
    event_type: str
    occurred_at: datetime
    body: bytes


def incident_id(n: int) -> str:
    return f"PFLT{n:04d}"


def incident_stream(
    incidents: int, *, steps: int = len(STEPS), first: int = 0, start: datetime | None = None
) -> list[Event]:
    """`incidents` × `steps` events (incidents numbered from `first`): step 1 of every incident, then step 2 of
    every incident, and so on. Occurred a few minutes ago, so no SLA timer falls due while a test runs."""
    start = start or datetime.now(UTC) - timedelta(minutes=3)
    events = []
    for step, (event_type, status, extra) in enumerate(STEPS[:steps]):
        for n in range(first, first + incidents):
            ident = incident_id(n)
            inc = pd.incident(
                id=ident,
                number=1000 + n,
                title=f"Edge function 503s in shard {n}",
                status=status,
                priority="P1" if step >= 3 else "P3",
                created_at=start,
            )
            occurred = start + timedelta(seconds=step * 10 + n * 0.01)
            event_id = f"{ident}-{step}"
            events.append(
                Event(
                    event_id,
                    ident,
                    event_type,
                    occurred,
                    pd.body(pd.event(event_type, inc, occurred_at=occurred, event_id=event_id, **extra)),
                )
            )
    return events


def _metadata(message: StoredMessage) -> tuple[str | None, dict[str, Any]]:
    metadata = message.metadata or {}
    return metadata.get("event_type"), metadata.get("event_payload") or {}


def bot_messages(slack: RecordingSlackServer, channel: str) -> list[StoredMessage]:
    return [
        m
        for m in slack.messages(channel)
        if m.user == BOT_USER_ID and m.ephemeral_to is None and not m.deleted
    ]


def roots_by_incident(slack: RecordingSlackServer, channel: str) -> dict[str, list[StoredMessage]]:
    found: dict[str, list[StoredMessage]] = {}
    for message in bot_messages(slack, channel):
        kind, payload = _metadata(message)
        if message.thread_ts is None and kind == "mira_incident_root":
            found.setdefault(payload["incident_id"], []).append(message)
    return found


def check_slack(slack: RecordingSlackServer, accepted: list[Event], *, in_order: bool = False) -> None:
    """Every event in `accepted` is shown in each channel, nothing twice (and, with `in_order`, each thread's
    replies in the order the events occurred)."""
    by_incident: dict[str, list[Event]] = {}
    for event in accepted:
        by_incident.setdefault(event.incident_id, []).append(event)
    for channel in CHANNELS:
        messages = bot_messages(slack, channel)
        top_level = [m for m in messages if m.thread_ts is None]
        strays = [m.text for m in top_level if _metadata(m)[0] != "mira_incident_root"]
        assert strays == [], f"{channel}: top-level posts that are not incident roots: {strays[:5]}"
        roots = roots_by_incident(slack, channel)
        doubled = {ident: len(found) for ident, found in roots.items() if len(found) > 1}
        assert doubled == {}, f"{channel}: incidents with more than one root: {doubled}"
        texts = Counter(m.text for m in top_level)
        assert [t for t, n in texts.items() if n > 1] == [], f"{channel}: a root text posted twice"
        missing_roots = sorted(set(by_incident) - set(roots))
        assert missing_roots == [], f"{channel}: incidents without a root: {missing_roots[:10]}"
        for ident, events in by_incident.items():
            [root] = roots[ident]
            thread = slack.thread(channel, root.ts)
            keys = Counter(_metadata(m)[1].get("key") for m in thread)
            twice = [key for key, n in keys.items() if n > 1]
            assert twice == [], f"{channel}: replies posted twice in the thread of {ident}: {twice}"
            reply_texts = Counter(m.text for m in thread)
            assert [t for t, n in reply_texts.items() if n > 1] == [], (
                f"{channel}: {ident}: a reply text twice"
            )
            expected = [e.event_id for e in sorted(events, key=lambda e: e.occurred_at)]
            expected = [key for key in expected if not key.endswith("-0")]  # the trigger is the root itself
            shown = [_metadata(m)[1].get("key") for m in thread]
            absent = [key for key in expected if key not in shown]
            assert absent == [], f"{channel}: {ident}: events accepted but not shown: {absent}"
            if in_order:
                order = [key for key in shown if key in expected]
                assert order == expected, f"{channel}: {ident}: thread out of order: {order}"
