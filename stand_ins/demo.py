"""`mira-bot console --demo`: stand-ins for the four deployments, so a fresh clone shows real behaviour.

Clearly labelled demo endpoints on a loopback port answer the health checks the runbooks name (Mira's
`{"mode": "health"}` edge function, Ivy's router and backend, AI Assistant's /health and /info, FA's ALB health
check, which answers 503 so the tour shows a service that is down), and the deploy hooks the rollback plans call.
Database and Redis probes, the services' flag
tables and Mira's demo `mira_events` table live in the bot's own storage; Mira's Edge Function secrets live in an
in-process recording Supabase Management API. The console user and a second demo engineer (U0DANA, who confirms
rollbacks under the two-person rule) are made BOT_ADMINs, so the tour can change flags; every other user still meets
the fail-closed owners check. Nothing here is used outside the console.
"""

from __future__ import annotations

import os

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.server import RunningServer, start_server
from bot.settings import Settings
from bot.storage import Storage
from integrations.flag_table import PostgresFlagTable
from stand_ins.demo_data import seed_demo_mira_events
from stand_ins.recording_supabase import DEFAULT_TOKEN, RecordingSupabaseServer

DEMO_PROJECT_REF = "demoprojectref000000"
DEMO_SECOND_ENGINEER = "U0DANA"
DEMO_HOOKS = {
    "MIRA_DEPLOY_HOOK_URL": "mira-deploy",
    "IVY_RESTART_HOOK_URL": "ivy-restart",
    "IVY_DEPLOY_HOOK_URL": "ivy-deploy",
    "AI_ASSISTANT_RESTART_HOOK_URL": "assistant-restart",
    "AI_ASSISTANT_CONFIG_HOOK_URL": "assistant-config",
    "FA_ROLLBACK_HOOK_URL": "fa-rollback",
    "FA_RESTART_HOOK_URL": "fa-restart",  # issue 14 (rollback): FA's /restart plan
}
DEMO_HOOK_SECRETS = (
    "MIRA_DEPLOY_HOOK_SECRET",
    "IVY_HOOK_SECRET",
    "AI_ASSISTANT_HOOK_SECRET",
    "FA_HOOK_SECRET",
)


def _service(routes: dict[str, tuple[dict[str, object], int]]) -> Starlette:
    def route(path: str, payload: dict[str, object], status: int) -> Route:
        async def endpoint(request: Request) -> Response:
            return JSONResponse({**payload, "demo": True}, status_code=status)

        return Route(path, endpoint, methods=["GET", "POST"])

    return Starlette(routes=[route(path, payload, status) for path, (payload, status) in routes.items()])


async def _deploy_hook(request: Request) -> Response:
    """A deploy hook that accepts every rollback step (the real ones redeploy; this one only answers)."""
    return JSONResponse(
        {"accepted": True, "hook": request.path_params["name"], "demo": True}, status_code=202
    )


def demo_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/hooks/{name}", _deploy_hook, methods=["POST"]),
            Mount("/mira", _service({"/functions/v1/agent-chat": ({"status": "ok"}, 200)})),
            Mount(
                "/ivy",
                _service({"/ai/router/health": ({"status": "ok"}, 200), "/health": ({"db": "ok"}, 200)}),
            ),
            Mount(
                "/assistant",
                _service({"/health": ({"status": "healthy"}, 200), "/info": ({"version": "1.0"}, 200)}),
            ),
            Mount("/fa", _service({"/health": ({"status": "unhealthy", "healthy_targets": 0}, 503)})),
        ]
    )


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


async def start_demo(storage: Storage) -> tuple[RunningServer, dict[str, str]]:
    """Start the demo deployments and fill the demo tables; return the server and the catalog environment."""
    server = await start_server(demo_app())
    database_url = str(storage.pool.conninfo)
    await PostgresFlagTable(database_url).ensure_table()
    await seed_demo_mira_events(database_url)
    for name in DEMO_HOOK_SECRETS:  # the deploy steps read their secrets from the environment
        os.environ.setdefault(name, "demo-hook-secret")
    env = {
        **{variable: f"{server.url}/hooks/{hook}" for variable, hook in DEMO_HOOKS.items()},
        "MIRA_BASE_URL": f"{server.url}/mira",
        "MIRA_DATABASE_URL": database_url,
        "IVY_BASE_URL": f"{server.url}/ivy",
        "IVY_DATABASE_URL": database_url,
        "AI_ASSISTANT_BASE_URL": f"{server.url}/assistant",
        "AI_ASSISTANT_DATABASE_URL": database_url,
        "AI_ASSISTANT_REDIS_URL": storage.redis_url,
        "FA_BASE_URL": f"{server.url}/fa",
        "FA_DATABASE_URL": database_url,
        "FA_REDIS_URL": storage.redis_url,
        "MIRA_INTERNAL_USERS": "ana@demo.example,dana@demo.example",  # issue 14 (rollback): rollout stage `internal`
    }
    return server, env
