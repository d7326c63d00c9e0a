"""What an incident thread shows: the view of an incident and its timeline entries, beside neither the threads
(threads.py) nor their rendering (blocks.py), which both import this and never each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.catalog import Service


@dataclass(frozen=True)
class IncidentView:
    """What the root shows, from the incident's newest snapshot."""

    id: str
    number: int | None
    title: str
    status: str | None
    urgency: str | None
    priority: str | None
    service_name: str
    assignees: tuple[str, ...]
    escalation_policy: str | None
    conference_url: str | None
    conference_number: str | None
    html_url: str | None
    triggered_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    service: Service | None


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the post-mortem's timeline; `text` is mrkdwn, its outside words already escaped."""

    at: datetime
    text: str


class RetryLater(Exception):
    """Another worker holds a claim that is not stale yet; the event stays pending and is tried again."""


class InGroup(Exception):
    """The event's line is part of a timeline reply (coalesce.py) led by `lead`: posted, or looked up, as that."""

    def __init__(self, lead: str) -> None:
        super().__init__(f"part of the timeline reply {lead}")
        self.lead = lead
