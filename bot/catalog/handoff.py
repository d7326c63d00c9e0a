"""The weekly on-call handoff: its cron, checklist items and reminders (the runbooks' "Weekly Handoff
Checklist")."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bot.catalog.base import _Model
from bot.cron import CronSchedule

Evidence = Literal["incidents", "health", "alerts", "pagerduty_test", "runbook"]
_REMINDER = re.compile(
    r"^(\+(?P<hours>\d+)h(?P<minutes>\d+m)?|\+(?P<only_minutes>\d+)m|(?P<hh>[01]\d|2[0-3]):(?P<mm>[0-5]\d))$"
)


class ChecklistItem(_Model):
    """One line of the handoff checklist and the evidence the bot shows under it (none: a plain checkbox)."""

    text: str = Field(min_length=1)
    evidence: Evidence | None = None


def reminder_offset(spec: str) -> tuple[str, int]:
    """`+4h` → ("after", 240 minutes after the rotation); `17:00` → ("at", 1020 minutes after local midnight)."""
    match = _REMINDER.match(spec.strip())
    if match is None:
        raise ValueError(f"a reminder is +Nh, +NhMm, +Nm or HH:MM (local time), got {spec!r}")
    if match.group("hh") is not None:
        return "at", int(match.group("hh")) * 60 + int(match.group("mm"))
    if match.group("only_minutes") is not None:
        return "after", int(match.group("only_minutes"))
    extra = match.group("minutes")
    return "after", int(match.group("hours")) * 60 + (int(extra[:-1]) if extra else 0)


class Handoff(_Model):
    """The Mira runbook's weekly rotation (On-Call Rotation → Handoff Checklist).

    `service` is the service whose PagerDuty escalation policy (or schedule) rotates and whose routing key the
    "Test PagerDuty integration" button uses; unset, the service whose runbooks include `runbook`. `reminders` are
    `+4h` (after the rotation) or `17:00` (local time on the rotation's day, in `timezone`).
    """

    cron: str = "0 9 * * 1"
    timezone: str = "UTC"
    grace_minutes: int = Field(default=120, ge=1)
    checklist: list[ChecklistItem] = Field(min_length=1)
    runbook: str
    service: str | None = None
    reminders: list[str] = Field(default_factory=lambda: ["+4h", "17:00"])
    pagerduty_test_timeout_seconds: int = Field(default=120, ge=10, le=900)

    @field_validator("checklist", mode="before")
    @classmethod
    def _plain_items(cls, value: Any) -> Any:
        """A plain string is an item without evidence, as the runbook's markdown list has it."""
        if isinstance(value, list):
            return [{"text": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("reminders")
    @classmethod
    def _reminders(cls, value: list[str]) -> list[str]:
        for spec in value:
            reminder_offset(spec)
        if len(set(value)) != len(value):
            raise ValueError("reminders must be unique")
        return value

    @model_validator(mode="after")
    def _schedule(self) -> Handoff:
        CronSchedule(self.cron, self.timezone)
        return self
