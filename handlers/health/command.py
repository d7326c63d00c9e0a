"""/health: probe every catalog service concurrently and answer one message.

parse → (no authorization: read-only) → act → render. The probing itself is probing.py, shared (through
`handlers.health`) with the weekly handoff's health evidence and the rollback's health steps. Each probe is
bounded by its own timeout (catalog, default 2 s) so one hung dependency never delays the answer past that
timeout; the probes of all services run at once, so the answer arrives after the slowest probe, not the sum.
Requests that arrive together share each probe's result (a crowd typing /health during an outage probes each
backend once: probing.py, SHARED_PROBE_SECONDS) and write their runs together (runs.py). Probe kinds and checks
come from the runbooks via the catalog (Mira Appendix B, Ivy "Health Checks", AI Assistant "Quick Reference",
FA "P0").
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

import redis.exceptions

from bot.catalog import Catalog
from bot.commands import Action, Command, UsageError
from bot.context import ActionContext, BotContext, CommandContext
from bot.replies import PostedMessage
from bot.scheduler import Job
from handlers.health import runs
from handlers.health.blocks import render_health
from handlers.health.model import HealthReport, HealthRequest
from handlers.health.probing import check_services

log = logging.getLogger(__name__)

RERUN_ACTION = "health_rerun"
RERUN_LOCK_SECONDS = 30


# --- parse ----------------------------------------------------------------------------------------------------


def parse(text: str, catalog: Catalog) -> HealthRequest:
    words = text.split()
    if not words:
        return HealthRequest(services=tuple(catalog.services), detailed=False)
    if len(words) > 1:
        raise UsageError(f"`/health` takes at most one service, got `{text.strip()}`.")
    service = catalog.find(words[0])
    if service is None:
        raise UsageError(
            f"I don't know a service called `{words[0]}`. Services: {', '.join(catalog.names())}.",
            suggestion=catalog.suggest(words[0]),
        )
    return HealthRequest(services=(service,), detailed=True)


def acknowledge(request: HealthRequest, catalog: Catalog) -> str:
    if request.detailed:
        service = request.services[0]
        return f"Checking {service.display_name} ({len(service.probes)} probes)…"
    return f"Checking {len(request.services)} services…"


# --- act ------------------------------------------------------------------------------------------------------


async def check(request: HealthRequest, bot: BotContext, requested_by: str) -> HealthReport:
    services = await check_services(request.services, bot, shared=True)
    return HealthReport(
        services=tuple(services),
        detailed=request.detailed,
        checked_at=bot.clock(),
        requested_by=requested_by,
    )


async def record_run(bot: BotContext, report: HealthReport, scope: str | None, channel: str) -> int | None:
    """Keep the run as evidence (the weekly handoff shows its own); its id, or None when the database is down."""
    return await runs.record_run(
        bot,
        report.services,
        checked_at=report.checked_at,
        requested_by=report.requested_by,
        scope=scope,
        channel=channel,
    )


def _scope(request: HealthRequest) -> str | None:
    return request.services[0].name if request.detailed else None


async def run(request: HealthRequest, ctx: CommandContext) -> None:
    report = await check(request, ctx.bot, ctx.invocation.user_id)
    run_id = await record_run(ctx.bot, report, _scope(request), ctx.invocation.channel_id)
    text, blocks = render_health(report, scope=_scope(request), recorded=run_id is not None)
    message = await ctx.reply.post(text, blocks)
    if run_id is not None and message is not None:
        await runs.attach_message(ctx.bot, run_id, message)


async def _lock_message(ctx: ActionContext, key: str) -> bool:
    """A short Redis lock per message. When Redis is down the re-check still runs: for a read-only command a
    possible duplicate edit is better than no answer."""
    try:
        return bool(await ctx.bot.storage.redis.set(key, ctx.user_id, nx=True, ex=RERUN_LOCK_SECONDS))
    except redis.exceptions.RedisError:
        log.warning("Redis unavailable: re-checking without the double-click lock", exc_info=True)
        return True


async def rerun(ctx: ActionContext) -> None:
    """The "Run again" button: re-probe and update the same message. The lock turns a double click (or two
    replicas receiving one click each) into one run; the second click is told it is running."""
    if ctx.message_ts is None:
        return
    lock_key = f"health:rerun:{ctx.channel_id}:{ctx.message_ts}"
    if not await _lock_message(ctx, lock_key):
        await ctx.reply.ephemeral("Already re-checking that message; it will update in a moment.")
        return
    try:
        service = ctx.bot.catalog.find(ctx.value) if ctx.value else None
        request = (
            HealthRequest(services=(service,), detailed=True)
            if service
            else HealthRequest(services=tuple(ctx.bot.catalog.services), detailed=False)
        )
        report = await check(request, ctx.bot, ctx.user_id)
        message = PostedMessage(channel=ctx.channel_id, ts=ctx.message_ts)
        run_id = await record_run(ctx.bot, report, _scope(request), ctx.channel_id)
        if run_id is not None:
            await runs.attach_message(ctx.bot, run_id, message)
        text, blocks = render_health(report, scope=_scope(request), recorded=run_id is not None)
        await ctx.reply.update(message, text, blocks)
    finally:
        with contextlib.suppress(redis.exceptions.RedisError):
            await ctx.bot.storage.redis.delete(lock_key)


COMMAND = Command(
    name="/health",
    description="Probe every service (or one) and show ok / degraded / down with each probe's latency",
    usage_hint="[service]",
    examples=("/health", "/health mira-copilot"),
    parse=parse,
    acknowledge=acknowledge,
    run=run,
)
RERUN = Action(action_id=RERUN_ACTION, run=rerun)


HEALTH_RUN_RETENTION = timedelta(days=30)


def retention_job(bot: BotContext) -> Job:
    """Keep 30 days of /health runs: enough for the weekly handoff's evidence, bounded for a busy channel."""

    async def prune(slot: datetime) -> None:
        async with bot.storage.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM health_runs WHERE started_at < %s", (slot - HEALTH_RUN_RETENTION,)
            )

    return Job(
        name="health_runs.retention",
        interval=timedelta(days=1),
        offset=timedelta(hours=3),
        run=prune,
        catch_up=timedelta(days=1),
    )
