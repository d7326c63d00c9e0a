"""The click on a next-step button: run its command line as the clicking user, exactly as if typed.

The line goes through the registry (`ActionContext.run_command`, bot/app.py): the same parse and usage errors,
the same ephemeral ack answer, the same guard before the same post-ack work, so a dangerous command clicked is
refused for someone who may not run it (fail closed), and a risky one still asks for its confirmation. The
action itself is not marked dangerous: it changes nothing, the command it runs carries its own guard.

A double click (or Slack delivering one click to two replicas) runs the line once: a short Redis lock per
message, button and user. Without Redis the line still runs: each command has its own once-only protections
(a flag change's pending confirmation, a rollback's single open request), and an answer beats none.
"""

from __future__ import annotations

import logging

import redis.exceptions

from bot.commands import Action
from bot.context import ActionContext
from handlers.next_steps.blocks import LINK_ACTION, RUN_ACTION, VALUE_CHARS

log = logging.getLogger(__name__)

DOUBLE_CLICK_SECONDS = 10


async def _first_click(ctx: ActionContext) -> bool:
    key = f"next_step:{ctx.channel_id}:{ctx.message_ts}:{ctx.action_id}:{ctx.user_id}"
    try:
        return bool(await ctx.bot.storage.redis.set(key, "1", nx=True, ex=DOUBLE_CLICK_SECONDS))
    except redis.exceptions.RedisError:
        log.warning("Redis unavailable: running the next step without the double-click lock", exc_info=True)
        return True


async def run_next_step(ctx: ActionContext) -> None:
    line = (ctx.value or "").strip()
    if not line.startswith("/") or len(line) > VALUE_CHARS or ctx.run_command is None:
        await ctx.reply.ephemeral("That button names no command; run the command yourself.")
        return
    if not await _first_click(ctx):
        await ctx.reply.ephemeral("Already running that step; its answer follows.")
        return
    await ctx.run_command(line)


async def link_opened(ctx: ActionContext) -> None:
    """Slack opens a URL button's link itself and still tells the app: nothing to do but the ack."""


RUN = Action(action_id=RUN_ACTION, run=run_next_step)
LINK = Action(action_id=LINK_ACTION, run=link_opened)
ACTIONS = (RUN, LINK)
