"""Probing a catalog service: each probe through its integration, and the service's status from its probes.

Shared by /health and the weekly handoff's "Check system health dashboards" evidence, so both say the same thing
about a service (the style guide: what two handlers need lives in `bot/` once). Each probe is bounded by its own
timeout (catalog, default 2 s); the probes of a service, and the services, run concurrently. /health shares a
probe's result with the requests that ask within a second of its start (`shared`); every run is kept in
`health_runs` as evidence (runs.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

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


#: How long a probe's result is shared with the /health requests that ask after it started (bot/single_flight.py).
#: Short enough that "Checked 12:00:01" is still true of every probe in the answer (a second's resolution), long
#: enough that a crowd typing /health in the same second probes each backend once.
SHARED_PROBE_SECONDS = 1.0


async def shared_probe(service: Service, probe: Probe, bot: BotContext) -> ProbeResult:
    """The probe's result, shared with every /health that asks for the same probe within SHARED_PROBE_SECONDS of
    its start, whatever their scope or detail (`/health` and `/health fa` share FA's probes)."""
    return await bot.flights.run(
        ("health-probe", service.name, probe.name),
        lambda: run_probe(probe, bot),
        fresh_for=SHARED_PROBE_SECONDS,
        now=bot.monotonic(),
        tag=probe,
    )


async def check_service(service: Service, bot: BotContext, *, shared: bool = False) -> ServiceHealth:
    """Probe the service now; with `shared`, a probe started in the last SHARED_PROBE_SECONDS by another caller is
    joined instead (/health: the answer to a crowd). Unshared for what must observe after its own step (a
    rollback's health check) or runs alone (the handoff's evidence, a report)."""
    results = tuple(
        await asyncio.gather(
            *(shared_probe(service, p, bot) if shared else run_probe(p, bot) for p in service.probes)
        )
    )
    return ServiceHealth(service=service, status=service_status(results), probes=results)


async def check_services(
    services: tuple[Service, ...], bot: BotContext, *, shared: bool = False
) -> tuple[ServiceHealth, ...]:
    return tuple(await asyncio.gather(*(check_service(service, bot, shared=shared) for service in services)))
