"""The buttons and modals of a rollback or restart: Confirm (Slack's dialog, or a modal for a plan too long for
it), Check again, Cancel, Retry, Skip (a modal asks why), Mark done, Abort, and a manual step's sign-off.

The dangerous buttons are checked by their guards before they get here (handlers/rollback/guards.py); a modal's
submission has no guard in the platform, so its handler runs the same check itself (`permissions.enforce`)
before it changes anything. Each decision is one conditional UPDATE with its audit row
(handlers/rollback/store.py, step_store.py): a double click or a Slack retry acts once.
"""

from __future__ import annotations

import json
import logging

from bot import permissions
from bot.audit import audit
from bot.context import ActionContext, BotContext, ViewContext
from bot.permissions import mentions, owners_of
from bot.replies import Reply
from handlers.rollback import announce, blocks, guards, preflight, step_store, thread_blocks
from handlers.rollback import run as rollback_run
from handlers.rollback import store as rollbacks
from handlers.rollback.store import Run

log = logging.getLogger(__name__)


async def _run_of(ctx: ActionContext) -> tuple[Run, int | None] | None:
    """The run a button names (`42` or `42:3` for a step); told to the user when it no longer exists."""
    found = await guards.run_of(ctx.bot, ctx.value)
    if found is None:
        await ctx.reply.ephemeral("That rollback no longer exists.")
    return found


async def _refuse(
    bot: BotContext, user: str, reply: Reply, run: Run, message: str, reason: str, action: str
) -> None:
    await audit(
        bot.storage.pool,
        actor=user,
        action=f"{run.kind}.refused",
        outcome="refused",
        service=run.service.name,
        target=str(run.id),
        detail={"reason": reason, "action": action},
    )
    await reply.ephemeral(message)


def _not_pending(run: Run) -> str:
    by = {"cancelled": run.ended_by, "aborted": run.ended_by}.get(run.status, run.confirmed_by)
    who = f" by <@{by}>" if by and run.status != "expired" else ""
    return f"{run.noun} #{run.id} was already {blocks.RUN_STATE.get(run.status, run.status)}{who}."


async def _recheck(bot: BotContext, run: Run) -> Run:
    """The preflight again; the root shows the result."""
    problems = await preflight.check(bot, run.service, [s.spec for s in run.steps])
    if problems != run.preflight and await rollbacks.set_preflight(bot, run.id, problems):
        run = await rollbacks.load(bot, run.id) or run
        await rollback_run.refresh_root(bot, run, bot.clock())
    return run


async def confirm_run(bot: BotContext, run: Run, user: str, reply: Reply, action: str) -> None:
    """pending → running, after expiry, the two-person rule and the preflight (checked again: a table can
    vanish between the request and its Confirm); said in the thread."""
    now = bot.clock()
    if run.status != "pending":
        await reply.ephemeral(_not_pending(run))
        return
    if now >= run.expires_at:
        await _refuse(
            bot,
            user,
            reply,
            run,
            f"{run.noun} #{run.id} expired at {blocks.clock_time(run.expires_at)}: requests must be confirmed "
            f"within {run.service.rollback_expires_minutes} minutes. Nothing ran; request it again with "
            f"`{run.command}`.",
            "expired",
            action,
        )
        await rollback_run.expire(bot, run.id, now)
        return
    if run.requires_two_people and user == run.requested_by:
        users, groups = owners_of(bot, run.service)
        others = mentions([u for u in users if u != user], groups) or "another owner"
        await _refuse(
            bot,
            user,
            reply,
            run,
            f":lock: {run.service.display_name} is a production service: the two-person rule says the requester "
            f"cannot confirm their own rollback. Ask {others} to confirm.",
            "two-person rule",
            action,
        )
        return
    run = await _recheck(bot, run)
    if run.preflight:
        await _refuse(
            bot,
            user,
            reply,
            run,
            f":no_entry: {run.noun} #{run.id} is not ready: "
            + "; ".join(f"step {p.position}: {p.problem}" for p in run.preflight)
            + ". Fix it, then press Check again.",
            "preflight",
            action,
        )
        return
    if not await rollbacks.confirm(bot, run, user, now):
        latest = await rollbacks.load(bot, run.id)
        await reply.ephemeral(_not_pending(latest or run))
        return
    run = await rollbacks.load(bot, run.id) or run
    await rollback_run.refresh_root(bot, run, now)
    await rollback_run.say(
        bot,
        run,
        f":rotating_light: <@{user}> confirmed {run.noun.lower()} #{run.id}. Starting step 1 of {len(run.steps)}.",
        key="confirmed",
    )
    if run.kind == "restart":
        await announce.restart_confirmed(bot, run)


async def confirm(ctx: ActionContext) -> None:
    found = await _run_of(ctx)
    if found is not None:
        await confirm_run(ctx.bot, found[0], ctx.user_id, ctx.reply, ctx.action_id)


async def review(ctx: ActionContext) -> None:
    """A plan too long for Slack's confirm dialog: a modal lists every step; its submit confirms."""
    found = await _run_of(ctx)
    trigger = ctx.payload.get("trigger_id")
    if found is None or not trigger:
        return
    run = found[0]
    if run.status != "pending":
        await ctx.reply.ephemeral(_not_pending(run))
        return
    await ctx.bot.slack.views_open(trigger_id=trigger, view=blocks.confirm_modal(run, ctx.channel_id))


async def _submitted_run(ctx: ViewContext, what: str) -> tuple[Run, dict[str, object]] | None:
    """The run a modal names, after the owners check a button's guard would have made."""
    metadata = json.loads(ctx.private_metadata or "{}")
    run = await rollbacks.load(ctx.bot, int(metadata.get("run") or 0))
    if run is None:
        await ctx.reply.ephemeral("That rollback no longer exists.")
        return None
    check = guards.owners_check(run.service, what, str(run.id))
    if not await permissions.enforce(ctx.bot, ctx.user_id, check, ctx.reply):
        return None
    return run, metadata


async def confirm_submitted(ctx: ViewContext) -> None:
    found = await _submitted_run(ctx, "confirm a rollback of")
    if found is not None:
        await confirm_run(ctx.bot, found[0], ctx.user_id, ctx.reply, blocks.CONFIRM_MODAL)


async def check_again(ctx: ActionContext) -> None:
    found = await _run_of(ctx)
    if found is None:
        return
    run = found[0]
    if run.status != "pending":
        await ctx.reply.ephemeral(_not_pending(run))
        return
    run = await _recheck(ctx.bot, run)
    if run.preflight:
        await ctx.reply.ephemeral(
            "Still not ready: " + "; ".join(f"step {p.position}: {p.problem}" for p in run.preflight) + "."
        )
    else:
        await ctx.reply.ephemeral(
            f":white_check_mark: Every step of {run.noun.lower()} #{run.id} can run now: "
            "Confirm is back on the request."
        )


async def cancel(ctx: ActionContext) -> None:
    """Not dangerous (a cancel changes nothing), so without a guard: the requester may always cancel their own,
    anyone else needs what Confirm needs."""
    found = await _run_of(ctx)
    if found is None:
        return
    run = found[0]
    if ctx.user_id != run.requested_by:
        check = guards.owners_check(run.service, "cancel a rollback of", str(run.id))
        if not await permissions.enforce(ctx.bot, ctx.user_id, check, ctx.reply):
            return
    now = ctx.bot.clock()
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
    if not await step_store.abort(ctx.bot, run, ctx.user_id, now):
        state = blocks.RUN_STATE.get(run.status, run.status)
        await ctx.reply.ephemeral(f"{run.noun} #{run.id} is {state}: nothing to abort.")
        return
    run = await rollbacks.load(ctx.bot, run.id) or run
    await rollback_run.refresh_root(ctx.bot, run, now)
    text = f":octagonal_sign: <@{ctx.user_id}> aborted {run.noun.lower()} #{run.id}. No further step runs."
    await rollback_run.say(ctx.bot, run, text, key="aborted")
    await rollback_run.post_summary(ctx.bot, run)


async def retry(ctx: ActionContext) -> None:
    found = await _run_of(ctx)
    if found is None:
        return
    run, position = found
    if position is None or not await step_store.retry(ctx.bot, run, position, ctx.user_id):
        state = blocks.RUN_STATE.get(run.status, run.status)
        await ctx.reply.ephemeral(
            f"Step {position} of {run.noun.lower()} #{run.id} is not waiting for a retry (it is {state})."
        )
        return
    run = await rollbacks.load(ctx.bot, run.id) or run
    await rollback_run.refresh_root(ctx.bot, run, ctx.bot.clock())
    key = f"retry:{position}:{getattr(run.step(position), 'attempts', 0)}"
    await rollback_run.say(ctx.bot, run, f":repeat: <@{ctx.user_id}> retries step {position}.", key=key)


async def open_skip(ctx: ActionContext) -> None:
    """Skip asks why first: a modal with the reason, shown in the thread and audited."""
    found = await _run_of(ctx)
    trigger = ctx.payload.get("trigger_id")
    if found is None or not trigger:
        return
    run, position = found
    step = run.step(position) if position is not None else None
    if step is None or run.current is None or run.current.position != step.position:
        await ctx.reply.ephemeral(
            f"Step {position} of {run.noun.lower()} #{run.id} is not the one to skip now."
        )
        return
    await ctx.bot.slack.views_open(
        trigger_id=trigger, view=thread_blocks.skip_modal(run, step, ctx.channel_id)
    )


async def _ended(bot: BotContext, run: Run, position: int, actor: str, what: str, reason: str | None) -> None:
    run = await rollbacks.load(bot, run.id) or run
    step = run.step(position)
    assert step is not None
    await rollback_run.say(
        bot,
        run,
        thread_blocks.step_ended_by(run, step, actor, what, reason),
        key=f"{what}:{position}:{step.attempts}",
    )
    await rollback_run.refresh_root(bot, run, bot.clock())


async def skip_submitted(ctx: ViewContext) -> None:
    found = await _submitted_run(ctx, "skip a step of")
    if found is None:
        return
    run, metadata = found
    position = int(str(metadata.get("step") or 0))
    reason = (ctx.values.get("reason") or "").strip()
    if not reason:
        await ctx.reply.ephemeral("A skipped step needs a reason: nothing was skipped.")
        return
    if not await step_store.skip(ctx.bot, run, position, ctx.user_id, reason, ctx.bot.clock()):
        await ctx.reply.ephemeral(f"Step {position} of {run.noun.lower()} #{run.id} cannot be skipped now.")
        return
    await _ended(ctx.bot, run, position, ctx.user_id, "skip", reason)


async def mark_done(ctx: ActionContext) -> None:
    found = await _run_of(ctx)
    if found is None:
        return
    run, position = found
    if position is None or not await step_store.mark_done(
        ctx.bot, run, position, ctx.user_id, ctx.bot.clock()
    ):
        await ctx.reply.ephemeral(
            f"Step {position} of {run.noun.lower()} #{run.id} cannot be marked done now."
        )
        return
    await _ended(ctx.bot, run, position, ctx.user_id, "mark_done", None)


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
    if not await step_store.approve(ctx.bot, run, position, ctx.user_id, now):
        await ctx.reply.ephemeral(
            f"Step {position} of {run.noun.lower()} #{run.id} is not waiting for a sign-off."
        )
        return
    run = await rollbacks.load(ctx.bot, run.id) or run
    signed = run.step(position) or step
    text, _ = thread_blocks.step_finished(run, signed, now)
    await rollback_run.say(ctx.bot, run, text, key=f"step:{position}:{signed.attempts}:signed_off")
    await rollback_run.refresh_root(ctx.bot, run, now)
