"""What a scheduled check decides and its blocks render: one line per check and the report they make, beside
neither, so the evaluation (evaluate.py) and the rendering (blocks.py) import this and never each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.catalog import NextStep, Service
from bot.catalog.reports import Report


@dataclass(frozen=True)
class CheckLine:
    """One check's outcome. `figure` is what was found and `limit` what the runbook expects (both plain text:
    they may quote a service's answer or a database value, escaped when rendered); `short` is the figure for a
    quiet day's one line; `steps` the runbook's next steps for a failing check (the failing part's buttons)."""

    label: str
    passed: bool
    figure: str
    limit: str = ""
    short: str = ""
    steps: tuple[NextStep, ...] = ()


@dataclass(frozen=True)
class ReportRun:
    """A report evaluated for one slot; `late` when it ran well after its slot (the bot was down then)."""

    service: Service
    report: Report
    slot: datetime
    ran_at: datetime
    lines: tuple[CheckLine, ...]
    late: bool = False
    thread_queries: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> list[CheckLine]:
        return [line for line in self.lines if not line.passed]
