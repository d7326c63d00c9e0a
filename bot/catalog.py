"""The service catalog: the four runbooks in ../shared/runbooks/ as validated data.

Everything the bot knows about a service (its health checks, flags, SLOs, rollback plans, escalation path) lives in
one YAML file, so that an operator changes behaviour by editing data, and so that a reviewer can check the bot
against the runbook line by line. The bundled `catalog.yaml` cites the runbook section each entry comes from.

Strings may reference environment variables as `${NAME}`. A set variable is substituted at load time; an unset one
is left in place and makes whatever uses it "not configured" (see `missing_env`), so operators can point the
bundled catalog at their deployments without editing it, and the bot still starts when one deployment is unknown.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.cron import CronSchedule

BUNDLED_CATALOG = Path(__file__).with_name("catalog.yaml")
_ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_FLAG_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]*$")


class CatalogError(Exception):
    """A bad catalog: `str()` names the file, the path inside it and what was expected."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def missing_env(value: Any) -> list[str]:
    """The `${NAME}` references left unresolved anywhere inside `value` (a model, dict, list or string)."""
    found: list[str] = []
    if isinstance(value, str):
        found.extend(_ENV_REF.findall(value))
    elif isinstance(value, BaseModel):
        for field_name in type(value).model_fields:
            found.extend(missing_env(getattr(value, field_name)))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(missing_env(item))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(missing_env(item))
    return list(dict.fromkeys(found))


def _is_template(value: str) -> bool:
    return "${" in value


def _http_url(value: str) -> str:
    if not _is_template(value) and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("expected an http(s) URL")
    return value


# --- who, where ---------------------------------------------------------------------------------------------


class Owners(_Model):
    """Slack user IDs (U…/W…) and user-group IDs (S…) who may change this service. Empty means nobody: fail closed."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _SLACK_USER.match(item):
                raise ValueError(f"expected a Slack user ID like U0123ABCD, got {item!r}")
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _SLACK_GROUP.match(item):
                raise ValueError(f"expected a Slack user-group ID like S0123ABCD, got {item!r}")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.users or self.groups)


class Channels(_Model):
    """Where this service's alerts and incident updates go; unset means the bot-wide ALERTS/INCIDENTS_CHANNEL.

    `incidents_urgency: high` keeps low-urgency incidents out of the incidents channel (they still get their thread
    in the alerts channel), for services whose low-urgency pages would drown it."""

    alerts: str | None = None
    incidents: str | None = None
    incidents_urgency: Literal["high", "low"] = "low"


class RunbookRef(_Model):
    title: str
    file: str
    last_updated: date | str | None = None
    url: str | None = None


# --- health probes ------------------------------------------------------------------------------------------


class _ProbeBase(_Model):
    """`critical`: the probe stands for the whole service (its front door), so when it is down the service is down
    even if its dependencies answer (FA runbook, P0: "Health check endpoint returning 503")."""

    name: str
    description: str = ""
    timeout: float = Field(default=2.0, gt=0, le=30)
    critical: bool = False


class HttpProbe(_ProbeBase):
    kind: Literal["http"]
    url: str
    method: Literal["GET", "POST", "HEAD"] = "GET"
    json_body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: int = Field(default=200, ge=100, le=599)
    json_field: str | None = None
    ok_values: list[Any] = Field(default_factory=lambda: ["ok"])
    degraded_values: list[Any] = Field(default_factory=lambda: ["degraded"])

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class PostgresProbe(_ProbeBase):
    kind: Literal["postgres"]
    dsn: str


class RedisProbe(_ProbeBase):
    kind: Literal["redis"]
    url: str


class TcpProbe(_ProbeBase):
    kind: Literal["tcp"]
    host: str
    port: int | str

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not _is_template(value):
            if not value.isdigit():
                raise ValueError("expected a port number")
            value = int(value)
        if isinstance(value, int) and not 0 < value < 65536:
            raise ValueError("expected a port number between 1 and 65535")
        return value


Probe = Annotated[HttpProbe | PostgresProbe | RedisProbe | TcpProbe, Field(discriminator="kind")]


# --- feature flags ------------------------------------------------------------------------------------------

FlagValue = bool | int | str


class Flag(_Model):
    """One feature flag as the runbook's flag table describes it, typed so a bad value is refused before it ships."""

    name: str
    type: Literal["bool", "int", "enum", "string", "url"]
    default: FlagValue | None = None
    description: str = ""
    allowed: list[str] | None = None
    min: int | None = None
    max: int | None = None
    backend: Literal["supabase_secrets", "postgres_table"]
    risk: Literal["normal", "high"] = "normal"
    verify: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _FLAG_NAME.match(value):
            raise ValueError("expected an UPPER_SNAKE_CASE flag name")
        return value

    @model_validator(mode="after")
    def _typed(self) -> Flag:
        if self.type == "enum" and not self.allowed:
            raise ValueError("an enum flag needs `allowed` values")
        if self.type != "enum" and self.allowed:
            raise ValueError("`allowed` is only for enum flags")
        if self.type != "int" and (self.min is not None or self.max is not None):
            raise ValueError("`min`/`max` are only for int flags")
        if self.default is not None:
            error = self.check_value(self.default)
            if error:
                raise ValueError(f"default {self.default!r}: {error}")
        return self

    def check_value(self, value: FlagValue) -> str | None:
        """None when `value` is acceptable for this flag, else what is allowed (shown to the user as is)."""
        if self.type == "bool":
            return None if isinstance(value, bool) else "expected true or false"
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return "expected a whole number"
            lo = self.min if self.min is not None else "-∞"
            hi = self.max if self.max is not None else "∞"
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                return f"expected a whole number from {lo} to {hi}"
            return None
        if self.type == "enum":
            assert self.allowed is not None
            return None if value in self.allowed else "expected one of " + ", ".join(self.allowed)
        if self.type == "url":
            return (
                None
                if isinstance(value, str) and re.match(r"^https?://[^\s/]+", value)
                else "expected an http(s) URL"
            )
        return None if isinstance(value, str) else "expected text"


class FlagStore(_Model):
    """Where a service's `postgres_table` flags live: a table the service itself reads (see README, Flags)."""

    dsn: str
    table: str = "feature_flags"


class Preset(_Model):
    """A named group of flag values from a runbook, applied together and revertible in one step."""

    name: str
    description: str
    values: dict[str, FlagValue | None]


class Rollout(_Model):
    """The Mira runbook's gradual re-enable (Rollback step 4): which flags each stage sets."""

    flag: str
    stages: dict[str, dict[str, FlagValue | None]]


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
    kind: Literal["flag", "deploy", "verify", "wait", "manual"]
    title: str
    flags: dict[str, FlagValue | None] = Field(default_factory=dict)
    rollout_stage: str | None = None
    hook: DeployHook | None = None
    minutes: float | None = None
    approver: str | None = None  # who signs off a manual step, in words ("DBA")
    approvers: Owners = Field(default_factory=Owners)  # who may tick it; the service's owners when empty
    warning: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> RollbackStep:
        if self.kind == "flag" and not (self.flags or self.rollout_stage):
            raise ValueError("a flag step needs `flags` or `rollout_stage`")
        if self.kind == "deploy" and self.hook is None:
            raise ValueError("a deploy step needs a `hook`")
        if self.kind == "wait" and not self.minutes:
            raise ValueError("a wait step needs `minutes`")
        if self.kind == "manual" and not self.approver:
            raise ValueError("a manual step needs an `approver`")
        return self


class RollbackPlan(_Model):
    name: str
    description: str
    steps: list[RollbackStep] = Field(min_length=1)


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
    rollback_expires_minutes: int = Field(default=15, gt=0)
    two_person_rule: bool | None = None
    escalation: Escalation
    pagerduty: PagerDutyRefs = Field(default_factory=PagerDutyRefs)

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
            (f"rollback plan {plan.name}", step.flags) for plan in self.rollback_plans for step in plan.steps
        ]
        if self.rollout:
            referenced += [(f"rollout stage {name}", values) for name, values in self.rollout.stages.items()]
            referenced.append(("rollout", [self.rollout.flag]))
        for where, names in referenced:
            for name in names:
                if name not in flag_names:
                    raise ValueError(f"{where} names unknown flag {name}")
        for plan in self.rollback_plans:
            for step in plan.steps:
                if step.rollout_stage and (not self.rollout or step.rollout_stage not in self.rollout.stages):
                    raise ValueError(
                        f"rollback plan {plan.name} names unknown rollout stage {step.rollout_stage}"
                    )
        return self

    @property
    def requires_two_people(self) -> bool:
        """The two-person rule is on for production services unless the catalog says otherwise."""
        return self.production if self.two_person_rule is None else self.two_person_rule

    def flag(self, name: str) -> Flag | None:
        return next((flag for flag in self.flags if flag.name.upper() == name.upper()), None)


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


class Catalog(_Model):
    services: list[Service] = Field(min_length=1)
    handoff: Handoff | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        seen: dict[str, str] = {}
        for service in self.services:
            for key in [service.name, *service.aliases]:
                key = key.lower()
                if key in seen:
                    raise ValueError(f"{key!r} names both {seen[key]} and {service.name}")
                seen[key] = service.name
        if self.handoff and self.handoff.service and self.find(self.handoff.service) is None:
            raise ValueError(f"handoff.service names unknown service {self.handoff.service}")
        return self

    def handoff_service(self) -> Service | None:
        """The service the weekly handoff rotates: `handoff.service`, else the one whose runbook it is."""
        if self.handoff is None:
            return None
        if self.handoff.service:
            return self.find(self.handoff.service)
        for service in self.services:
            if any(runbook.file == self.handoff.runbook for runbook in service.runbooks):
                return service
        return None

    def names(self) -> list[str]:
        return [service.name for service in self.services]

    def find(self, name: str) -> Service | None:
        """A service by name or alias, case-insensitively."""
        wanted = name.strip().lower()
        for service in self.services:
            if wanted == service.name or wanted in (alias.lower() for alias in service.aliases):
                return service
        return None

    def for_pagerduty(self, service_id: str | None, service_name: str | None) -> Service | None:
        """The catalog service a PagerDuty service is: by its ID in `pagerduty.service_ids`, else by name
        (PagerDuty's service summary matching a name, display name or alias), so the bundled catalog works before
        anyone has copied PagerDuty IDs into it."""
        if service_id:
            for service in self.services:
                if service_id in service.pagerduty.service_ids:
                    return service
        if service_name:
            wanted = service_name.strip().lower()
            for service in self.services:
                if wanted == service.display_name.lower():
                    return service
            return self.find(wanted)
        return None

    def suggest(self, name: str) -> str | None:
        """The closest service name or alias, for "did you mean"."""
        keys = {key.lower(): s.name for s in self.services for key in [s.name, *s.aliases]}
        match = difflib.get_close_matches(name.lower(), keys, n=1, cutoff=0.5)
        return keys[match[0]] if match else None


def _substitute(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(0)) or m.group(0), value)
    if isinstance(value, list):
        return [_substitute(item, env) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, env) for key, item in value.items()}
    return value


def _location(loc: tuple[Any, ...], data: Any) -> str:
    """A readable path inside the file: services[mira-copilot].probes[0].url."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = str(item)
            if (
                isinstance(node, list)
                and item < len(node)
                and isinstance(node[item], dict)
                and "name" in node[item]
            ):
                label = str(node[item]["name"])
            parts.append(f"[{label}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            if (
                item in ("http", "postgres", "redis", "tcp")
                and isinstance(node, dict)
                and node.get("kind") == item
            ):
                continue  # the discriminator tag pydantic adds is not a path in the file
            parts.append(f".{item}" if parts else str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def load_catalog(path: Path | None = None, env: Mapping[str, str] | None = None) -> Catalog:
    """Read, substitute and validate a catalog; raise `CatalogError` naming file, path and expectation."""
    path = path or BUNDLED_CATALOG
    env = os.environ if env is None else env
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the catalog ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise CatalogError(f"{path}: not valid YAML at {where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: (top level): expected a mapping with a `services` list")
    try:
        return Catalog.model_validate(_substitute(raw, env))
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        raise CatalogError(f"{path}: {_location(tuple(error['loc']), raw)}: {message}") from None
