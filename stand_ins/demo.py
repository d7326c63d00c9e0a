"""The demo: stand-ins for the four deployments, so `mira-bot console` on a fresh clone shows real behaviour.

Clearly labelled demo endpoints on a loopback port answer the health checks the runbooks name (Mira's
`{"mode": "health"}` edge function, Ivy's router and backend, AI Assistant's /health and /info, FA's ALB health
check) and the deploy hooks the rollback plans call. All are healthy until the console's `break SERVICE` makes
one answer 503 (FA's `{"status": "unhealthy", "healthy_targets": 0}`, as its runbook's P0 shows); `slow SERVICE`
makes its events slow; `mend SERVICE`, or the service's own restart or rollback hook, puts it right.
Database and Redis probes, the services' flag tables and their events tables (stand_ins/demo_data.py,
stand_ins/demo_events.py) live in the bot's own storage; Mira's Edge Function secrets live in an in-process
recording Supabase Management API. The console user and a second demo engineer (U0DANA, who confirms rollbacks
under the two-person rule) are made BOT_ADMINs, so the tour can change flags and sign off manual steps; every other
user still meets the fail-closed owners check. The rollback plans' variables (hook URLs and secrets,
MIRA_INTERNAL_USERS) are set, so every bundled plan can run to done. Nothing here is used outside the console.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.server import RunningServer, start_server
from bot.settings import Settings
from bot.storage import Storage
from integrations.flag_table import PostgresFlagTable
from stand_ins.demo_data import seed_demo_mira_events
from stand_ins.demo_diagnostics import seed_diagnostics
from stand_ins.demo_events import EventFlow, install_demo_clock, seed_service_events, set_demo_clock
from stand_ins.recording_supabase import DEFAULT_TOKEN, RecordingSupabaseServer

DEMO_PROJECT_REF = "demoprojectref000000"
DEMO_SECOND_ENGINEER = "U0DANA"
DEMO_INTERNAL_USERS = "alice@demo.example,bob@demo.example,carol@demo.example,dana@demo.example"
DEMO_HOOKS = {
    "MIRA_DEPLOY_HOOK_URL": "mira-deploy",
    "IVY_RESTART_HOOK_URL": "ivy-restart",
    "IVY_DEPLOY_HOOK_URL": "ivy-deploy",
    "AI_ASSISTANT_RESTART_HOOK_URL": "assistant-restart",
    "AI_ASSISTANT_CONFIG_HOOK_URL": "assistant-config",
    "FA_ROLLBACK_HOOK_URL": "fa-rollback",
    "FA_RESTART_HOOK_URL": "fa-restart",  # FA's /restart plan ("restart tasks")
}
DEMO_HOOK_SECRETS = (
    "MIRA_DEPLOY_HOOK_SECRET",
    "IVY_HOOK_SECRET",
    "AI_ASSISTANT_HOOK_SECRET",
    "FA_HOOK_SECRET",
)


class DemoWorld:
    """What the console's `break`, `slow` and `mend` changed: the services that are down and the slow ones.

    A restart or rollback hook of a service mends it (a restart clears a crashed process, a rollback a bad
    deploy), so the runbooks' procedures end with the service healthy again and their verify steps pass."""

    def __init__(self, events: EventFlow | None = None) -> None:
        self.broken: set[str] = set()
        self.events = events

    @property
    def slow(self) -> set[str]:
        return self.events.slow if self.events is not None else set()

    def mend(self, service: str) -> None:
        self.broken.discard(service)
        self.slow.discard(service)


#: What each stand-in answers: (healthy, broken) per path, as the runbooks' health checks read them.
_HEALTH: dict[str, dict[str, tuple[tuple[dict[str, object], int], tuple[dict[str, object], int]]]] = {
    "mira-copilot": {
        "/mira/functions/v1/agent-chat": (({"status": "ok"}, 200), ({"status": "error"}, 503)),
    },
    "ivy-v2": {
        "/ivy/ai/router/health": (({"status": "ok"}, 200), ({"status": "unhealthy"}, 503)),
        "/ivy/health": (({"db": "ok"}, 200), ({"db": "ok", "router": "unreachable"}, 503)),
    },
    "ai-assistant": {
        "/assistant/health": (({"status": "healthy"}, 200), ({"status": "unhealthy"}, 503)),
        "/assistant/info": (({"version": "1.0"}, 200), ({"version": "1.0"}, 200)),
    },
    "fa-ai-system": {
        "/fa/health": (
            ({"status": "healthy", "healthy_targets": 2}, 200),
            ({"status": "unhealthy", "healthy_targets": 0}, 503),
        ),
    },
}
#: Which service each deploy hook restarts or rolls back.
_HOOK_SERVICE = {
    "mira-deploy": "mira-copilot",
    "ivy-restart": "ivy-v2",
    "ivy-deploy": "ivy-v2",
    "assistant-restart": "ai-assistant",
    "assistant-config": "ai-assistant",
    "fa-rollback": "fa-ai-system",
    "fa-restart": "fa-ai-system",
}


def _health_route(world: DemoWorld, service: str, path: str) -> Route:
    healthy, broken = _HEALTH[service][path]

    async def endpoint(request: Request) -> Response:
        payload, status = broken if service in world.broken else healthy
        return JSONResponse({**payload, "demo": True}, status_code=status)

    return Route(path, endpoint, methods=["GET", "POST"])


def demo_app(world: DemoWorld | None = None) -> Starlette:
    world = world or DemoWorld()

    async def deploy_hook(request: Request) -> Response:
        """A deploy hook that accepts every rollback step and mends its service (the real ones redeploy or
        restart; this one only answers)."""
        name = request.path_params["name"]
        if name in _HOOK_SERVICE:
            world.mend(_HOOK_SERVICE[name])
        return JSONResponse({"accepted": True, "hook": name, "demo": True}, status_code=202)

    routes = [Route("/hooks/{name}", deploy_hook, methods=["POST"])]
    routes += [_health_route(world, service, path) for service, paths in _HEALTH.items() for path in paths]
    return Starlette(routes=routes)


def demo_settings(settings: Settings, supabase: RecordingSupabaseServer, admin: str) -> Settings:
    """Point Mira's flags at the recording Supabase server and make the console user and Dana admins."""
    return settings.model_copy(
        update={
            "supabase_api_url": supabase.base_url,
            "supabase_access_token": SecretStr(DEFAULT_TOKEN),
            "supabase_project_ref": DEMO_PROJECT_REF,
            "bot_admins": [*settings.bot_admins, admin, DEMO_SECOND_ENGINEER],
        }
    )


@dataclass
class DemoStandIns:
    """The running demo: its HTTP server, what the catalog is loaded with, the world `break`/`mend` change, the
    event flow, and the DSN the demo services (and their clock) are reached by."""

    server: RunningServer
    env: dict[str, str]
    world: DemoWorld
    events: EventFlow
    dsn: str

    async def move_clock(self) -> None:
        """The console's clock moved: the services' clock follows, and the events of the skipped time are
        filled in."""
        await set_demo_clock(self.dsn, self.events.clock())
        await self.events.catch_up()

    async def stop(self) -> None:
        await self.events.stop()
        await self.server.stop()


async def start_demo(storage: Storage, clock: Callable[[], datetime] | None = None) -> DemoStandIns:
    """Start the demo deployments, fill the demo tables and start the event flow (dated by `clock`, the
    console's); the catalog environment names them."""
    clock = clock or (lambda: datetime.now(UTC))
    dsn = await install_demo_clock(str(storage.pool.conninfo))
    await set_demo_clock(dsn, clock())
    await PostgresFlagTable(dsn).ensure_table()
    now = clock()
    await seed_demo_mira_events(dsn, now)
    await seed_service_events(dsn, now)
    await seed_diagnostics(dsn)  # the tables /diag reads, after the latency tables it adds columns to
    events = EventFlow(dsn, clock, since=now)
    world = DemoWorld(events)
    server = await start_server(demo_app(world))
    for name in DEMO_HOOK_SECRETS:  # the deploy steps read their secrets from the environment
        os.environ.setdefault(name, "demo-hook-secret")
    env = {
        **{variable: f"{server.url}/hooks/{hook}" for variable, hook in DEMO_HOOKS.items()},
        # Rollback step 4 (Re-enable Gradually): the internal team's allowlist, so Mira's `standard` plan runs
        # to its end.
        "MIRA_INTERNAL_USERS": DEMO_INTERNAL_USERS,
        "MIRA_BASE_URL": f"{server.url}/mira",
        "MIRA_DATABASE_URL": dsn,
        "IVY_BASE_URL": f"{server.url}/ivy",
        "IVY_DATABASE_URL": dsn,
        "AI_ASSISTANT_BASE_URL": f"{server.url}/assistant",
        "AI_ASSISTANT_DATABASE_URL": dsn,
        "AI_ASSISTANT_REDIS_URL": storage.redis_url,
        "FA_BASE_URL": f"{server.url}/fa",
        "FA_DATABASE_URL": dsn,
        "FA_REDIS_URL": storage.redis_url,
        # Each service its own alerts channel, as a deployment would set them (README → Channels).
        "IVY_ALERTS_CHANNEL": "#ivy-v2-alerts",
        "AI_ASSISTANT_ALERTS_CHANNEL": "#ai-assistant-alerts",
        "FA_ALERTS_CHANNEL": "#fa-ai-system-alerts",
    }
    events.start()
    return DemoStandIns(server, env, world, events, dsn)
