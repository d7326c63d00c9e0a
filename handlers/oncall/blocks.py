"""Block Kit for /oncall: who is on call now per service, and the status of this week's handoff checklist.

Rendering only: the roster and the checklist come in as data (bot/oncall_roster.py, handlers/handoff), so
tests can render them on their own; the roster's wording (times, people, escalation paths) is in roster_text.py,
shared with the handoff. People are Slack mentions when PagerDuty's email matched a Slack user, else their
PagerDuty name. PagerDuty names and PagerDuty's error words are outside text, escaped (bot/mrkdwn.py);
catalog wording (services, escalation levels, checklist items) is shown as written.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from bot import mrkdwn
from handlers.oncall.roster_text import escalation_path, people, when

if TYPE_CHECKING:
    from bot.oncall_roster import Roster
    from handlers.handoff import HandoffRecord


def _level_name(level: int) -> str:
    if level == 1:
        return "Primary"
    if level == 2:
        return "Secondary"
    return f"Level {level}"


def _roster_line(roster: Roster, now: datetime) -> str:
    service = roster.service
    head = f"*{service.display_name}*"
    if roster.problem:
        return f"{head} — :white_circle: unknown ({mrkdwn.escape(roster.problem)})"
    covering = roster.at(now)
    if not covering:
        return f"{head} — :warning: PagerDuty has nobody on call ({mrkdwn.escape(roster.source)})"
    parts = []
    for level in sorted({e.level for e in covering}):
        at_level = [e for e in covering if e.level == level]
        ends = [e.end for e in at_level if e.end is not None]
        until = f" (until {when(min(ends))})" if ends and level == 1 else ""
        parts.append(f"{_level_name(level)} {people(at_level)}{until}")
    return f"{head} — " + " · ".join(parts)


def render_now(rosters: list[Roster], now: datetime) -> tuple[str, list[dict[str, Any]]]:
    """/oncall: one section per service with who is on call and the runbook's escalation path."""
    summary = []
    for roster in rosters:
        primary = roster.at(now, level=1) if not roster.problem else []
        summary.append(f"{roster.service.display_name} {people(primary) if primary else 'unknown'}")
    text = "On call now: " + " · ".join(summary)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*On call now* ({when(now)})"}}
    ]
    for roster in rosters:
        lines = [_roster_line(roster, now), f"_Escalation path:_ {escalation_path(roster.service)}"]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "From PagerDuty's on-calls and the runbooks' escalation paths · "
                    "`/oncall checklist` shows this week's handoff",
                }
            ],
        }
    )
    return text, blocks


def render_checklist_status(
    record: HandoffRecord, link: str | None, zone: tzinfo
) -> tuple[str, list[dict[str, Any]]]:
    """/oncall checklist: progress, each item with who ticked it, and a link to the message."""
    done = len(record.ticks)
    total = len(record.items)
    head = f"Handoff checklist for the rotation of {when(record.rotation, zone)}: {done}/{total} done"
    if record.complete:
        head += " :white_check_mark:"
    lines = []
    for number in record.numbers:
        tick = record.ticks.get(number)
        mark = ":ballot_box_with_check:" if tick else ":white_large_square:"
        by = f" — <@{tick.by}> {when(tick.at, zone)}" if tick else ""
        lines.append(f"{mark} {number}. {record.text_of(number)}{by}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
    ]
    where = mrkdwn.link(link, "Open the checklist", trusted_label=True) if link else "The checklist"
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{where} in {record.channel} to tick items"}],
        }
    )
    return head, blocks
