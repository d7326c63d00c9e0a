"""Who may change a service's flags, and how a change ends: applied, answered, announced.

Shared by :mod:`handlers.flags.command` (set, preset, rollout, Confirm) and :mod:`handlers.flags.reverting`
(revert and its decision buttons), so a change reads the same in Slack however it was started.
"""

from __future__ import annotations

from bot.catalog import Service
from bot.commands import OwnersCheck
from bot.context import BotContext
from bot.permissions import require_owner
from bot.replies import Reply
from handlers.flags import blocks as flags_blocks
from handlers.flags import changes as flag_changes
from handlers.flags.changes import FlagChange


def owners_check(service: Service, target: str) -> OwnersCheck:
    """Owners only, fail closed; a refusal is audited as flag.refused on `target` and told to the user."""
    return OwnersCheck(service, f"change the flags of {service.display_name}", "flag.refused", target)


async def authorize(bot: BotContext, user_id: str, service: Service, target: str, reply: Reply) -> bool:
    """`owners_check`, asked by a handler itself."""
    check = owners_check(service, target)
    return await require_owner(
        bot, user_id, service, check.what, action=check.refused, target=target, reply=reply
    )


async def apply_and_report(
    bot: BotContext, change: FlagChange, actor: str, reply: Reply, *, replace: bool
) -> bool:
    """Apply a claimed change, answer the user with the outcome, announce it in the service's alerts channel."""
    result = await flag_changes.apply(bot, change, actor)
    text, blocks = flags_blocks.render_result(result)
    await (reply.replace if replace else reply.ephemeral)(text, blocks)
    if result.applied:
        await reply.post(
            flag_changes.announcement(change, actor), channel=flag_changes.alerts_channel(bot, change.service)
        )
    return result.ok
