"""/rollback: show a service's rollback plan from its runbook, get a second person's confirmation, run it once.

parse → guard → act → render. Every step is checked first (handlers/rollback/preflight.py); the request is posted
visibly in the channel with every step, what it changes and what is missing; Confirm (danger, with Slack's confirm
dialog, or a modal listing every step when they do not fit it) and Cancel sit under it — Check again instead of
Confirm while something is missing. A service has one open run at a time (handlers/rollback/request.py). Only the service's owners may
request or confirm (fail closed: none configured, nobody may; the guards tell the platform which service a request or a
click would change, and it checks before `run`: handlers/rollback/guards.py), and production services carry the two-person rule:
the requester cannot confirm their own rollback. Every request, confirmation, refusal, cancel, retry, abort and step
is an audit row. Confirming only moves the run to `running` in Postgres; the rollback worker (bot/rollback_worker.py)
runs the steps under a lease, so a double click, a Slack retry, two replicas or a restart never run a step twice.

Runbooks: Mira Rollback Procedures 1–4; Ivy on-call Emergency Rollback (immediate, full); AI Assistant SOP-001 and
SOP-002; FA AI System P0 Immediate Actions (rollback.sh).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.catalog import Catalog, RollbackPlan, Service
from bot.commands import Action, Check, Command, Modal, Subcommand, UsageError, did_you_mean
from bot.context import CommandContext
from bot.replies import permalink
from handlers.rollback import blocks, buttons, guards
from handlers.rollback import store as rollbacks
from handlers.rollback.request import make_request

SUBCOMMANDS = ("status", "plans")
DESCRIPTION = "Show a service's rollback plan and run it after a second person confirms"
REQUEST_USAGE = f"`/rollback SERVICE [plan] [reason]` — {DESCRIPTION}"
STATUS_USAGE = "`/rollback status [SERVICE]` — the running or last rollback"
PLANS_USAGE = "`/rollback plans SERVICE` — the service's rollback plans"


# --- parse ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRollback:
    service: Service
    plan: RollbackPlan
    reason: str | None


@dataclass(frozen=True)
class ShowStatus:
    service: Service | None


@dataclass(frozen=True)
class ShowPlans:
    service: Service


RollbackRequest = RequestRollback | ShowStatus | ShowPlans


def _swapped(words: list[str], catalog: Catalog) -> str | None:
    """`/rollback immediate ivy-v2 …` → `/rollback ivy-v2 immediate …`: a plan name first, its service second."""
    if len(words) < 2 or (service := catalog.find(words[1])) is None:
        return None
    if words[0].lower() not in {plan.name for plan in service.rollback_plans}:
        return None
    return " ".join(["/rollback", service.name, words[0].lower(), *words[2:]])


def _service(word: str, catalog: Catalog, usage: str) -> Service:
    service = catalog.find(word)
    if service is None:
        raise UsageError(
            f"I don't know a service called `{word}`. Services: {', '.join(catalog.names())}.",
            suggestion=catalog.suggest(word) or did_you_mean(word.lower(), list(SUBCOMMANDS)),
            usage=usage,
        )
    if not service.rollback_plans:
        raise UsageError(f"{service.display_name} has no rollback plan in the catalog.", usage=usage)
    return service


def parse(text: str, catalog: Catalog) -> RollbackRequest:
    words = text.split()
    if not words:
        raise UsageError("Tell me which service to roll back.", usage=REQUEST_USAGE)
    first = words[0].lower()
    if first == "status":
        if len(words) > 2:
            raise UsageError("`/rollback status` takes at most a service.", usage=STATUS_USAGE)
        return ShowStatus(_service(words[1], catalog, STATUS_USAGE) if len(words) == 2 else None)
    if first == "plans":
        if len(words) != 2:
            raise UsageError(
                "`/rollback plans` takes a service, e.g. `/rollback plans ivy-v2`.", usage=PLANS_USAGE
            )
        return ShowPlans(_service(words[1], catalog, PLANS_USAGE))
    if (swapped := _swapped(words, catalog)) is not None:
        raise UsageError(
            f"`{words[0]}` is a plan, not a service: the service comes first.",
            suggestion=swapped,
            usage=REQUEST_USAGE,
        )
    service = _service(words[0], catalog, REQUEST_USAGE)
    rest = words[1:]
    plans = {plan.name: plan for plan in service.rollback_plans}
    if rest and rest[0].lower() in plans:
        return RequestRollback(service, plans[rest[0].lower()], " ".join(rest[1:]) or None)
    if len(plans) > 1:
        named = rest[0] if rest else ""
        raise UsageError(
            f"{service.display_name} has several rollback plans: {blocks.plan_names(service.rollback_plans)}. "
            f"Name one, e.g. `/rollback {service.name} {service.rollback_plans[0].name} [reason]`.",
            suggestion=did_you_mean(named.lower(), list(plans)) if named else None,
            usage=REQUEST_USAGE,
        )
    return RequestRollback(service, service.rollback_plans[0], " ".join(rest) or None)


def acknowledge(request: RollbackRequest, catalog: Catalog) -> str:
    if isinstance(request, ShowStatus):
        return "Looking up rollbacks…"
    if isinstance(request, ShowPlans):
        return f"Reading the rollback plans of {request.service.display_name}…"
    return f"Preparing the `{request.plan.name}` rollback of {request.service.display_name}…"


# --- authorize ------------------------------------------------------------------------------------------------


async def guard(request: RollbackRequest, ctx: CommandContext) -> Check | None:
    """A request needs the service's owners or its primary on-call; `status` and `plans` only read."""
    if isinstance(request, RequestRollback):
        return guards.owners_check(request.service, "request a rollback of", "request")
    return None


# --- act --------------------------------------------------------------------------------------------------------


async def request_rollback(request: RequestRollback, ctx: CommandContext) -> None:
    await make_request(ctx, request.service, request.plan, request.reason, "rollback")


async def show_status(request: ShowStatus, ctx: CommandContext) -> None:
    run = await rollbacks.latest(ctx.bot, request.service)
    if run is None:
        scope = request.service.display_name if request.service else "any service"
        await ctx.reply.ephemeral(f"No rollback of {scope} has been requested yet.")
        return
    text, message_blocks = blocks.render_status(
        run, ctx.bot.clock(), await permalink(ctx.bot.slack, run.channel, run.message_ts)
    )
    await ctx.reply.ephemeral(text, message_blocks)


async def show_plans(request: ShowPlans, ctx: CommandContext) -> None:
    text, message_blocks = blocks.render_plans(request.service)
    await ctx.reply.ephemeral(text, message_blocks)


async def run(request: RollbackRequest, ctx: CommandContext) -> None:
    if isinstance(request, RequestRollback):
        await request_rollback(request, ctx)
    elif isinstance(request, ShowStatus):
        await show_status(request, ctx)
    else:
        await show_plans(request, ctx)


COMMAND = Command(
    name="/rollback",
    description=DESCRIPTION,
    usage_hint="SERVICE [plan] [reason] | status [SERVICE] | plans SERVICE",
    subcommands=(
        Subcommand("status", "status [SERVICE]", "the running or last rollback"),
        Subcommand("plans", "plans SERVICE", "the service's rollback plans"),
    ),
    examples=(
        "/rollback plans ivy-v2",
        "/rollback mira-copilot p95 above 3 s after the deploy",
        "/rollback status",
    ),
    dangerous=True,
    parse=parse,
    acknowledge=acknowledge,
    run=run,
    guard=guard,
)
#: The buttons of a rollback's or restart's request and thread (handlers/rollback/buttons.py).
ACTIONS = (
    Action(action_id=blocks.CONFIRM_ACTION, run=buttons.confirm, dangerous=True, guard=guards.confirm),
    Action(action_id=blocks.REVIEW_ACTION, run=buttons.review, dangerous=True, guard=guards.confirm),
    Action(action_id=blocks.CHECK_AGAIN_ACTION, run=buttons.check_again),
    Action(action_id=blocks.CANCEL_ACTION, run=buttons.cancel),
    Action(action_id=blocks.ABORT_ACTION, run=buttons.abort, dangerous=True, guard=guards.abort),
    Action(action_id=blocks.RETRY_ACTION, run=buttons.retry, dangerous=True, guard=guards.retry),
    Action(action_id=blocks.SKIP_ACTION, run=buttons.open_skip, dangerous=True, guard=guards.skip),
    Action(action_id=blocks.MARK_DONE_ACTION, run=buttons.mark_done, dangerous=True, guard=guards.mark_done),
    Action(action_id=blocks.SIGNOFF_ACTION, run=buttons.sign_off, dangerous=True, guard=guards.sign_off),
)
MODALS = (
    Modal(callback_id=blocks.CONFIRM_MODAL, run=buttons.confirm_submitted),
    Modal(callback_id=blocks.SKIP_MODAL, run=buttons.skip_submitted),
)
