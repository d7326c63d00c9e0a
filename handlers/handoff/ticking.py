"""Who may tick — and untick — the handoff checklist (Mira runbook §1 Handoff Checklist: the outgoing primary hands
over to the incoming one).

The people the checklist names (its roster as stored with it: the outgoing and incoming primary, the secondary,
the escalation contacts, each with their Slack account) and the handoff service's owners (catalog, plus
BOT_ADMINS). Unticking is limited the same way: an item someone vouched for cannot be undone by a bystander, and
both are audited (a refusal too, as `handoff.tick.refused` / `handoff.untick.refused`). Fail closed: with nobody
named and no owner configured, nobody may, and the answer says what to configure.
"""

from __future__ import annotations

from bot.audit import audit
from bot.context import BotContext
from bot.permissions import is_among, mentions, owners_of
from handlers.handoff.store import HandoffRecord

ROSTER_ROLES = ("outgoing", "incoming", "secondary", "escalation")


def named(record: HandoffRecord) -> list[str]:
    """The Slack accounts of the people the checklist hands over between."""
    roster = record.roster or {}
    found = [
        entry.get("slack_id")
        for role in ROSTER_ROLES
        for entry in roster.get(role) or []
        if isinstance(entry, dict)
    ]
    return list(dict.fromkeys(user for user in found if isinstance(user, str) and user))


async def refusal(bot: BotContext, record: HandoffRecord, user_id: str, *, ticking: bool) -> str | None:
    """None when `user_id` may tick (or untick) the checklist; otherwise what to tell them."""
    verb = "tick" if ticking else "untick"
    people = named(record)
    service = bot.catalog.handoff_service()
    users, groups = owners_of(bot, service) if service else ([], [])
    if user_id in people or await is_among(bot, user_id, users, groups):
        return None
    if not people and not users and not groups:
        where = f"`services[{service.name}].owners`" if service else "the handoff service's owners"
        return (
            f":lock: Nobody may {verb} this checklist yet: PagerDuty names nobody with a Slack account for this "
            f"rotation and no owner is configured. Add owners to {where} in the catalog, or set BOT_ADMINS."
        )
    allowed = mentions([*people, *(u for u in users if u not in people)], groups)
    return (
        f":lock: Only the people this handoff is between and the service's owners may {verb} it: {allowed}."
    )


async def refuse(bot: BotContext, record: HandoffRecord, user_id: str, item: int, *, ticking: bool) -> None:
    await audit(
        bot.storage.pool,
        actor=user_id,
        action="handoff.tick.refused" if ticking else "handoff.untick.refused",
        outcome="refused",
        target=f"handoff {record.rotation:%Y-%m-%d %H:%M} item {item}",
        detail={"handoff_id": record.id, "item": item},
    )
