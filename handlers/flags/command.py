"""/flag: read and change the runbooks' feature flags, typed, owned, confirmed when risky, audited, revertible.

parse (in `handlers.flags.parsing`) → guard → act → render. Parsing checks every value against the catalog
before the ack, so a bad value is answered with the allowed values and nothing is sent anywhere. Changing a flag
needs the service's owners (fail closed: none configured, nobody may): the guards below tell the registry which
service a request or a click would change, and the platform checks its owners before `run`. Risky flags (MIRA_COPILOT_ENABLED, the
provider switches) show what will change and wait for Confirm. The change itself goes through
`handlers.flags.changes`, which audits it and makes it revertible; the service's alerts channel gets one line per
change, naming the service. A change that would change nothing is answered so and recorded as nothing. Reverting
(`handlers.flags.reverting`) asks about flags changed since; `history` and `preset [SERVICE]` only read.

Runbooks: Mira §5 Feature Flag Management and Rollback step 4 (gradual re-enable); Ivy release runbook Feature
Flag Controls and Emergency Rollback; Ivy on-call runbook Quick Fixes.
"""

from __future__ import annotations

from bot.audit import audit
from bot.commands import Action, Check, Command, Subcommand
from bot.context import ActionContext, CommandContext
from handlers.flags import blocks as flags_blocks
from handlers.flags import changes as flag_changes
from handlers.flags import history as flag_history
from handlers.flags import reverting
from handlers.flags.changes import FlagChange, FlagStoreNotConfigured
from handlers.flags.outcome import apply_and_report, owners_check
from handlers.flags.parsing import (
    ChangeFlags,
    FlagHistory,
    FlagRequest,
    GetFlag,
    ListFlags,
    ListPresets,
    RevertChange,
    acknowledge,
    parse,
)
from integrations.flag_backends import FlagBackendError

CONFIRM_ACTION = reverting.CONFIRM_ACTION
CANCEL_ACTION = reverting.CANCEL_ACTION


# --- authorize --------------------------------------------------------------------------------------------------


async def guard(request: FlagRequest, ctx: CommandContext) -> Check | None:
    """What `/flag` would change, checked before `run`: reading changes nothing; a change needs the service's
    owners; a revert, the owners of the change's service — once the change is one `revert` would undo (else it
    answers why not, to anyone). `revert` checks again itself: a change still pending here may be applied by the
    time it runs."""
    if isinstance(request, ListFlags | GetFlag | ListPresets | FlagHistory):
        return None
    if isinstance(request, RevertChange):
        loaded = await flag_changes.load_change(ctx.bot, request.change_id)
        if loaded is None or loaded[1]["status"] != "applied" or loaded[1]["reverted_by"] is not None:
            return None
        return owners_check(loaded[0].service, str(loaded[0].id))
    return owners_check(request.service, request.label or ",".join(request.targets))


async def pending_guard(ctx: ActionContext) -> Check | None:
    """Confirm and Cancel change a pending change: its service's owners; a change that no longer exists, nothing."""
    loaded = (
        await flag_changes.load_change(ctx.bot, int(ctx.value or 0)) if (ctx.value or "").isdigit() else None
    )
    return None if loaded is None else owners_check(loaded[0].service, str(loaded[0].id))


# --- act --------------------------------------------------------------------------------------------------------


async def list_flags(request: ListFlags, ctx: CommandContext) -> None:
    sections = []
    for service in [request.service] if request.service else ctx.bot.catalog.services:
        if not service.flags:
            continue
        try:
            current = await flag_changes.current_values(ctx.bot, service, service.flags)
            sections.append(flags_blocks.ServiceFlags(service, current, None))
        except (FlagStoreNotConfigured, FlagBackendError) as exc:
            sections.append(flags_blocks.ServiceFlags(service, {}, str(exc)))
    text, blocks = flags_blocks.render_list(sections)
    await ctx.reply.ephemeral(text, blocks)


async def get_flag(request: GetFlag, ctx: CommandContext) -> None:
    try:
        current = await flag_changes.current_values(ctx.bot, request.service, [request.flag])
    except (FlagStoreNotConfigured, FlagBackendError) as exc:
        await ctx.reply.ephemeral(f":x: {exc}")
        return
    text, blocks = flags_blocks.render_get(request.service, current[request.flag.name])
    await ctx.reply.ephemeral(text, blocks)


async def change_flags(request: ChangeFlags, ctx: CommandContext) -> None:
    bot, user = ctx.bot, ctx.invocation.user_id
    try:
        items = await flag_changes.plan(bot, request.service, request.targets)
    except (FlagStoreNotConfigured, FlagBackendError) as exc:
        await ctx.reply.ephemeral(f":x: {exc}. Nothing changed.")
        return
    unchanged = [item for item in items if item.noop]
    items = [item for item in items if not item.noop]
    if not items:  # recorded as nothing: no change number, no backend write, no announcement
        already = ", ".join(f"`{i.flag.name}` is already {i.before.display()}" for i in unchanged)
        await ctx.reply.ephemeral(f"Nothing to change on {request.service.display_name}: {already}.")
        return
    # A rollout stage re-enables its risky flag step by step: each stage is confirmed, whichever flags it moves.
    rollout_flag = request.service.flag(request.service.rollout.flag) if request.service.rollout else None
    risky = any(item.flag.risk == "high" for item in items) or (
        request.kind == "rollout" and rollout_flag is not None and rollout_flag.risk == "high"
    )
    change = await flag_changes.record_change(
        bot,
        request.service,
        kind=request.kind,
        label=request.label,
        requested_by=user,
        requested_in=ctx.invocation.channel_id,
        items=items,
        pending=risky,
    )
    if risky:
        text, blocks = flags_blocks.render_confirm(change, CONFIRM_ACTION, CANCEL_ACTION)
        await ctx.reply.ephemeral(text, blocks)
        return
    await apply_and_report(bot, change, user, ctx.reply, replace=False)


async def list_presets(request: ListPresets, ctx: CommandContext) -> None:
    services = [request.service] if request.service else [s for s in ctx.bot.catalog.services if s.presets]
    text, blocks = flags_blocks.render_presets(services)
    await ctx.reply.ephemeral(text, blocks)


async def history(request: FlagHistory, ctx: CommandContext) -> None:
    rows = await flag_history.load(ctx.bot, request)
    text, blocks = flag_history.render(ctx.bot, request, rows)
    await ctx.reply.ephemeral(text, blocks)


async def run(request: FlagRequest, ctx: CommandContext) -> None:
    if isinstance(request, ListFlags):
        await list_flags(request, ctx)
    elif isinstance(request, GetFlag):
        await get_flag(request, ctx)
    elif isinstance(request, RevertChange):
        await reverting.revert(request, ctx)
    elif isinstance(request, ListPresets):
        await list_presets(request, ctx)
    elif isinstance(request, FlagHistory):
        await history(request, ctx)
    else:
        await change_flags(request, ctx)


# --- buttons ------------------------------------------------------------------------------------------------------


async def _pending_change(ctx: ActionContext) -> FlagChange | None:
    loaded = (
        await flag_changes.load_change(ctx.bot, int(ctx.value or 0)) if (ctx.value or "").isdigit() else None
    )
    if loaded is None:
        await ctx.reply.replace("That change no longer exists.")
        return None
    return loaded[0]


async def _explain_not_pending(ctx: ActionContext, change_id: int) -> None:
    loaded = await flag_changes.load_change(ctx.bot, change_id)
    assert loaded is not None
    row = loaded[1]
    if row["status"] == "pending":  # still pending but the claim failed: it expired
        await ctx.reply.replace(
            f"Change {change_id} expired: risky changes must be confirmed within "
            f"{int(flag_changes.CONFIRM_WITHIN.total_seconds() // 60)} minutes. Run the command again."
        )
    else:
        who = f" by <@{row['decided_by']}>" if row["decided_by"] else ""
        await ctx.reply.ephemeral(f"Change {change_id} was already {row['status']}{who}.")


async def confirm(ctx: ActionContext) -> None:
    change = await _pending_change(ctx)
    if change is None:
        return
    if change.kind == "revert":  # claims the original too, once
        await reverting.claim_and_apply(ctx.bot, change, ctx.user_id, ctx.reply, replace=True)
        return
    if not await flag_changes.claim(ctx.bot, change.id, ctx.user_id):
        await _explain_not_pending(ctx, change.id)
        return
    await audit(
        ctx.bot.storage.pool,
        actor=ctx.user_id,
        action="flag.confirm",
        outcome="ok",
        service=change.service.name,
        target=str(change.id),
    )
    await apply_and_report(ctx.bot, change, ctx.user_id, ctx.reply, replace=True)


async def cancel(ctx: ActionContext) -> None:
    """Discarding a pending change needs what applying it needs (the owners): a stranger must not be able to
    throw away the change an owner is about to confirm."""
    change = await _pending_change(ctx)
    if change is None:
        return
    if await flag_changes.cancel(ctx.bot, change.id, ctx.user_id):
        await ctx.reply.replace(f"Change {change.id} cancelled: nothing changed.")
    else:
        await _explain_not_pending(ctx, change.id)


COMMAND = Command(
    name="/flag",
    description="List, read and change feature flags (owners only; risky flags need confirmation)",
    usage_hint=(
        "list [service] | get FLAG | set FLAG VALUE | on FLAG | off FLAG | unset FLAG | preset | revert | history"
    ),
    subcommands=(
        Subcommand("list", "list [service]", "every flag with its value, default, backend and last change"),
        Subcommand("get", "get FLAG", "one flag's value (FLAG or service:FLAG)"),
        Subcommand("set", "set FLAG VALUE", "change a flag; the value is checked against the catalog"),
        Subcommand("on", "on FLAG", "set a true/false flag to true"),
        Subcommand("off", "off FLAG", "set a true/false flag to false"),
        Subcommand("unset", "unset FLAG", "back to the service's default"),
        Subcommand(
            "preset",
            "preset SERVICE NAME",
            "apply a runbook preset (e.g. ivy-v2 emergency); without a name: list them",
        ),
        Subcommand("revert", "revert CHANGE", "undo a change by its number (later changes are asked about)"),
        Subcommand("rollout", "rollout FLAG STAGE", "gradual re-enable: internal, 10%, 50%, 100%"),
        Subcommand("history", "history [service|FLAG] [N]", "the last N changes: who, when, before → after"),
    ),
    examples=("/flag list ivy-v2", "/flag off MIRA_MODE_COMMAND_ENABLED", "/flag preset ivy-v2 emergency"),
    dangerous=True,
    parse=parse,
    acknowledge=acknowledge,
    run=run,
    guard=guard,
)
CONFIRM = Action(action_id=CONFIRM_ACTION, run=confirm, dangerous=True, guard=pending_guard)
CANCEL = Action(action_id=CANCEL_ACTION, run=cancel, dangerous=True, guard=pending_guard)
REVERT_ANYWAY = Action(
    action_id=reverting.ANYWAY_ACTION, run=reverting.revert_anyway, dangerous=True, guard=pending_guard
)
SKIP_CONFLICTS = Action(
    action_id=reverting.SKIP_ACTION, run=reverting.skip_conflicts, dangerous=True, guard=pending_guard
)
ACTIONS = (CONFIRM, CANCEL, REVERT_ANYWAY, SKIP_CONFLICTS)
