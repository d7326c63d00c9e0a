"""A service: its owners, channels, runbook, probes, flags, objectives, plans, escalation path and scheduled
checks."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field, field_validator, model_validator

from bot.catalog.base import _SLUG, Channels, Owners, RunbookRef, _Model
from bot.catalog.diagnostics import Diagnostics
from bot.catalog.flags import Flag, FlagStore, Preset, Rollout
from bot.catalog.next_steps import NextStep, NextSteps, check_step_runbook, runbook_of
from bot.catalog.operations import LatencySource, Objective, RollbackPlan
from bot.catalog.probes import Probe
from bot.catalog.reports import Report, check_reports

# --- escalation and on-call ---------------------------------------------------------------------------------


class EscalationLevel(_Model):
    name: str
    after_minutes: int = Field(ge=0)
    contact: str | None = None


class PagerDutyRefs(_Model):
    service_ids: list[str] = Field(default_factory=list)
    escalation_policy_id: str | None = None
    schedule_id: str | None = None
    events_routing_key: str | None = None


class Escalation(_Model):
    levels: list[EscalationLevel] = Field(min_length=1)
    ack_within_minutes: int = 15
    resolve_within_minutes: int = 60


class PostMortem(_Model):
    """What the service's runbook asks once an incident is resolved, quoted on the post-mortem draft: the section
    (`section`) of one of its runbooks (`runbook`, a file of `runbooks`; unset, the first), its steps as written,
    and the deadline it sets for the post-mortem (`within_hours`; FA's P0 "Schedule post-mortem within 48 hours"),
    which also times the reminder. A service without one gets the bot's default wording and reminder."""

    runbook: str | None = None
    section: str
    steps: list[str] = Field(min_length=1)
    within_hours: int | None = Field(default=None, gt=0)


class Service(_Model):
    name: str
    display_name: str
    aliases: list[str] = Field(default_factory=list)
    production: bool = True
    owners: Owners = Field(default_factory=Owners)
    channels: Channels = Field(default_factory=Channels)
    runbooks: list[RunbookRef] = Field(default_factory=list)
    probes: list[Probe] = Field(default_factory=list)
    flags: list[Flag] = Field(default_factory=list)
    flag_store: FlagStore | None = None
    presets: list[Preset] = Field(default_factory=list)
    rollout: Rollout | None = None
    latency: LatencySource | None = None
    objectives: list[Objective] = Field(default_factory=list)
    rollback_plans: list[RollbackPlan] = Field(default_factory=list)
    restart_plan: RollbackPlan | None = None
    rollback_expires_minutes: int = Field(default=15, gt=0)
    two_person_rule: bool | None = None
    escalation: Escalation
    pagerduty: PagerDutyRefs = Field(default_factory=PagerDutyRefs)
    next_steps: NextSteps = Field(default_factory=NextSteps)
    postmortem: PostMortem | None = None
    diagnostics: Diagnostics | None = None
    reports: list[Report] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("expected a lowercase slug like mira-copilot")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Service:
        flag_names = {flag.name for flag in self.flags}
        if len(flag_names) != len(self.flags):
            raise ValueError("flag names must be unique within a service")
        probe_names = [probe.name for probe in self.probes]
        if len(set(probe_names)) != len(probe_names):
            raise ValueError("probe names must be unique within a service")
        if any(flag.backend == "postgres_table" for flag in self.flags) and self.flag_store is None:
            raise ValueError("postgres_table flags need a `flag_store`")
        referenced: list[tuple[str, Iterable[str]]] = [(f"preset {p.name}", p.values) for p in self.presets]
        referenced += [
            (f"rollback plan {plan.name}", step.flags) for plan in self.all_plans for step in plan.steps
        ]
        referenced += [(f"flag {flag.name} see_also", flag.see_also) for flag in self.flags]
        if self.rollout:
            referenced += [(f"rollout stage {name}", values) for name, values in self.rollout.stages.items()]
            referenced.append(("rollout", [self.rollout.flag]))
        for where, names in referenced:
            for name in names:
                if name not in flag_names:
                    raise ValueError(f"{where} names unknown flag {name}")
        for plan in self.all_plans:
            for step in plan.steps:
                if step.rollout_stage and (not self.rollout or step.rollout_stage not in self.rollout.stages):
                    raise ValueError(
                        f"rollback plan {plan.name} names unknown rollout stage {step.rollout_stage}"
                    )
        for next_step in self.next_steps.all():
            if next_step.runbook is not None and (problem := check_step_runbook(self.runbooks, next_step)):
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _reports_refer_to_what_exists(self) -> Service:
        if problem := check_reports(
            self.reports,
            probes=self.probes,
            latency=self.latency,
            objectives=self.objectives,
            diagnostics=self.diagnostics,
            runbooks=self.runbooks,
        ):
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _postmortem_runbook(self) -> Service:
        wanted = self.postmortem.runbook if self.postmortem else None
        if wanted and wanted not in {ref.file for ref in self.runbooks}:
            raise ValueError(f"postmortem names runbook {wanted}, which is not among the service's runbooks")
        return self

    @model_validator(mode="after")
    def _diagnostics_consistent(self) -> Service:
        """A diagnostic has a database to read, names a runbook the service has, and a next step that exists."""
        if self.diagnostics is None:
            return self
        if self.diagnostics.dsn is None and self.latency is None:
            raise ValueError("diagnostics.dsn is unset and the service has no latency.dsn to default to")
        for query in self.diagnostics.queries:
            where = f"diagnostics.queries[{query.name}]"
            if self.runbooks and runbook_of(self.runbooks, query.runbook) is None:
                raise ValueError(
                    f"{where}.runbook names runbook {query.runbook.file}, which the service lacks"
                )
            if isinstance(query.next_step, str) and not getattr(self.next_steps, query.next_step):
                raise ValueError(
                    f"{where}.next_step names next_steps.{query.next_step}, which the service leaves empty"
                )
            for step in query.next_step if isinstance(query.next_step, list) else []:
                if step.runbook is not None and (problem := check_step_runbook(self.runbooks, step)):
                    raise ValueError(f"{where}.next_step: {problem}")
        return self

    @property
    def diagnostics_dsn(self) -> str | None:
        """The database the diagnostics read: `diagnostics.dsn`, else the latency source's."""
        if self.diagnostics is not None and self.diagnostics.dsn is not None:
            return self.diagnostics.dsn
        return self.latency.dsn if self.latency is not None else None

    def diagnostic_steps(self, query_name: str) -> list[NextStep]:
        """The next steps a crossed threshold of the query offers: its inline list, or the named next_steps list."""
        query = self.diagnostics.query(query_name) if self.diagnostics else None
        if query is None or query.next_step is None:
            return []
        if isinstance(query.next_step, str):
            return list(getattr(self.next_steps, query.next_step))
        return list(query.next_step)

    def postmortem_runbook(self) -> RunbookRef | None:
        """The runbook the post-mortem steps come from: the one `postmortem.runbook` names, else the first."""
        wanted = self.postmortem.runbook if self.postmortem else None
        found = next((ref for ref in self.runbooks if ref.file == wanted), None) if wanted else None
        return found or (self.runbooks[0] if self.runbooks else None)

    @property
    def all_plans(self) -> list[RollbackPlan]:
        """The rollback plans and the restart plan, for what every plan must satisfy."""
        return [*self.rollback_plans, *([self.restart_plan] if self.restart_plan else [])]

    @property
    def requires_two_people(self) -> bool:
        """The two-person rule is on for production services unless the catalog says otherwise."""
        return self.production if self.two_person_rule is None else self.two_person_rule

    def flag(self, name: str) -> Flag | None:
        return next((flag for flag in self.flags if flag.name.upper() == name.upper()), None)
