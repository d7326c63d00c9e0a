"""The recording PagerDuty's records: a user and an incident as the store keeps them.

Apart from the store (:mod:`stand_ins.pagerduty_store`) so that the webhook sender, which renders an incident, and
the store, which holds them, both use them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class _User:
    id: str
    name: str
    email: str


@dataclass
class _Incident:
    id: str
    number: int
    title: str
    service_id: str
    service_name: str
    status: str
    urgency: str
    assignees: list[_User]
    incident_key: str
    created_at: str
    escalation_policy: tuple[str, str]
    teams: list[tuple[str, str]]
    priority: tuple[str, str] | None
    conference_bridge: dict[str, Any] | None
    routing_key: str | None = None
    acknowledgements: list[tuple[str, _User]] = field(default_factory=list)
    last_status_change_at: str = ""
    last_status_change_by: dict[str, Any] | None = None
    resolution: str | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)
    #: Where in its escalation policy the incident is (PagerDuty keeps it; its incident object does not show it).
    escalation_level: int = 1
