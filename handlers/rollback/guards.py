"""What each rollback button would change, for the platform to check before the button's handler runs.

The registry refuses a dangerous button without a guard (bot/commands.py); bot/app.py runs the guard's check —
the service's owners or its primary on-call, or a manual step's approvers — and a refused click never reaches
the handler. A guard returns None where the handler answers without changing anything (the rollback no longer
exists, it is no longer pending, the button names no manual step), so those answers stay what they were; each
of those states is one a run never leaves, so the handler cannot find it changeable afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.catalog import Service
from bot.commands import AmongCheck, Check, OwnersCheck
from bot.context import ActionContext, BotContext
from bot.permissions import mentions
from handlers.rollback import run as rollback_run
from handlers.rollback import store as rollbacks
from handlers.rollback.store import Run


def owners_check(service: Service, what: str, target: str) -> OwnersCheck:
    """The service's owners or its current primary on-call (PagerDuty); nobody when neither is configured. A
    refusal is audited as rollback.refused and told to the user with who may."""
    return OwnersCheck(
        service, f"{what} {service.display_name}", "rollback.refused", target, on_call_may=True
    )


async def run_of(bot: BotContext, value: str | None) -> tuple[Run, int | None] | None:
    """The run a button names (`42` or `42:3` for a step), None when it does not exist."""
    run_part, _, step_part = (value or "").partition(":")
    run = await rollbacks.load(bot, int(run_part)) if run_part.isdigit() else None
    if run is None:
        return None
    return run, int(step_part) if step_part.isdigit() else None


async def confirm(ctx: ActionContext) -> Check | None:
    """Confirm, and the button that opens the confirm modal (whose submission checks again itself)."""
    found = await run_of(ctx.bot, ctx.value)
    if found is None or found[0].status != "pending":
        return None
    return owners_check(found[0].service, f"confirm a {found[0].kind} of", str(found[0].id))


def _owners_of_run(what: str) -> Callable[[ActionContext], Awaitable[Check | None]]:
    """Abort and Retry: the owners (or primary on-call) of the run's service, once the run exists."""

    async def guard(ctx: ActionContext) -> Check | None:
        found = await run_of(ctx.bot, ctx.value)
        if found is None:
            return None
        return owners_check(found[0].service, what.format(kind=found[0].kind), str(found[0].id))

    return guard


abort = _owners_of_run("abort a {kind} of")
retry = _owners_of_run("retry a {kind} step of")
skip = _owners_of_run("skip a {kind} step of")
mark_done = _owners_of_run("mark a {kind} step done of")


async def sign_off(ctx: ActionContext) -> Check | None:
    """A manual step's sign-off: its named approvers, else the service's owners (never the on-call)."""
    found = await run_of(ctx.bot, ctx.value)
    if found is None:
        return None
    run, position = found
    step = run.step(position) if position is not None else None
    if step is None or position is None or step.spec.kind != "manual":
        return None
    users, groups = rollback_run.approvers_of(ctx.bot, run, step)
    who = mentions(users, groups)
    refusal = (
        f":lock: Only {who} may sign off step {position} ({step.spec.approver})."
        if who
        else f":lock: Nobody may sign off step {position} ({step.spec.approver}) yet: no approver or owner is "
        f"configured. Add `approvers` to the step or owners to `services[{run.service.name}].owners` in the "
        "catalog (BOT_CATALOG), or set BOT_ADMINS."
    )
    return AmongCheck(
        run.service,
        tuple(users),
        tuple(groups),
        refusal,
        "rollback.refused",
        str(run.id),
        {"reason": "not an approver", "action": ctx.action_id},
    )
