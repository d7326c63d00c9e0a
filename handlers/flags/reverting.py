"""`/flag revert N` and the buttons that decide a revert: Confirm (risky), Revert anyway, Skip that flag.

The planning and the claims are :mod:`handlers.flags.revert`'s; this module answers the user. A revert that would
overwrite a later change, or that changes a risky flag, waits for a click from the service's owners (the buttons'
guard is `handlers.flags.command.pending_guard`, as for any pending change); every click claims the revert and its
original in one transaction, so it applies once.
"""

from __future__ import annotations

from bot.audit import audit
from bot.context import ActionContext, BotContext, CommandContext
from bot.replies import Reply
from handlers.flags import blocks as flags_blocks
from handlers.flags import changes as flag_changes
from handlers.flags import revert as flag_revert
from handlers.flags.changes import FlagChange, FlagStoreNotConfigured
from handlers.flags.outcome import apply_and_report, authorize
from handlers.flags.parsing import RevertChange
from integrations.flag_backends import FlagBackendError

ANYWAY_ACTION = "flag_revert_anyway"
SKIP_ACTION = "flag_revert_skip"
CONFIRM_ACTION = "flag_confirm"
CANCEL_ACTION = "flag_cancel"


async def revert(request: RevertChange, ctx: CommandContext) -> None:
    bot, user = ctx.bot, ctx.invocation.user_id
    loaded = await flag_changes.load_change(bot, request.change_id)
    if loaded is None:
        await ctx.reply.ephemeral(f"There is no change {request.change_id}.")
        return
    original, row = loaded
    if row["status"] != "applied":
        await ctx.reply.ephemeral(
            f"Change {original.id} was {row['status']}, not applied: there is nothing to revert."
        )
        return
    if row["reverted_by"] is not None:
        await ctx.reply.ephemeral(
            f"Change {original.id} was already reverted by change {row['reverted_by']}."
        )
        return
    if not await authorize(bot, user, original.service, str(original.id), ctx.reply):
        return
    try:
        planned = await flag_revert.plan_revert(bot, original)
    except (FlagStoreNotConfigured, FlagBackendError) as exc:
        await ctx.reply.ephemeral(f":x: {exc}. Nothing changed.")
        return
    if not planned.items:
        unknown = (
            f" ({', '.join(planned.unknown)} changed outside the bot: not restorable)"
            if planned.unknown
            else ""
        )
        await ctx.reply.ephemeral(
            f"Nothing to change: every flag of change {original.id} is already as it was before it{unknown}."
        )
        return
    change = await flag_revert.record_revert(bot, original, planned, user, ctx.invocation.channel_id)
    if change.conflicts:
        text, blocks = flags_blocks.render_conflict(change, ANYWAY_ACTION, SKIP_ACTION, CANCEL_ACTION)
        await ctx.reply.ephemeral(text, blocks)
        return
    if change.status == "pending":  # risky: Confirm, like making the change
        text, blocks = flags_blocks.render_confirm(change, CONFIRM_ACTION, CANCEL_ACTION)
        await ctx.reply.ephemeral(text, blocks)
        return
    await claim_and_apply(ctx.bot, change, user, ctx.reply, replace=False)


async def claim_and_apply(
    bot: BotContext,
    change: FlagChange,
    actor: str,
    reply: Reply,
    *,
    replace: bool,
    skip_conflicts: bool = False,
) -> None:
    """Claim the revert and its original, then apply; a lost claim is explained, nothing applied twice. `replace`:
    a click deciding a pending revert (its message is replaced), else the requester's own revert."""
    skipped = sorted(change.conflicts) if skip_conflicts else []
    outcome = await flag_revert.claim(bot, change, actor, decided=replace, skip_conflicts=skip_conflicts)
    answer = reply.replace if replace else reply.ephemeral
    if outcome == "lost":
        loaded = await flag_changes.load_change(bot, change.id)
        row = loaded[1] if loaded else {"status": "gone", "decided_by": None}
        who = f" by <@{row['decided_by']}>" if row["decided_by"] else ""
        if row["status"] == "pending":
            await answer(
                f"Revert {change.id} expired: decide within 15 minutes. Run `/flag revert {change.reverts}` again."
            )
        else:
            await reply.ephemeral(f"Revert {change.id} was already {row['status']}{who}.")
        return
    if outcome == "reverted":
        await answer(f"Change {change.reverts} was reverted by someone else meanwhile: nothing changed.")
        return
    if outcome == "empty":
        await answer(
            f"Nothing reverted: every flag of change {change.reverts} was changed since ({', '.join(skipped)}). "
            f"Change {change.reverts} stays revertible."
        )
        return
    if replace or skipped:
        await audit(
            bot.storage.pool,
            actor=actor,
            action="flag.confirm",
            outcome="ok",
            service=change.service.name,
            target=str(change.id),
            detail={"skipped": skipped}
            if skipped
            else ({"overwrote": sorted(change.conflicts)} if change.conflicts else None),
        )
    if not await apply_and_report(bot, change, actor, reply, replace=replace):
        await flag_revert.release(bot, change)


async def _pending_revert(ctx: ActionContext) -> FlagChange | None:
    value = ctx.value or ""
    loaded = await flag_changes.load_change(ctx.bot, int(value)) if value.isdigit() else None
    if loaded is None or loaded[0].kind != "revert":
        await ctx.reply.replace("That revert no longer exists.")
        return None
    return loaded[0]


async def revert_anyway(ctx: ActionContext) -> None:
    """Revert every flag, overwriting the later changes shown."""
    change = await _pending_revert(ctx)
    if change is not None:
        await claim_and_apply(ctx.bot, change, ctx.user_id, ctx.reply, replace=True)


async def skip_conflicts(ctx: ActionContext) -> None:
    """Revert only the flags nobody changed since; the later changes stay."""
    change = await _pending_revert(ctx)
    if change is not None:
        await claim_and_apply(ctx.bot, change, ctx.user_id, ctx.reply, replace=True, skip_conflicts=True)
