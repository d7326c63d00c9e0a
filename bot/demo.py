"""`mira-bot console --demo`: stand-ins for the four deployments, so a fresh clone shows real probes.

Clearly labelled demo endpoints on a loopback port answer the health checks the runbooks name (Mira's
`{"mode": "health"}` edge function, Ivy's router and backend, AI Assistant's /health and /info, FA's ALB health
check, which answers 503 so the tour shows a service that is down). Database and Redis probes point at the bot's
own storage. Nothing here is used outside the console.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.server import RunningServer, start_server
from bot.storage import Storage


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


async def start_demo(storage: Storage) -> tuple[RunningServer, dict[str, str]]:
    """Start the demo deployments; return the server and the catalog environment that points at them."""
    server = await start_server(demo_app())
    database_url = str(storage.pool.conninfo)
    env = {
        "MIRA_BASE_URL": f"{server.url}/mira",
        "MIRA_DATABASE_URL": database_url,
        "IVY_BASE_URL": f"{server.url}/ivy",
        "AI_ASSISTANT_BASE_URL": f"{server.url}/assistant",
        "AI_ASSISTANT_DATABASE_URL": database_url,
        "AI_ASSISTANT_REDIS_URL": storage.redis_url,
        "FA_BASE_URL": f"{server.url}/fa",
        "FA_DATABASE_URL": database_url,
        "FA_REDIS_URL": storage.redis_url,
    }
    return server, env
