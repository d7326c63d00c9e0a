"""Who may change a service: its catalog owners (users and user groups) and BOT_ADMINS. Fail closed.

With nobody configured, every dangerous command is refused with a message that says where to configure owners —
a bot that lets anyone disable Mira because the catalog was left empty is worse than one that refuses.
User-group membership comes from Slack (`usergroups.users.list`), cached in Redis for a minute so a burst of
clicks does not hit Slack's rate limit; without Redis it is asked every time.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass

import redis.exceptions

from bot.audit import audit
from bot.catalog import Service
from bot.commands import AmongCheck, Check, OwnersCheck
from bot.context import BotContext
from bot.oncall_roster import is_primary_on_call
from bot.replies import Reply

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def mentions(users: list[str], groups: list[str]) -> str:
    return ", ".join([f"<@{u}>" for u in users] + [f"<!subteam^{g}>" for g in groups])


def owners_of(bot: BotContext, service: Service) -> tuple[list[str], list[str]]:
    """(users, groups) who own `service`: its catalog owners plus BOT_ADMINS."""
    admins = bot.settings.bot_admins
    users = list(dict.fromkeys([*service.owners.users, *(a for a in admins if a[0] in "UW")]))
    groups = list(dict.fromkeys([*service.owners.groups, *(a for a in admins if a[0] == "S")]))
    return users, groups


async def group_members(bot: BotContext, group: str) -> set[str]:
    key = f"usergroup:{group}:members"
    try:
        cached = await bot.storage.redis.get(key)
        if cached is not None:
            return set(json.loads(cached))
    except redis.exceptions.RedisError:
        log.warning("Redis unavailable: asking Slack for group members uncached")
        cached = None
    response = await bot.slack.usergroups_users_list(usergroup=group)
    members = set(response.get("users") or [])
    with contextlib.suppress(redis.exceptions.RedisError):
        await bot.storage.redis.set(key, json.dumps(sorted(members)), ex=GROUP_CACHE_SECONDS)
    return members


async def is_among(bot: BotContext, user_id: str, users: list[str], groups: list[str]) -> bool:
    """Whether `user_id` is one of `users` or a member of one of `groups`."""
    if user_id in users:
        return True
    for group in groups:
        if user_id in await group_members(bot, group):
            return True
    return False


async def may_change(bot: BotContext, user_id: str, service: Service, action: str) -> Decision:
    """Whether `user_id` may do `action` (e.g. "change the flags of Ivy v2") to `service`."""
    users, groups = owners_of(bot, service)
    if not users and not groups:
        return Decision(
            False,
            f":lock: Nobody may {action} yet: no owner is configured. Add Slack user IDs (U…) "
            f"or user-group IDs (S…) to `services[{service.name}].owners` in the catalog (BOT_CATALOG), or set "
            "BOT_ADMINS.",
        )
    if await is_among(bot, user_id, users, groups):
        return Decision(True)
    return Decision(
        False, f":lock: Only the owners of {service.display_name} may {action}: {mentions(users, groups)}."
    )


async def require_owner(
    bot: BotContext,
    user_id: str,
    service: Service,
    what: str,
    *,
    action: str,
    target: str,
    reply: Reply,
    on_call_may: bool = False,
) -> bool:
    """`may_change` — or, with `on_call_may`, being the service's primary on-call in PagerDuty now — and on refusal
    an audit row (`action`, e.g. "flag.refused") and an ephemeral answer saying who may, or where to configure it."""
    decision = await may_change(bot, user_id, service, what)
    if decision.allowed:
        return True
    if on_call_may:
        if await is_primary_on_call(bot, user_id, service, bot.clock()):
            return True
        decision = Decision(
            False,
            f"{decision.reason} The current primary on-call of {service.display_name} in PagerDuty may too.",
        )
    await audit(
        bot.storage.pool,
        actor=user_id,
        action=action,
        outcome="refused",
        service=service.name,
        target=target,
        detail={"reason": decision.reason, "what": what},
    )
    await reply.ephemeral(decision.reason)
    return False


async def enforce(bot: BotContext, user_id: str, check: Check, reply: Reply) -> bool:
    """A guard's check (bot/commands.py), run by bot/app.py before a dangerous command's or button's `run`: the
    same owners check and refusal the handlers use (`require_owner`), or membership of the named people."""
    if isinstance(check, OwnersCheck):
        return await require_owner(
            bot,
            user_id,
            check.service,
            check.what,
            action=check.refused,
            target=check.target,
            reply=reply,
            on_call_may=check.on_call_may,
        )
    assert isinstance(check, AmongCheck)
    if await is_among(bot, user_id, list(check.users), list(check.groups)):
        return True
    await audit(
        bot.storage.pool,
        actor=user_id,
        action=check.refused,
        outcome="refused",
        service=check.service.name,
        target=check.target,
        detail=check.detail,
    )
    await reply.ephemeral(check.refusal)
    return False
