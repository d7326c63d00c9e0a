"""Making a request (a rollback or a Level-1 restart): preflight, the one-open-run-per-service claim, the visible
request message; and what a second request is told about the open one.

Shared by /rollback and /restart, so both refuse a second open run of a service the same way: Postgres's unique
index decides (handlers/rollback/store.py `OpenRunExists`), and the answer names the open run — its number, its
state and a link to its thread. A pending request past its expiry that the worker has not expired yet is expired
here first, so it never blocks a new one.
"""

from __future__ import annotations

from bot import mrkdwn
from bot.catalog import RollbackPlan, Service
from bot.context import BotContext, CommandContext
from bot.replies import permalink
from handlers.rollback import blocks, preflight
from handlers.rollback import run as rollback_run
from handlers.rollback import store as rollbacks


async def open_run_told(bot: BotContext, run_id: int | None, service: Service) -> str:
    """Which run of `service` is open: its number, kind, state and thread."""
    run = await rollbacks.load(bot, run_id) if run_id is not None else None
    if run is None:
        return f"Another rollback or restart of {service.display_name} is open: see `/rollback status {service.name}`."
    state = blocks.RUN_STATE.get(run.status, run.status)
    if run.status == "pending" and run.preflight:
        state = "waiting for its preflight to pass"
    link = await permalink(bot.slack, run.channel, run.message_ts)
    thread = f" ({mrkdwn.link(link, 'thread', trusted_label=True)})" if link else ""
    return (
        f":no_entry: {run.noun} #{run.id} of {service.display_name} (plan `{run.plan}`) is still open: {state}"
        f"{thread}. One at a time per service: finish, abort or cancel it first, or see "
        f"`/rollback status {service.name}`."
    )


async def make_request(
    ctx: CommandContext, service: Service, plan: RollbackPlan, reason: str | None, kind: str
) -> None:
    bot, user = ctx.bot, ctx.invocation.user_id
    problems = await preflight.check(bot, service, plan.steps)
    run_id: int | None = None
    for attempt in range(2):
        now = bot.clock()
        try:
            run_id = await rollbacks.create(
                bot,
                service,
                plan,
                reason=reason,
                requested_by=user,
                requested_in=ctx.invocation.channel_id,
                now=now,
                kind=kind,
                preflight=problems,
            )
            break
        except rollbacks.OpenRunExists as exc:
            open_run = await rollbacks.load(bot, exc.run_id) if exc.run_id is not None else None
            if attempt == 0 and open_run and open_run.status == "pending" and open_run.expires_at <= now:
                await rollback_run.expire(bot, open_run.id, now)
                continue
            await ctx.reply.ephemeral(await open_run_told(bot, exc.run_id, service))
            return
    assert run_id is not None
    run = await rollbacks.load(bot, run_id)
    assert run is not None
    text, message_blocks = blocks.render_run(run, bot.clock())
    posted = await ctx.reply.post(text, message_blocks)
    if posted is None:
        # Nobody else can see (or confirm) a request shown only to its author.
        await rollbacks.end_pending(bot, run, user, "cancelled", bot.clock())
        await ctx.reply.ephemeral(
            f"{run.noun} #{run_id} was not started: invite me to this channel and ask again."
        )
        return
    await rollbacks.attach_message(bot, run_id, posted.channel, posted.ts)
