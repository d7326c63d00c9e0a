"""Next steps: what the runbook says to do when a service breaches an SLO, is down, or has an incident.

A step is either a command the bot runs as if the clicking engineer had typed it (`/flag preset ivy-v2 emergency`,
`/rollback ivy-v2 immediate`, `/restart ai-assistant`) or a link to a runbook section. They are catalog data, so
the buttons under `/latency`, `/health` and an incident's root say what the service's own runbook says, and a
reviewer checks them against the runbook line by line.

The commands are checked when the catalog loads (step_checks.py, called by `Catalog`), so a button never
offers a preset or a plan that does not exist: the registry that runs them is not known here, so the check covers
what the catalog itself can answer (services, presets, plans, flags) and which commands a step may name.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from bot.catalog.base import RunbookRef, _Model, missing_env

_ANCHOR_DROP = re.compile(r"[^\w\- ]", re.UNICODE)


class RunbookSection(_Model):
    """A section of one of the service's runbooks: its heading as written (`🚨 Critical Alerts`) and the file
    (default: the service's first runbook). `anchor` overrides the GitHub-style anchor made from the heading."""

    section: str
    file: str | None = None
    anchor: str | None = None


class NextStep(_Model):
    """One button: `title` is its label; it runs `command`, or opens `runbook`'s section.

    `metrics`, `kinds` and `probes` narrow when it is offered (empty: always): a latency step for the metrics
    (p95, error_rate) and query kinds (rag) that breached, a down step for the probes that failed."""

    title: str = Field(min_length=1, max_length=75)  # Slack: a button's text is at most 75 characters
    command: str | None = None
    runbook: RunbookSection | None = None
    metrics: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    probes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_target(self) -> NextStep:
        if (self.command is None) == (self.runbook is None):
            raise ValueError("a next step needs exactly one of `command` or `runbook`")
        if self.command is not None and not self.command.startswith("/"):
            raise ValueError(f"a next step's command starts with `/`, got {self.command!r}")
        return self


class NextSteps(_Model):
    """The runbook's next steps by situation. Slack shows at most 25 buttons in a row; five keep it readable."""

    latency_breach: list[NextStep] = Field(default_factory=list, max_length=5)
    down: list[NextStep] = Field(default_factory=list, max_length=5)
    incident: list[NextStep] = Field(default_factory=list, max_length=5)

    def all(self) -> list[NextStep]:
        return [*self.latency_breach, *self.down, *self.incident]

    def for_breach(self, metrics: set[str], kind: str | None) -> list[NextStep]:
        """The latency steps for what breached: those naming one of `metrics` (or none), and `kind` (or none)."""
        return [
            step
            for step in self.latency_breach
            if (not step.metrics or metrics & set(step.metrics)) and (not step.kinds or kind in step.kinds)
        ]

    def for_down(self, probes: set[str]) -> list[NextStep]:
        """The down steps for the probes that failed: those naming one of them, or none."""
        return [step for step in self.down if not step.probes or probes & set(step.probes)]


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation and emoji dropped, spaces → hyphens
    (`🚨 Critical Alerts` → `-critical-alerts`, as GitHub renders it)."""
    return _ANCHOR_DROP.sub("", heading.strip().lower()).replace(" ", "-")


def runbook_of(runbooks: list[RunbookRef], section: RunbookSection) -> RunbookRef | None:
    if section.file is None:
        return runbooks[0] if runbooks else None
    return next((runbook for runbook in runbooks if runbook.file == section.file), None)


def section_url(runbooks: list[RunbookRef], section: RunbookSection) -> str | None:
    """The section's link: the runbook's `url` (an unset `${VAR}` is no link) with the heading's anchor."""
    runbook = runbook_of(runbooks, section)
    if runbook is None or not runbook.url or missing_env(runbook.url):
        return None
    base = runbook.url.split("#", 1)[0]
    return f"{base}#{section.anchor or anchor(section.section)}"


def check_step_runbook(runbooks: list[RunbookRef], step: NextStep) -> str | None:
    assert step.runbook is not None
    if runbook_of(runbooks, step.runbook) is None:
        return f"next step {step.title!r} names runbook {step.runbook.file or '(first)'}, which the service lacks"
    return None
