"""`mira-bot console --demo`: stand-ins for the four deployments, so a fresh clone shows real behaviour.

Clearly labelled demo endpoints on a loopback port answer the health checks the runbooks name (Mira's
`{"mode": "health"}` edge function, Ivy's router and backend, AI Assistant's /health and /info, FA's ALB health
check, which answers 503 so the tour shows a service that is down). Database and Redis probes, the services' flag
tables and Mira's demo `mira_events` table live in the bot's own storage; Mira's Edge Function secrets live in an
in-process recording Supabase Management API. The console user is made a BOT_ADMIN, so the tour can change flags;
every other user still meets the fail-closed owners check. Nothing here is used outside the console.
"""

from __future__ import annotations

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.demo_data import seed_demo_mira_events
from bot.recording_supabase import DEFAULT_TOKEN, RecordingSupabaseServer
from bot.server import RunningServer, start_server
from bot.settings import Settings
from bot.storage import Storage
from integrations.flag_table import PostgresFlagTable

DEMO_PROJECT_REF = "demoprojectref000000"


def _service(routes: dict[str, tuple[dict[str, object], int]]) -> Starlette:
    def route(path: str, payload: dict[str, object], status: int) -> Route:
        async def endpoint(request: Request) -> Response:
            return JSONResponse({**payload, "demo": True}, status_code=status)

        return Route(path, endpoint, methods=["GET", "POST"])

    return Starlette(routes=[route(path, payload, status) for path, (payload, status) in routes.items()])


def demo_app() -> Starlette:
    return Starlette(
        routes=[
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
    """Point Mira's flags at the recording Supabase server and make the console user an admin."""
    return settings.model_copy(
        update={
            "supabase_api_url": supabase.base_url,
            "supabase_access_token": SecretStr(DEFAULT_TOKEN),
            "supabase_project_ref": DEMO_PROJECT_REF,
            "bot_admins": [*settings.bot_admins, admin],
        }
    )


async def start_demo(storage: Storage) -> tuple[RunningServer, dict[str, str]]:
    """Start the demo deployments and fill the demo tables; return the server and the catalog environment."""
    server = await start_server(demo_app())
    database_url = str(storage.pool.conninfo)
    await PostgresFlagTable(database_url).ensure_table()
    await seed_demo_mira_events(database_url)
    env = {
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
    }
    return server, env
