"""SLO objectives with their latency sources, and rollback plans with their steps (the runbooks' SLO and
rollback sections)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.catalog.base import Owners, _http_url, _Model
from bot.catalog.flags import FlagValue

# --- latency and SLOs ---------------------------------------------------------------------------------------


class LatencySource(_Model):
    """A read-only query on the service's own events table (the runbooks' hand-typed PERCENTILE_CONT SQL)."""

    kind: Literal["postgres"] = "postgres"
    dsn: str
    table: str
    latency_column: str = "latency_ms"
    time_column: str = "created_at"
    filters: dict[str, str] = Field(default_factory=dict)
    kind_column: str | None = None
    success_column: str | None = None
    statement_timeout_s: float = Field(default=5.0, gt=0, le=60)


class Objective(_Model):
    """One SLO threshold. `limit` is in ms for percentiles and in percent for error_rate.

    `strict` reads the runbook's "<" (the value must stay below the limit) versus "≤"; `warn` marks WARN between
    warn and limit (AI Assistant's 5–10 s band).
    """

    metric: Literal["p50", "p95", "p99", "error_rate"]
    limit: float = Field(gt=0)
    warn: float | None = None
    strict: bool = False
    kind: str | None = None
    source: str = ""


# --- rollback -----------------------------------------------------------------------------------------------


class DeployHook(_Model):
    kind: Literal["github_workflow", "webhook"]
    url: str
    secret_env: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    status_url: str | None = None
    timeout_s: float = Field(default=600, gt=0)
    poll_s: float = Field(default=5, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class RollbackStep(_Model):
    """One step of a plan. `wait` only lets time pass (a service starting); `watch` checks health every minute
    and the SLOs over its `minutes`; `verify` polls health every `every_s` seconds until it is ok, for up to
    `within_s` seconds (0: one check), so a check after a restart hook gives the service time to come back;
    `manual` is done by a person, shown with its `instruction`, and signed off in the thread."""

    kind: Literal["flag", "deploy", "verify", "wait", "watch", "manual"]
    title: str
    flags: dict[str, FlagValue | None] = Field(default_factory=dict)
    rollout_stage: str | None = None
    hook: DeployHook | None = None
    minutes: float | None = None
    within_s: float = Field(default=0, ge=0, le=3600)
    every_s: float = Field(default=5, gt=0, le=300)
    instruction: str | None = None
    approver: str | None = None  # who signs off a manual step, in words ("DBA")
    approvers: Owners = Field(default_factory=Owners)  # who may tick it; the service's owners when empty
    warning: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> RollbackStep:
        if self.kind == "flag" and not (self.flags or self.rollout_stage):
            raise ValueError("a flag step needs `flags` or `rollout_stage`")
        if self.kind == "deploy" and self.hook is None:
            raise ValueError("a deploy step needs a `hook`")
        if self.kind in ("wait", "watch") and not self.minutes:
            raise ValueError(f"a {self.kind} step needs `minutes`")
        if self.kind == "manual" and not self.approver:
            raise ValueError("a manual step needs an `approver`")
        return self


class RollbackPlan(_Model):
    """A service's `rollback_plans` (two people under the two-person rule) or its `restart_plan` (the runbooks'
    Level-1 restart: one Confirm by an owner or the primary on-call)."""

    name: str
    description: str
    steps: list[RollbackStep] = Field(min_length=1)
