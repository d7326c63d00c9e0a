"""Reverting a flag change without undoing what came after it.

`/flag revert N` puts back what change N found. A flag changed again since (a later change, or someone outside the
bot) would silently lose that later change — issue 14: a preset's `AI_RATE_LIMIT_PER_MIN 60 → 30`, then `30 → 120`,
then `revert 1` set it to 60 without a word. So the revert is planned against what each flag is *now*: flags already
back are left out (nothing to change), and conflicting ones make the revert wait for a decision — "Revert anyway"
or "Skip that flag" — as a risky flag makes it wait for Confirm. Deciding claims the pending revert and the original
in one transaction (`claim`), so a double click, a second replica or two people reverting at once apply it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.context import BotContext
from handlers.flags.changes import CONFIRM_WITHIN, FlagChange, PlannedFlag, items_json, plan, record_change


@dataclass(frozen=True)
class RevertPlan:
    items: list[PlannedFlag]  # what the revert would change (flags already back are left out)
    conflicts: dict[str, dict[str, Any]]  # flag → {"change", "by", "now"}: changed since the original
    unknown: list[str]  # flags whose earlier value the bot never knew: they cannot be put back


def _conflict(original: FlagChange, item: PlannedFlag, set_then: str | None) -> dict[str, Any] | None:
    """What is there now, when it is not what `original` left; None when nothing changed it since."""
    now = item.before
    if now.known and now.present == (set_then is not None) and (not now.present or now.value == set_then):
        return None
    later = now.last_change if not now.outside and now.last_change != original.id else None
    return {
        "change": later,
        "by": now.last_set_by if later is not None else None,
        "now": now.display() if now.known else "unknown",
    }


async def plan_revert(bot: BotContext, original: FlagChange) -> RevertPlan:
    """Put back each flag's value from before `original`, as far as the bot knew it, checked against now."""
    unknown = [item.flag.name for item in original.items if not item.before.known]
    targets = {
        item.flag.name: item.before.value if item.before.present else None
        for item in original.items
        if item.before.known
    }
    set_then = {item.flag.name: item.after for item in original.items}
    planned = await plan(bot, original.service, targets)
    items, conflicts = [], {}
    for item in planned:
        if item.noop:
            continue
        conflict = _conflict(original, item, set_then[item.flag.name])
        if conflict is not None:
            conflicts[item.flag.name] = conflict
        items.append(item)
    return RevertPlan(items, conflicts, unknown)


async def record_revert(
    bot: BotContext, original: FlagChange, revert: RevertPlan, actor: str, channel: str | None
) -> FlagChange:
    """The revert as a change of its own: pending when it must be decided (conflicts) or confirmed (risky)."""
    pending = bool(revert.conflicts) or any(item.flag.risk == "high" for item in revert.items)
    return await record_change(
        bot,
        original.service,
        kind="revert",
        label=f"revert of change {original.id}",
        requested_by=actor,
        requested_in=channel,
        items=revert.items,
        pending=pending,
        reverts=original.id,
        conflicts=revert.conflicts,
    )


async def claim(
    bot: BotContext, change: FlagChange, actor: str, *, decided: bool, skip_conflicts: bool = False
) -> str:
    """Claim a revert for applying, and its original as reverted by it, in one transaction.

    "ok" for the one caller that won; "lost" when the revert is no longer pending (decided by another click,
    cancelled, or expired); "reverted" when another revert of the original won first (this one is cancelled);
    "empty" when skipping the conflicting flags leaves nothing to revert (cancelled, the original stays
    revertible). `decided`: a click on a pending revert (else the requester's own, recorded as applying). With
    `skip_conflicts` the stored change keeps only the flags applied."""
    now = bot.clock()
    async with bot.storage.pool.connection() as conn, conn.transaction():
        if decided:
            cursor = await conn.execute(
                """UPDATE flag_changes SET status = 'applying', decided_by = %s, decided_at = %s
                   WHERE id = %s AND status = 'pending' AND created_at > %s""",
                (actor, now, change.id, now - CONFIRM_WITHIN),
            )
            if cursor.rowcount != 1:
                return "lost"
        if skip_conflicts:
            change.items = [item for item in change.items if item.flag.name not in change.conflicts]
            await conn.execute(
                "UPDATE flag_changes SET changes = %s WHERE id = %s", (items_json(change.items), change.id)
            )
            if not change.items:
                await conn.execute("UPDATE flag_changes SET status = 'cancelled' WHERE id = %s", (change.id,))
                change.status = "cancelled"
                return "empty"
        cursor = await conn.execute(
            """UPDATE flag_changes SET reverted_by = %s
               WHERE id = %s AND reverted_by IS NULL AND status = 'applied'""",
            (change.id, change.reverts),
        )
        if cursor.rowcount != 1:
            await conn.execute("UPDATE flag_changes SET status = 'cancelled' WHERE id = %s", (change.id,))
            change.status = "cancelled"
            return "reverted"
    change.status = "applying"
    return "ok"


async def release(bot: BotContext, revert: FlagChange) -> None:
    """A failed revert frees its original for another attempt."""
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            "UPDATE flag_changes SET reverted_by = NULL WHERE id = %s AND reverted_by = %s",
            (revert.reverts, revert.id),
        )
