"""Probing a catalog service: each probe through its integration, and the service's status from its probes.

Shared by /health and the weekly handoff's "Check system health dashboards" evidence, so both say the same thing
about a service (the style guide: what two handlers need lives in `bot/` once). Each probe is bounded by its own
timeout (catalog, default 2 s); the probes of a service, and the services, run concurrently. Every run is kept in
`health_runs` as evidence.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from psycopg.types.json import Jsonb

from bot.catalog import HttpProbe, PostgresProbe, Probe, RedisProbe, Service, TcpProbe, missing_env
from bot.context import BotContext
from integrations import probes

log = logging.getLogger(__name__)


class Status(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    NOT_CONFIGURED = "not configured"


@dataclass(frozen=True)
class ProbeResult:
    name: str
    kind: str
    status: Status
    latency_ms: float | None
    detail: str
    critical: bool = False
    #: What a failing HTTP probe's service answered, summarised (integrations/probes.py: body_summary); outside
    #: text, escaped when rendered.
    body: str = ""


@dataclass(frozen=True)
class ServiceHealth:
    service: Service
    status: Status
    probes: tuple[ProbeResult, ...]


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
        outcome.body,
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


async def check_services(services: tuple[Service, ...], bot: BotContext) -> tuple[ServiceHealth, ...]:
    return tuple(await asyncio.gather(*(check_service(service, bot) for service in services)))


def _results_json(services: tuple[ServiceHealth, ...]) -> Jsonb:
    return Jsonb(
        {
            health.service.name: {
                "status": health.status.value,
                "probes": [
                    {
                        "name": p.name,
                        "status": p.status.value,
                        "latency_ms": p.latency_ms,
                        "detail": p.detail,
                        **({"body": p.body} if p.body else {}),
                    }
                    for p in health.probes
                ],
            }
            for health in services
        }
    )


async def record_run(
    bot: BotContext,
    services: tuple[ServiceHealth, ...],
    *,
    checked_at: datetime,
    requested_by: str,
    scope: str | None,
    channel: str,
) -> int | None:
    """Keep the run as evidence; its id, or None when the bot's database is unavailable. Best effort: /health must
    answer even then, so the failure is logged and the caller notes it in the message."""
    try:
        async with bot.storage.autocommit(timeout=2.0) as conn:  # one statement: one round trip
            cursor = await conn.execute(
                """INSERT INTO health_runs (requested_by, scope, channel, started_at, finished_at, results)
                   VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
                (requested_by, scope, channel, checked_at, bot.clock(), _results_json(services)),
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else None
    except Exception:
        log.warning("could not record the health run", exc_info=True)
        return None
