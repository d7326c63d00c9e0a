"""/health: probe every catalog service concurrently and answer one message.

parse → (no authorization: read-only) → act → render. Each probe is bounded by its own timeout (catalog, default
2 s) so one hung dependency never delays the answer past that timeout; the probes of all services run at once, so
the answer arrives after the slowest probe, not the sum. Probe kinds and checks come from the runbooks via the
catalog (Mira Appendix B, Ivy "Health Checks", AI Assistant "Quick Reference", FA "P0").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import redis.exceptions
from psycopg.types.json import Jsonb

from bot.catalog import Catalog, HttpProbe, PostgresProbe, Probe, RedisProbe, Service, TcpProbe, missing_env
from bot.commands import Action, Command, UsageError
from bot.context import ActionContext, BotContext, CommandContext
from bot.replies import PostedMessage
from bot.scheduler import Job
from handlers.health_blocks import render_health
from integrations import probes

log = logging.getLogger(__name__)

RERUN_ACTION = "health_rerun"
RERUN_LOCK_SECONDS = 30


class Status(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    NOT_CONFIGURED = "not configured"


@dataclass(frozen=True)
class HealthRequest:
    """Which services to check; `detailed` when one was named (every probe shown, even the healthy ones)."""

    services: tuple[Service, ...]
    detailed: bool


@dataclass(frozen=True)
class ProbeResult:
    name: str
    kind: str
    status: Status
    latency_ms: float | None
    detail: str
    critical: bool = False


@dataclass(frozen=True)
class ServiceHealth:
    service: Service
    status: Status
    probes: tuple[ProbeResult, ...]


@dataclass(frozen=True)
class HealthReport:
    services: tuple[ServiceHealth, ...]
    detailed: bool
    checked_at: datetime
    requested_by: str
    recorded: bool = True


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


async def run_probe(probe: Probe, bot: BotContext) -> ProbeResult:
    """One probe through its integration; an unset `${VAR}` makes it "not configured" instead of failing."""
    missing = missing_env(probe)
    if missing:
        return ProbeResult(
            probe.name, probe.kind, Status.NOT_CONFIGURED, None, "set " + ", ".join(missing), probe.critical
        )
    if isinstance(probe, HttpProbe):
        job = probes.http_probe(
            bot.http,
            url=probe.url,
            method=probe.method,
            json_body=probe.json_body,
            headers=probe.headers,
            expect_status=probe.expect_status,
            json_field=probe.json_field,
            ok_values=probe.ok_values,
            degraded_values=probe.degraded_values,
            timeout=probe.timeout,
        )
    elif isinstance(probe, PostgresProbe):
        job = probes.postgres_probe(probe.dsn, timeout=probe.timeout)
    elif isinstance(probe, RedisProbe):
        job = probes.redis_probe(probe.url, timeout=probe.timeout)
    elif isinstance(probe, TcpProbe):
        job = probes.tcp_probe(probe.host, int(probe.port), timeout=probe.timeout)
    else:  # pragma: no cover - the catalog's discriminated union admits no other kind
        raise TypeError(f"unknown probe kind {probe!r}")
    outcome = await job
    return ProbeResult(
        probe.name,
        probe.kind,
        Status(outcome.status.value),
        outcome.latency_ms,
        outcome.detail,
        probe.critical,
    )


def service_status(results: tuple[ProbeResult, ...]) -> Status:
    """ok when every configured probe is ok; down when all are down or a critical one is; degraded in between."""
    configured = [r.status for r in results if r.status is not Status.NOT_CONFIGURED]
    if not configured:
        return Status.NOT_CONFIGURED
    if any(r.critical and r.status is Status.DOWN for r in results):
        return Status.DOWN
    if all(status is Status.OK for status in configured):
        return Status.OK
    if all(status is Status.DOWN for status in configured):
        return Status.DOWN
    return Status.DEGRADED


async def check_service(service: Service, bot: BotContext) -> ServiceHealth:
    results = tuple(await asyncio.gather(*(run_probe(probe, bot) for probe in service.probes)))
    return ServiceHealth(service=service, status=service_status(results), probes=results)


async def check(request: HealthRequest, bot: BotContext, requested_by: str) -> HealthReport:
    services = await asyncio.gather(*(check_service(service, bot) for service in request.services))
    return HealthReport(
        services=tuple(services),
        detailed=request.detailed,
        checked_at=datetime.now(UTC),
        requested_by=requested_by,
    )


def _results_json(report: HealthReport) -> Jsonb:
    return Jsonb(
        {
            health.service.name: {
                "status": health.status.value,
                "probes": [
                    {"name": p.name, "status": p.status.value, "latency_ms": p.latency_ms, "detail": p.detail}
                    for p in health.probes
                ],
            }
            for health in report.services
        }
    )


async def record_run(bot: BotContext, report: HealthReport, scope: str | None, channel: str) -> int | None:
    """Keep the run as evidence (the weekly handoff shows the latest); its id, or None when the bot's database is
    unavailable. Best effort: /health must answer even then, so the failure is logged and noted in the message."""
    try:
        async with bot.storage.autocommit(timeout=2.0) as conn:  # one statement: one round trip
            cursor = await conn.execute(
                """INSERT INTO health_runs (requested_by, scope, channel, started_at, finished_at, results)
                   VALUES (%s, %s, %s, %s, now(), %s) RETURNING id""",
                (report.requested_by, scope, channel, report.checked_at, _results_json(report)),
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else None
    except Exception:
        log.warning("could not record the health run", exc_info=True)
        return None


async def attach_message(bot: BotContext, run_id: int, message: PostedMessage) -> None:
    """Where the run's answer is, so later features can link to it."""
    try:
        async with bot.storage.autocommit(timeout=2.0) as conn:
            await conn.execute(
                "UPDATE health_runs SET message_channel = %s, message_ts = %s WHERE id = %s",
                (message.channel, message.ts, run_id),
            )
    except Exception:
        log.warning("could not attach the message to its health run", exc_info=True)


def _scope(request: HealthRequest) -> str | None:
    return request.services[0].name if request.detailed else None


async def run(request: HealthRequest, ctx: CommandContext) -> None:
    report = await check(request, ctx.bot, ctx.invocation.user_id)
    run_id = await record_run(ctx.bot, report, _scope(request), ctx.invocation.channel_id)
    text, blocks = render_health(report, scope=_scope(request), recorded=run_id is not None)
    message = await ctx.reply.post(text, blocks)
    if run_id is not None and message is not None:
        await attach_message(ctx.bot, run_id, message)


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
            await attach_message(ctx.bot, run_id, message)
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
