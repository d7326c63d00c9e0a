"""The baselines the bot is measured against, each a server of its own on the bot's server stack.

    python -m bench.baselines bolt --port P --slack-api-url URL --signing-secret S
    python -m bench.baselines starlette --port P

* `bolt`: a bare slack-bolt AsyncApp behind Bolt's Starlette adapter, served by uvicorn with the bot's own
  uvicorn settings (`mira-bot serve`: no access log, no lifespan), whose one listener acks every slash command
  immediately. Same signature verification, same Bolt middleware chain (including the one-time `auth.test`), same
  HTTP stack: what is left between it and the bot is exactly our code — the body limit, the metrics wrapper,
  parsing and acknowledging from the registry, and the post-ack work sharing the event loop.
* `starlette`: a bare Starlette route on the same uvicorn that reads the body and answers 202 with the same
  JSON the bot answers. What is left between it and the bot is the signature check, parsing, classifying and the
  durable INSERT … ON CONFLICT in Postgres (group-committed: one statement and one WAL flush per batch). It
  verifies no signature. The bot's webhook route is a bare ASGI app ahead of Starlette (issue 16), so it skips the
  router, middleware, `Request` and `JSONResponse` this baseline still goes through: that is the bot's own
  saving, not a change to what the baseline does.

Both answer GET /ready once serving, so the orchestrator knows when to start.
"""

from __future__ import annotations

import argparse
import re
import sys

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.server import run_event_loop, uvicorn_config


async def ready(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def bare_bolt(slack_api_url: str, signing_secret: str, token: str) -> Starlette:
    bolt = AsyncApp(
        client=AsyncWebClient(token=token, base_url=slack_api_url),
        signing_secret=signing_secret,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    async def ack_immediately(ack: AsyncAck) -> None:
        await ack()

    bolt.command(re.compile(r"^/"))(ack_immediately)
    handler = AsyncSlackRequestHandler(bolt)

    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/ready", ready, methods=["GET"]),
        ]
    )


def bare_starlette() -> Starlette:
    async def accept(request: Request) -> Response:
        await request.body()
        return JSONResponse({"status": "accepted"}, status_code=202)

    return Starlette(
        routes=[
            Route("/pagerduty/webhook", accept, methods=["POST"]),
            Route("/ready", ready, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("kind", choices=["bolt", "starlette"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slack-api-url", default="http://127.0.0.1:9/api/")
    parser.add_argument("--signing-secret", default="")
    parser.add_argument("--token", default="xoxb-bench-token")
    args = parser.parse_args(argv)
    app = (
        bare_bolt(args.slack_api_url, args.signing_secret, args.token)
        if args.kind == "bolt"
        else bare_starlette()
    )
    # The settings and the event loop of `mira-bot serve` (bot/cli.py), so the HTTP stack is the same.
    run_event_loop(uvicorn.Server(uvicorn_config(app, "127.0.0.1", args.port)).serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
