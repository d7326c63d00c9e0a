"""Preflight: can every step of a plan run as configured? Checked when a rollback or restart is requested and
again on Check again and on Confirm, so a plan is never confirmed only to stop at step 5 on an unset variable.

Per step: a flag step's values have no unresolved `${VARS}` (Mira's rollout stage `internal` needs
MIRA_INTERNAL_USERS) and its flags' backends answer (Supabase secrets configured, the flag table reachable); a
deploy step's hook URL and secret are set; a verify or watch step has probes, all configured; a watch step's
metrics source is configured and readable (AI Assistant's `ai_messages` table exists). What is missing is said
in words that name the setting, like `/flag rollout`'s refusal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta

from bot.catalog import RollbackStep, Service, missing_env
from bot.context import BotContext
from handlers import flags as flag_changes
from handlers import latency as slo
from handlers.flags import FlagStoreNotConfigured, to_wire
from handlers.rollback.store import Problem
from integrations import metrics_db
from integrations.flag_backends import FlagBackendError


def _step_values(service: Service, step: RollbackStep) -> dict[str, object]:
    if step.rollout_stage and service.rollout:
        return dict(service.rollout.stages.get(step.rollout_stage, {}))
    return dict(step.flags)


def _set(names: Sequence[str]) -> str:
    return "set " + ", ".join(names)


async def _flag_backends(bot: BotContext, service: Service, values: dict[str, object]) -> str | None:
    """One read of every flag the plan changes, through the same path a flag step uses."""
    if not values:
        return None
    try:
        await flag_changes.plan(bot, service, {name: to_wire(v) for name, v in values.items()})  # type: ignore[arg-type]
    except (FlagStoreNotConfigured, FlagBackendError) as exc:
        return f"the flag backend is not ready: {exc}"
    return None


async def _metrics(service: Service) -> str | None:
    source = service.latency
    if source is None or not service.objectives:
        return None
    missing = missing_env(source)
    if missing:
        return f"the watch cannot read its metrics: {_set(missing)}"
    try:
        await slo.source_stats(source, window=timedelta(minutes=1))
    except metrics_db.MetricsQueryError as exc:
        return f"the watch cannot read its metrics: {exc}"
    return None


def _probes(service: Service) -> str | None:
    if not service.probes:
        return (
            f"no health probes are configured for {service.display_name} (`services[{service.name}].probes`)"
        )
    # Health judges the configured probes only, so one unconfigured dependency probe does not stop a check;
    # none configured, or the critical (front door) one unconfigured, does.
    configured = [p for p in service.probes if not missing_env(p)]
    critical = [p for p in service.probes if p.critical and missing_env(p)]
    if configured and not critical:
        return None
    missing = missing_env(critical or service.probes)
    return f"the health probes are not configured: {_set(missing)}"


def _hook(step: RollbackStep) -> str | None:
    assert step.hook is not None
    missing = missing_env(step.hook)
    if step.hook.secret_env and not os.environ.get(step.hook.secret_env):
        missing.append(step.hook.secret_env)
    return f"the deploy hook is not configured: {_set(missing)}" if missing else None


async def check(bot: BotContext, service: Service, steps: Sequence[RollbackStep]) -> list[Problem]:
    """Every problem of every step, in step order; empty when the plan can run."""
    problems: list[Problem] = []
    readable: dict[str, object] = {}
    flag_positions: list[int] = []
    metrics: str | None = None
    metrics_checked = False
    for position, step in enumerate(steps, start=1):
        if step.kind == "flag":
            values = _step_values(service, step)
            missing = missing_env(values)
            if missing:
                problems.append(Problem(position, f"the flag values are not configured: {_set(missing)}"))
            flag_positions.append(position)
            readable.update({k: v for k, v in values.items() if not missing_env(v)})
        elif step.kind == "deploy":
            if problem := _hook(step):
                problems.append(Problem(position, problem))
        elif step.kind in ("verify", "watch"):
            if problem := _probes(service):
                problems.append(Problem(position, problem))
            if step.kind == "watch":
                if not metrics_checked:
                    metrics, metrics_checked = await _metrics(service), True
                if metrics:
                    problems.append(Problem(position, metrics))
    backend = await _flag_backends(bot, service, readable)
    if backend:
        problems += [Problem(position, backend) for position in flag_positions]
    return sorted(problems, key=lambda p: p.position)
