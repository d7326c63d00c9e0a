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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from bot.catalog.base import _ENV_REF, CatalogError, Channels, Owners, RunbookRef, _Model, missing_env
from bot.catalog.diagnostics import (
    DiagnosticQuery,
    Diagnostics,
    QueryParam,
    ResultColumn,
    Threshold,
    interval_text,
    parse_interval,
)
from bot.catalog.flags import Flag, FlagStore, FlagValue, Preset, Rollout
from bot.catalog.handoff import ChecklistItem, Evidence, Handoff, reminder_offset
from bot.catalog.next_steps import (
    NextStep,
    NextSteps,
    RunbookSection,
    runbook_of,
    section_url,
)
from bot.catalog.operations import DeployHook, LatencySource, Objective, RollbackPlan, RollbackStep
from bot.catalog.probes import HttpProbe, PostgresProbe, Probe, RedisProbe, TcpProbe
from bot.catalog.service import Escalation, EscalationLevel, PagerDutyRefs, PostMortem, Service
from bot.catalog.step_checks import check_step_command

__all__ = [
    "BUNDLED_CATALOG",
    "Catalog",
    "CatalogError",
    "Channels",
    "ChecklistItem",
    "DeployHook",
    "DiagnosticQuery",
    "Diagnostics",
    "Escalation",
    "EscalationLevel",
    "Evidence",
    "Flag",
    "FlagStore",
    "FlagValue",
    "Handoff",
    "HttpProbe",
    "LatencySource",
    "NextStep",
    "NextSteps",
    "Objective",
    "Owners",
    "PagerDutyRefs",
    "PostMortem",
    "PostgresProbe",
    "QueryParam",
    "Preset",
    "Probe",
    "RedisProbe",
    "ResultColumn",
    "RollbackPlan",
    "RollbackStep",
    "Rollout",
    "RunbookRef",
    "RunbookSection",
    "Service",
    "TcpProbe",
    "Threshold",
    "interval_text",
    "load_catalog",
    "missing_env",
    "parse_interval",
    "reminder_offset",
    "runbook_of",
    "section_url",
]


BUNDLED_CATALOG = Path(__file__).parent.parent / "catalog.yaml"


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

    @model_validator(mode="after")
    def _next_steps_exist(self) -> Catalog:
        """Every next step's command names presets, plans and flags that exist (a step may name any service)."""
        for service in self.services:
            inline = [
                step
                for query in (service.diagnostics.queries if service.diagnostics else [])
                if isinstance(query.next_step, list)
                for step in query.next_step
            ]
            for step in [*service.next_steps.all(), *inline]:
                if step.command is not None and (
                    problem := check_step_command(service, step.command, self.find)
                ):
                    raise ValueError(f"{service.name}: {problem}")
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
        # A diagnostic's `sql` is never substituted: `${…}` there is refused at load, not pasted into SQL.
        return {key: item if key == "sql" else _substitute(item, env) for key, item in value.items()}
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
                item in ("http", "postgres", "redis", "tcp", "health", "slo", "diagnostic")
                and isinstance(node, dict)
                and node.get("kind") == item
            ):
                continue  # the discriminator tag pydantic adds (probes, report checks) is not a path in the file
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
        catalog = Catalog.model_validate(_substitute(raw, env))
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        raise CatalogError(f"{path}: {_location(tuple(error['loc']), raw)}: {message}") from None
    return _name_dsn_variables(catalog, raw)


def _name_dsn_variables(catalog: Catalog, raw: dict[str, Any]) -> Catalog:
    """Each diagnostics' `dsn_variable`: the `${NAME}` its database came from (its own dsn, else latency's), so an
    answer can say "table x does not exist in MIRA_DATABASE_URL's database" without ever showing the DSN."""
    services = []
    for service, raw_service in zip(catalog.services, raw.get("services") or [], strict=False):
        diagnostics = service.diagnostics
        if diagnostics is not None and diagnostics.dsn_variable is None and isinstance(raw_service, dict):
            own = raw_service.get("diagnostics") or {}
            latency = raw_service.get("latency") or {}
            template = (own.get("dsn") if isinstance(own, dict) else None) or (
                latency.get("dsn") if isinstance(latency, dict) else None
            )
            names = _ENV_REF.findall(template) if isinstance(template, str) else []
            if names:
                diagnostics = diagnostics.model_copy(update={"dsn_variable": names[0]})
                service = service.model_copy(update={"diagnostics": diagnostics})
        services.append(service)
    return catalog.model_copy(update={"services": services})
