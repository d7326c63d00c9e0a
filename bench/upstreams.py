"""Stand-ins for the services /health probes, in a process of their own.

    python -m bench.upstreams --port P --hung-port H --delay 0.2

* `GET|POST /probe/{name}` answers `{"status": "ok"}` after `--delay` seconds: a deployment's health endpoint
  that takes 200 ms, like a health check that touches its database.
* `GET|POST /ok` answers at once: the cheap front-door check the ack benchmark's probes hit.
* port H accepts TCP connections and never answers: the hung dependency a probe must cut at its timeout.

They run apart from the orchestrator (which plays Slack) so that neither one's event loop delays the other's
answers, and apart from the bot, as real services would be.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def build_app(delay: float) -> Starlette:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(delay)
        return JSONResponse({"status": "ok"})

    async def fast(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/probe/{name}", slow, methods=["GET", "POST"]),
            Route("/ok", fast, methods=["GET", "POST"]),
            Route("/ready", fast, methods=["GET"]),
        ]
    )


async def serve(port: int, hung_port: int, delay: float) -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # never answered, never closed: the probe has to give up by itself

    hung = await asyncio.start_server(hold, "127.0.0.1", hung_port)
    config = uvicorn.Config(
        build_app(delay), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        hung.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstreams")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hung-port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.hung_port, args.delay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
