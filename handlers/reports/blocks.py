"""Block Kit for a scheduled check: one message per slot.

A quiet day (every check passed) is one short line an on-call reads in the notification and scrolls past. A day
with a failure is the runbook's list: ✅ / ❌ per check with what was found and the limit, and under each ❌ the
buttons of the failing part (the service's `next_steps.down` for health, `latency_breach` for an SLO, the query's
next step for a diagnostic), then the runbook's "Action if Failed" (FA: "See Incident Response"). Figures may
quote a service's answer or a database value: outside text, escaped and clipped here (bot/mrkdwn.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot import mrkdwn
from bot.catalog import runbook_of, section_url
from handlers.next_steps import next_step_blocks
from handlers.reports.model import CheckLine, ReportRun

PASS = ":white_check_mark:"
FAIL = ":x:"
#: A line quotes at most this much of a service's answer; a section holds 3,000 characters.
FIGURE_CHARS = 600


def _local(run: ReportRun, moment: datetime) -> str:
    zone = run.report.timezone
    return f"{moment.astimezone(ZoneInfo(zone)):%a %d %b %H:%M} {zone}"


def late_note(run: ReportRun) -> str:
    return f" (late: due {_local(run, run.slot)})" if run.late else ""


def _line(line: CheckLine) -> str:
    limit = f" (limit: {mrkdwn.outside(line.limit, 200)})" if line.limit else ""
    figure = mrkdwn.outside(line.figure, FIGURE_CHARS)
    return f"{PASS if line.passed else FAIL} *{mrkdwn.escape(line.label)}* — {figure}{limit}"


def quiet_text(run: ReportRun) -> str:
    """Every check passed: one line with the figures."""
    shorts = " · ".join(mrkdwn.outside(line.short, 80) for line in run.lines if line.short)
    text = f"{PASS} *{run.report.title}*{late_note(run)}: all {len(run.lines)} checks passed"
    return f"{text} · {shorts}" if shorts else text


def failure_text(run: ReportRun) -> str:
    """The notification of a failing report: which checks failed."""
    labels = ", ".join(line.label for line in run.failed)
    return (
        f"{FAIL} {run.report.title}{late_note(run)}: {len(run.failed)} of {len(run.lines)} checks failed "
        f"({mrkdwn.clip(mrkdwn.escape(labels), 500)})"
    )


def _runbook_context(run: ReportRun) -> str:
    section = run.report.runbook
    url = section_url(run.service.runbooks, section)
    runbook = runbook_of(run.service.runbooks, section)
    name = (
        f"<{url}|{section.section}>"
        if url
        else f"`{runbook.file if runbook else 'runbook'}` § {section.section}"
    )
    parts = [f"Runbook: {name}", f"`{run.report.name}` due {_local(run, run.slot)}"]
    if run.late:
        parts.append(f"run {_local(run, run.ran_at)}")
    if run.failed and run.thread_queries:
        parts.append("diagnostics in the thread")
    return " · ".join(parts)


def render_report(run: ReportRun) -> tuple[str, list[dict[str, Any]]]:
    """(notification text, blocks); a quiet day has no blocks: its text is the message."""
    if not run.failed:
        return quiet_text(run), []
    head = (
        f"*{run.report.title}*{late_note(run)} — {FAIL} {len(run.failed)} of {len(run.lines)} checks failed "
        f"({run.service.display_name})"
    )
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    for number, line in enumerate(run.lines, start=1):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _line(line)}})
        if not line.passed and line.steps:
            blocks.extend(next_step_blocks(run.service, list(line.steps), key=f"{run.report.name}.{number}"))
    if run.report.action is not None:
        action = run.report.action
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"*Action if failed:* {action.title}"}],
            }
        )
        blocks.extend(next_step_blocks(run.service, [action], key=f"{run.report.name}.action"))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _runbook_context(run)}]})
    return failure_text(run), blocks
