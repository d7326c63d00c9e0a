"""/rollback: show a service's rollback plan from its runbook, get a second person's confirmation, run it once.

parse → guard → act → render. The request is posted visibly in the channel with every step and what it
changes; Confirm (danger, with Slack's confirm dialog) and Cancel sit under it. Only the service's owners may
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

from bot.audit import audit
from bot.catalog import Catalog, RollbackPlan, Service
from bot.commands import Action, Check, Command, Subcommand, UsageError, did_you_mean
from bot.context import ActionContext, BotContext, CommandContext
from bot.permissions import mentions, owners_of, require_owner
from bot.replies import Reply, permalink
from handlers.rollback import blocks, guards
from handlers.rollback import run as rollback_run
from handlers.rollback import store as rollbacks
from handlers.rollback.store import Run

SUBCOMMANDS = ("status", "plans")


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


def _service(word: str, catalog: Catalog) -> Service:
    service = catalog.find(word)
    if service is None:
        raise UsageError(
            f"I don't know a service called `{word}`. Services: {', '.join(catalog.names())}.",
            suggestion=catalog.suggest(word) or did_you_mean(word.lower(), list(SUBCOMMANDS)),
        )
    if not service.rollback_plans:
        raise UsageError(f"{service.display_name} has no rollback plan in the catalog.")
    return service


def parse(text: str, catalog: Catalog) -> RollbackRequest:
    words = text.split()
    if not words:
        raise UsageError("Tell me which service to roll back.")
    first = words[0].lower()
    if first == "status":
        if len(words) > 2:
            raise UsageError("`/rollback status` takes at most a service.")
        return ShowStatus(_service(words[1], catalog) if len(words) == 2 else None)
    if first == "plans":
        if len(words) != 2:
            raise UsageError("`/rollback plans` takes a service, e.g. `/rollback plans ivy-v2`.")
        return ShowPlans(_service(words[1], catalog))
    service = _service(words[0], catalog)
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
        )
    return RequestRollback(service, service.rollback_plans[0], " ".join(rest) or None)


def acknowledge(request: RollbackRequest, catalog: Catalog) -> str:
    if isinstance(request, ShowStatus):
        return "Looking up rollbacks…"
    if isinstance(request, ShowPlans):
        return f"Reading the rollback plans of {request.service.display_name}…"
    return f"Preparing the `{request.plan.name}` rollback of {request.service.display_name}…"


# --- authorize ------------------------------------------------------------------------------------------------


async def authorize(
    bot: BotContext, user_id: str, service: Service, what: str, target: str, reply: Reply
) -> bool:
    """`guards.owners_check`, asked by a handler itself (Cancel, which the requester may do without it)."""
    check = guards.owners_check(service, what, target)
    return await require_owner(
        bot, user_id, service, check.what, action=check.refused, target=target, reply=reply, on_call_may=True
    )


async def guard(request: RollbackRequest, ctx: CommandContext) -> Check | None:
    """A request needs the service's owners or its primary on-call; `status` and `plans` only read."""
    if isinstance(request, RequestRollback):
        return guards.owners_check(request.service, "request a rollback of", "request")
    return None


# --- act --------------------------------------------------------------------------------------------------------


async def request_rollback(request: RequestRollback, ctx: CommandContext) -> None:
    bot, user = ctx.bot, ctx.invocation.user_id
    service = request.service
    active = await rollbacks.active_run_id(bot, service)
    if active is not None:
        await ctx.reply.ephemeral(
            f"Rollback #{active} of {service.display_name} is still active: see `/rollback status {service.name}`."
        )
        return
    now = bot.clock()
    run_id = await rollbacks.create(
        bot,
        service,
        request.plan,
        reason=request.reason,
        requested_by=user,
        requested_in=ctx.invocation.channel_id,
        now=now,
    )
    run = await rollbacks.load(bot, run_id)
    assert run is not None
    text, message_blocks = blocks.render_run(run, now)
    posted = await ctx.reply.post(text, message_blocks)
    if posted is None:
        # Nobody else can see (or confirm) a request shown only to its author.
        await rollbacks.end_pending(bot, run, user, "cancelled", now)
        await ctx.reply.ephemeral(
            f"Rollback #{run_id} was not started: invite me to this channel and ask again."
        )
        return
    await rollbacks.attach_message(bot, run_id, posted.channel, posted.ts)


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


# --- buttons ------------------------------------------------------------------------------------------------------


async def _run_of(ctx: ActionContext) -> tuple[Run, int | None] | None:
    """The run a button names (`42` or `42:3` for a step); told to the user when it no longer exists."""
    found = await guards.run_of(ctx.bot, ctx.value)
    if found is None:
        await ctx.reply.ephemeral("That rollback no longer exists.")
    return found


async def _refuse(ctx: ActionContext, run: Run, message: str, reason: str) -> None:
    await audit(
        ctx.bot.storage.pool,
        actor=ctx.user_id,
        action="rollback.refused",
        outcome="refused",
        service=run.service.name,
        target=str(run.id),
        detail={"reason": reason, "action": ctx.action_id},
    )
    await ctx.reply.ephemeral(message)


def _not_pending(run: Run) -> str:
    by = {"cancelled": run.ended_by, "aborted": run.ended_by}.get(run.status, run.confirmed_by)
    who = f" by <@{by}>" if by and run.status != "expired" else ""
    return f"Rollback #{run.id} was already {blocks.RUN_STATE.get(run.status, run.status)}{who}."


async def confirm(ctx: ActionContext) -> None:
    found = await _run_of(ctx)
    if found is None:
        return
    run, _ = found
    bot, now = ctx.bot, ctx.bot.clock()
    if run.status != "pending":
        await ctx.reply.ephemeral(_not_pending(run))
        return
    if now >= run.expires_at:
        await _refuse(
            ctx,
            run,
            f"Rollback #{run.id} expired at {blocks.clock_time(run.expires_at)}: requests must be confirmed within "
            f"{run.service.rollback_expires_minutes} minutes. Nothing ran; request it again with "
            f"`/rollback {run.service.name} {run.plan}`.",
            "expired",
        )
        await rollback_run.expire(bot, run.id, now)
        return
    if run.service.requires_two_people and ctx.user_id == run.requested_by:
        users, groups = owners_of(bot, run.service)
        others = mentions([u for u in users if u != ctx.user_id], groups) or "another owner"
        await _refuse(
            ctx,
            run,
            f":lock: {run.service.display_name} is a production service: the two-person rule says the requester "
            f"cannot confirm their own rollback. Ask {others} to confirm.",
            "two-person rule",
        )
        return
    try:
        won = await rollbacks.confirm(bot, run, ctx.user_id, now)
    except rollbacks.AlreadyRunning as exc:
        await ctx.reply.ephemeral(
            f"Rollback #{exc.run_id} of {run.service.display_name} is still active; finish or abort it first."
        )
        return
    if not won:
        latest = await rollbacks.load(bot, run.id)
        await ctx.reply.ephemeral(_not_pending(latest or run))
        return
    run = await rollbacks.load(bot, run.id) or run
    await rollback_run.refresh_root(bot, run, now)
    await rollback_run.say(
        bot,
        run,
        f":rotating_light: <@{ctx.user_id}> confirmed rollback #{run.id}. Starting step 1 of {len(run.steps)}.",
        key="confirmed",
    )


async def cancel(ctx: ActionContext) -> None:
    """Not dangerous (a cancel changes nothing), so without a guard: the requester may always cancel their own,
    anyone else needs what Confirm needs."""
    found = await _run_of(ctx)
    if found is None:
        return
    run = found[0]
    if ctx.user_id != run.requested_by and not await authorize(
        ctx.bot, ctx.user_id, run.service, "cancel a rollback of", str(run.id), ctx.reply
    ):
        return
    run, now = found[0], ctx.bot.clock()
    if not await rollbacks.end_pending(ctx.bot, run, ctx.user_id, "cancelled", now):
        latest = await rollbacks.load(ctx.bot, run.id)
        await ctx.reply.ephemeral(_not_pending(latest or run))
        return
    run.status, run.ended_by = "cancelled", ctx.user_id
    await rollback_run.refresh_root(ctx.bot, run, now)


async def abort(ctx: ActionContext) -> None:
    found = await _run_of(ctx)
    if found is None:
        return
    run, now = found[0], ctx.bot.clock()
    if not await rollbacks.abort(ctx.bot, run, ctx.user_id, now):
        state = blocks.RUN_STATE.get(run.status, run.status)
        await ctx.reply.ephemeral(f"Rollback #{run.id} is {state}: nothing to abort.")
        return
    run = await rollbacks.load(ctx.bot, run.id) or run
    await rollback_run.refresh_root(ctx.bot, run, now)
    text = f":octagonal_sign: <@{ctx.user_id}> aborted rollback #{run.id}. No further step runs."
    await rollback_run.say(ctx.bot, run, text, key="aborted")
    await rollback_run.post_summary(ctx.bot, run)


async def retry(ctx: ActionContext) -> None:
    found = await _run_of(ctx)
    if found is None:
        return
    run, position = found
    if position is None or not await rollbacks.retry(ctx.bot, run, position, ctx.user_id):
        state = blocks.RUN_STATE.get(run.status, run.status)
        await ctx.reply.ephemeral(
            f"Step {position} of rollback #{run.id} is not waiting for a retry (the rollback is {state})."
        )
        return
    run = await rollbacks.load(ctx.bot, run.id) or run
    await rollback_run.refresh_root(ctx.bot, run, ctx.bot.clock())
    key = f"retry:{position}:{getattr(run.step(position), 'attempts', 0)}"
    await rollback_run.say(ctx.bot, run, f":repeat: <@{ctx.user_id}> retries step {position}.", key=key)


async def sign_off(ctx: ActionContext) -> None:
    found = await _run_of(ctx)
    if found is None:
        return
    run, position = found
    step = run.step(position) if position is not None else None
    if step is None or position is None or step.spec.kind != "manual":
        await ctx.reply.ephemeral("That button names no manual step.")
        return
    now = ctx.bot.clock()
    if not await rollbacks.approve(ctx.bot, run, position, ctx.user_id, now):
        await ctx.reply.ephemeral(f"Step {position} of rollback #{run.id} is not waiting for a sign-off.")
        return
    run = await rollbacks.load(ctx.bot, run.id) or run
    signed = run.step(position) or step
    text, _ = blocks.step_finished(run, signed, now)
    await rollback_run.say(ctx.bot, run, text, key=f"step:{position}:{signed.attempts}:signed_off")
    await rollback_run.refresh_root(ctx.bot, run, now)


COMMAND = Command(
    name="/rollback",
    description="Show a service's rollback plan and run it after a second person confirms",
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
ACTIONS = (
    Action(action_id=blocks.CONFIRM_ACTION, run=confirm, dangerous=True, guard=guards.confirm),
    Action(action_id=blocks.CANCEL_ACTION, run=cancel),
    Action(action_id=blocks.ABORT_ACTION, run=abort, dangerous=True, guard=guards.abort),
    Action(action_id=blocks.RETRY_ACTION, run=retry, dangerous=True, guard=guards.retry),
    Action(action_id=blocks.SIGNOFF_ACTION, run=sign_off, dangerous=True, guard=guards.sign_off),
)
