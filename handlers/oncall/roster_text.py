"""How the on-call roster reads in Slack: times, durations, people and the runbook's escalation path.

Shared by /oncall and the weekly handoff (through `handlers.oncall`), so both say "Mon 23 Nov 09:00 UTC" and
"AI Squad (primary on-call) → …" the same way. Plain text in, plain text out: nothing here imports the handoff.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from bot import mrkdwn
from bot.catalog import Service

if TYPE_CHECKING:
    from bot.oncall_roster import OnCall


def when(moment: datetime, zone: tzinfo = UTC) -> str:
    """`Mon 23 Nov 09:00 UTC` in `zone` (the handoff's time zone), the way an on-call reads a rotation."""
    local = moment.astimezone(zone)
    return f"{local:%a %d %b %H:%M} {local.tzname() or 'UTC'}"


def duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def _minutes(value: int) -> str:
    if value < 60 or value % 60:
        return f"{value} min"
    return f"{value // 60} h"


def escalation_path(service: Service) -> str:
    """The runbook's escalation path: `AI Squad (primary on-call) → Backend Team (secondary on-call) · 15 min →
    Engineering Manager · 1 h`; FA: `Primary on-call · 15 min → Secondary on-call · 30 min → …`."""
    steps = []
    for level in service.escalation.levels:
        step = level.name + (f" · {_minutes(level.after_minutes)}" if level.after_minutes else "")
        if level.contact:
            step += f" ({_contact(level.contact)})"
        steps.append(step)
    return " → ".join(steps)


def _contact(contact: str) -> str:
    return (
        f"<@{contact}>" if contact[:1] in ("U", "W") and contact.isalnum() and contact.isupper() else contact
    )


def people(entries: list[OnCall] | list[dict[str, Any]]) -> str:
    """Mentions, joined; entries are `OnCall` objects or their stored JSON."""
    names = []
    for entry in entries:
        if isinstance(entry, dict):
            names.append(
                f"<@{entry['slack_id']}>"
                if entry.get("slack_id")
                else mrkdwn.escape(entry.get("name") or "?")  # a PagerDuty name is outside text
            )
        else:
            names.append(entry.mention)
    return ", ".join(dict.fromkeys(names)) or "nobody"
