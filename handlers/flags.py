"""/flag: read and change the runbooks' feature flags, typed, owned, confirmed when risky, audited, revertible.

parse → authorize → act → render. Parsing checks every value against the catalog before the ack, so a bad value
is answered with the allowed values and nothing is sent anywhere. Changing a flag needs the service's owners
(fail closed: none configured, nobody may). Risky flags (MIRA_COPILOT_ENABLED, the provider switches) show what will
change and wait for Confirm. The change itself goes through `bot.flag_changes`, which audits it and makes it
revertible; the service's alerts channel gets one line per change.

Runbooks: Mira §5 Feature Flag Management and Rollback step 4 (gradual re-enable); Ivy release runbook Feature
Flag Controls and Emergency Rollback; Ivy on-call runbook Quick Fixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot import flag_changes
from bot.audit import audit
from bot.catalog import Catalog, Flag, Service, missing_env
from bot.commands import Action, Command, Subcommand, UsageError, did_you_mean
from bot.context import ActionContext, BotContext, CommandContext
from bot.flag_changes import FlagChange, FlagStoreNotConfigured, PlannedFlag, to_wire
from bot.permissions import require_owner
from bot.replies import Reply
from handlers import flags_blocks
from integrations.flag_backends import FlagBackendError

CONFIRM_ACTION = "flag_confirm"
CANCEL_ACTION = "flag_cancel"
SUBCOMMANDS = ("list", "get", "set", "on", "off", "unset", "preset", "revert", "rollout")
TRUE_WORDS = {"true", "on", "yes", "1", "enable", "enabled"}
FALSE_WORDS = {"false", "off", "no", "0", "disable", "disabled"}


# --- parse ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFlags:
    service: Service | None


@dataclass(frozen=True)
class GetFlag:
    service: Service
    flag: Flag


@dataclass(frozen=True)
class ChangeFlags:
    """A change request: `targets` maps flag names to new wire values (None: unset, back to the default)."""

    service: Service
    kind: str  # set | unset | preset | rollout
    label: str | None
    targets: dict[str, str | None]


@dataclass(frozen=True)
class RevertChange:
    change_id: int


FlagRequest = ListFlags | GetFlag | ChangeFlags | RevertChange


def find_flag(reference: str, catalog: Catalog) -> tuple[Service, Flag]:
    """`AI_BURST_LIMIT` or `ivy-v2:AI_BURST_LIMIT`, case-insensitively; ambiguous names need the service."""
    service_name, _, name = reference.rpartition(":")
    services = catalog.services
    if service_name:
        service = catalog.find(service_name)
        if service is None:
            raise UsageError(
                f"I don't know a service called `{service_name}`.", suggestion=catalog.suggest(service_name)
            )
        services = [service]
    matches = [(s, f) for s in services if (f := s.flag(name)) is not None]
    if len(matches) == 1:
        return matches[0]
    if matches:
        choices = " or ".join(f"`{s.name}:{f.name}`" for s, f in matches)
        raise UsageError(f"`{name}` is a flag of several services: write {choices}.")
    known = [f.name for s in services for f in s.flags]
    suggestion = did_you_mean(name, known)
    raise UsageError(f"I don't know a flag called `{name}`.", suggestion=suggestion)


def parse_value(flag: Flag, text: str) -> str:
    """The wire value for `text`, checked against the flag's type; a UsageError lists what is allowed."""
    raw = text.strip()
    value: Any
    if flag.type == "bool":
        if raw.lower() in TRUE_WORDS:
            return "true"
        if raw.lower() in FALSE_WORDS:
            return "false"
        value = raw
    elif flag.type == "int":
        value = int(raw) if re.fullmatch(r"-?\d+", raw) else raw
    elif flag.type == "enum":
        assert flag.allowed is not None
        value = next((choice for choice in flag.allowed if choice.lower() == raw.lower()), raw)
    else:
        value = raw
    error = flag.check_value(value)
    if error or not raw:
        raise UsageError(f"`{raw}` is not a valid value for `{flag.name}`: {error or 'expected a value'}.")
    wire = to_wire(value)
    assert wire is not None
    return wire


def _service_arg(words: list[str], catalog: Catalog) -> Service:
    service = catalog.find(words[0])
    if service is None:
        raise UsageError(f"I don't know a service called `{words[0]}`.", suggestion=catalog.suggest(words[0]))
    return service


def parse(text: str, catalog: Catalog) -> FlagRequest:
    words = text.split()
    if not words:
        raise UsageError("Tell me what to do with flags.")
    sub, args = words[0].lower(), words[1:]
    if sub not in SUBCOMMANDS:
        raise UsageError(
            f"`{words[0]}` is not a /flag subcommand.", suggestion=did_you_mean(sub, list(SUBCOMMANDS))
        )
    if sub == "list":
        if len(args) > 1:
            raise UsageError("`/flag list` takes at most a service.")
        return ListFlags(_service_arg(args, catalog) if args else None)
    if sub == "revert":
        if len(args) != 1 or not args[0].isdigit():
            raise UsageError("`/flag revert` takes the number of a change, e.g. `/flag revert 42`.")
        return RevertChange(int(args[0]))
    if sub == "preset":
        return _parse_preset(args, catalog)
    if sub == "rollout":
        return _parse_rollout(args, catalog)
    if not args:
        raise UsageError(f"`/flag {sub}` needs a flag name.")
    service, flag = find_flag(args[0], catalog)
    if sub == "get":
        if len(args) > 1:
            raise UsageError("`/flag get` takes one flag.")
        return GetFlag(service, flag)
    if sub == "unset":
        if len(args) > 1:
            raise UsageError("`/flag unset` takes one flag (it goes back to its default).")
        return ChangeFlags(service, "unset", None, {flag.name: None})
    if sub in ("on", "off"):
        if flag.type != "bool" or len(args) > 1:
            raise UsageError(f"`/flag {sub}` is for true/false flags; use `/flag set {flag.name} VALUE`.")
        return ChangeFlags(service, "set", None, {flag.name: "true" if sub == "on" else "false"})
    if len(args) < 2:
        raise UsageError(f"`/flag set {flag.name}` needs a value.")
    return ChangeFlags(service, "set", None, {flag.name: parse_value(flag, " ".join(args[1:]))})


def _parse_preset(args: list[str], catalog: Catalog) -> ChangeFlags:
    if len(args) != 2:
        raise UsageError(
            "`/flag preset` takes a service and a preset name, e.g. `/flag preset ivy-v2 emergency`."
        )
    service = _service_arg(args, catalog)
    names = [p.name for p in service.presets]
    preset = next((p for p in service.presets if p.name == args[1].lower()), None)
    if preset is None:
        available = ", ".join(f"`{n}`" for n in names) or "none"
        raise UsageError(
            f"{service.display_name} has no preset `{args[1]}` (presets: {available}).",
            suggestion=did_you_mean(args[1], names),
        )
    return ChangeFlags(
        service, "preset", preset.name, {name: to_wire(v) for name, v in preset.values.items()}
    )


def _parse_rollout(args: list[str], catalog: Catalog) -> ChangeFlags:
    if len(args) != 2:
        raise UsageError(
            "`/flag rollout` takes a flag and a stage, e.g. `/flag rollout MIRA_COPILOT_ENABLED 10%`."
        )
    service, flag = find_flag(args[0], catalog)
    if service.rollout is None or service.rollout.flag != flag.name:
        raise UsageError(f"`{flag.name}` has no gradual rollout in the catalog.")
    stages = list(service.rollout.stages)
    stage = args[1].lower()
    if stage not in service.rollout.stages:
        raise UsageError(
            f"`{args[1]}` is not a rollout stage of `{flag.name}` (stages: {', '.join(stages)}).",
            suggestion=did_you_mean(stage, stages),
        )
    values = service.rollout.stages[stage]
    missing = missing_env(values)
    if missing:
        raise UsageError(f"The `{stage}` stage is not configured: set {', '.join(missing)}.")
    return ChangeFlags(service, "rollout", stage, {name: to_wire(v) for name, v in values.items()})


def acknowledge(request: FlagRequest, catalog: Catalog) -> str:
    if isinstance(request, ListFlags):
        return f"Reading the flags of {request.service.display_name if request.service else 'every service'}…"
    if isinstance(request, GetFlag):
        return f"Reading `{request.flag.name}` of {request.service.display_name}…"
    if isinstance(request, RevertChange):
        return f"Reverting change {request.change_id}…"
    what = {"preset": f"preset `{request.label}`", "rollout": f"rollout stage `{request.label}`"}.get(
        request.kind, ", ".join(f"`{name}`" for name in request.targets)
    )
    return f"Checking {what} on {request.service.display_name}…"


# --- authorize --------------------------------------------------------------------------------------------------


async def authorize(bot: BotContext, user_id: str, service: Service, target: str, reply: Reply) -> bool:
    """Owners only, fail closed; a refusal is audited and told to the user."""
    return await require_owner(
        bot,
        user_id,
        service,
        f"change the flags of {service.display_name}",
        action="flag.refused",
        target=target,
        reply=reply,
    )


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
    target = request.label or ",".join(request.targets)
    if not await authorize(bot, user, request.service, target, ctx.reply):
        return
    try:
        items = await flag_changes.plan(bot, request.service, request.targets)
    except (FlagStoreNotConfigured, FlagBackendError) as exc:
        await ctx.reply.ephemeral(f":x: {exc}. Nothing changed.")
        return
    if all(_already(item) for item in items):
        await ctx.reply.ephemeral(f"Nothing to change: {', '.join(i.describe() for i in items)}.")
        return
    risky = any(item.flag.risk == "high" for item in items)
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


def _already(item: PlannedFlag) -> bool:
    if not item.before.known:
        return False
    if item.after is None:
        return not item.before.present
    return item.before.present and item.before.value == item.after


async def apply_and_report(
    bot: BotContext, change: FlagChange, actor: str, reply: Reply, *, replace: bool
) -> bool:
    result = await flag_changes.apply(bot, change, actor)
    text, blocks = flags_blocks.render_result(result)
    await (reply.replace if replace else reply.ephemeral)(text, blocks)
    if result.applied:
        await reply.post(
            flag_changes.announcement(change, actor), channel=flag_changes.alerts_channel(bot, change.service)
        )
    return result.ok


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
        change = await flag_changes.start_revert(bot, original, user, ctx.invocation.channel_id)
    except (FlagStoreNotConfigured, FlagBackendError) as exc:
        await ctx.reply.ephemeral(f":x: {exc}. Nothing changed.")
        return
    if change is None:
        await ctx.reply.ephemeral(f"Change {original.id} is being reverted by someone else.")
        return
    if not await apply_and_report(bot, change, user, ctx.reply, replace=False):
        await flag_changes.release_revert(bot, change)


async def run(request: FlagRequest, ctx: CommandContext) -> None:
    if isinstance(request, ListFlags):
        await list_flags(request, ctx)
    elif isinstance(request, GetFlag):
        await get_flag(request, ctx)
    elif isinstance(request, RevertChange):
        await revert(request, ctx)
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
    if not await authorize(ctx.bot, ctx.user_id, change.service, str(change.id), ctx.reply):
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
    if not await authorize(ctx.bot, ctx.user_id, change.service, str(change.id), ctx.reply):
        return
    if await flag_changes.cancel(ctx.bot, change.id, ctx.user_id):
        await ctx.reply.replace(f"Change {change.id} cancelled: nothing changed.")
    else:
        await _explain_not_pending(ctx, change.id)


COMMAND = Command(
    name="/flag",
    description="List, read and change feature flags (owners only; risky flags need confirmation)",
    usage_hint="list [service] | get FLAG | set FLAG VALUE | on FLAG | off FLAG | unset FLAG",
    subcommands=(
        Subcommand("list", "list [service]", "every flag with its value, default, backend and last change"),
        Subcommand("get", "get FLAG", "one flag's value (FLAG or service:FLAG)"),
        Subcommand("set", "set FLAG VALUE", "change a flag; the value is checked against the catalog"),
        Subcommand("on", "on FLAG", "set a true/false flag to true"),
        Subcommand("off", "off FLAG", "set a true/false flag to false"),
        Subcommand("unset", "unset FLAG", "back to the service's default"),
        Subcommand("preset", "preset SERVICE NAME", "apply a runbook preset (e.g. ivy-v2 emergency)"),
        Subcommand("revert", "revert CHANGE", "undo a change by its number"),
        Subcommand("rollout", "rollout FLAG STAGE", "gradual re-enable: internal, 10%, 50%, 100%"),
    ),
    examples=("/flag list ivy-v2", "/flag off MIRA_MODE_COMMAND_ENABLED", "/flag preset ivy-v2 emergency"),
    dangerous=True,
    parse=parse,
    acknowledge=acknowledge,
    run=run,
)
CONFIRM = Action(action_id=CONFIRM_ACTION, run=confirm, dangerous=True)
CANCEL = Action(action_id=CANCEL_ACTION, run=cancel, dangerous=True)
