"""The HTTP server: Starlette routes around the Bolt app, served by uvicorn.

`POST /slack/events` carries every Slack request (slash commands, interactivity, events) into Bolt, which verifies
the v0 signature and the 5-minute timestamp window (401 otherwise); a request already handled within that window
(a replay, or a Slack retry of it) is answered 200 without running again (bot/slack_replays.py). Bodies over 1 MiB are refused with 413 before
anything reads them, since no genuine Slack request comes near that size. `/healthz` says the process is up,
`/readyz` that Postgres and Redis answer, `/metrics` serves prometheus-client's registry. `POST /pagerduty/webhook`
stores signed PagerDuty V3 events for the delivery worker (bot/pagerduty_ingest.py), bodies over 256 KB get 413.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
import uvloop
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import slack_replays
from bot.asgi import BodyTooLarge, read_body, too_large
from bot.context import BotContext
from bot.pagerduty_ingest import PAGERDUTY_BODY_LIMIT, WebhookRoute, WebhookStore
from bot.signing import verify_slack_request
from bot.storage import Storage

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SLACK_BODY_LIMIT = 1024 * 1024
WEBHOOK_PATH = "/pagerduty/webhook"

REQUESTS = Counter(
    "mira_http_requests_total", "HTTP requests by route and outcome (status code).", ["route", "outcome"]
)
REPLAYS = Counter(
    "mira_slack_replays_total",
    "Signed Slack requests answered without running again (replays, Slack retries).",
)
ACK_SECONDS = Histogram(
    "mira_slack_ack_seconds",
    "Time from receiving a Slack request to answering it (Slack's deadline is 3 s).",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
)


class BodyLimit:
    """Read at most `limits[path]` bytes of a request body; answer 413 past it, before the app sees anything.

    A pure ASGI middleware because Starlette's `Request.body()` would read an unbounded body into memory first.
    """

    def __init__(self, app: ASGIApp, limits: dict[str, int]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, limit)
        except BodyTooLarge:
            REQUESTS.labels(scope.get("path", ""), "413").inc()
            await too_large(limit).send(send)
            return
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RouteOutcomes:
    """`mira_http_requests_total` for one route, each status's child looked up once: `labels()` takes a lock
    and builds its key on every call, a cost the webhook route would pay thousands of times a second."""

    def __init__(self, route: str) -> None:
        self.route = route
        self._children: dict[int, Any] = {}

    def count(self, status: int) -> None:
        child = self._children.get(status)
        if child is None:
            child = self._children[status] = REQUESTS.labels(self.route, str(status))
        child.inc()


class WebhookFirst:
    """`POST /pagerduty/webhook` straight to its bare ASGI route (bot/pagerduty_ingest.py), everything else —
    including the webhook path's other methods, answered 405 by Starlette as before — to `app`."""

    def __init__(self, webhook: ASGIApp, app: ASGIApp) -> None:
        self.webhook = webhook
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST":
            await self.webhook(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _slack_kind(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    return "json" if "json" in content_type else "form"


def build_http_app(bolt: AsyncApp, bot: BotContext, on_webhook_stored: Callable[[], None]) -> ASGIApp:
    slack_handler = AsyncSlackRequestHandler(bolt)
    storage = bot.storage
    assert bot.settings.slack_signing_secret is not None
    signing_secret = bot.settings.slack_signing_secret.get_secret_value()
    webhooks = WebhookStore(bot)
    replays = slack_replays.ReplayClaims(bot)

    def counted(route: str, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Any]:
        async def wrapper(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await endpoint(request)
            except Exception:
                REQUESTS.labels(route, "500").inc()
                raise
            REQUESTS.labels(route, str(response.status_code)).inc()
            if route == "/slack/events":
                ACK_SECONDS.labels(_slack_kind(request)).observe(time.perf_counter() - started)
            return response

        return wrapper

    async def slack_events(request: Request) -> Response:
        # Verified here on the raw bytes before Bolt reads anything: a malformed timestamp or a body that is not
        # UTF-8 must be a 401/400, not an exception inside the adapter (a 500). The only check: Bolt's is off (bot/app.py).
        body = await request.body()
        if not verify_slack_request(
            signing_secret,
            body,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
        ):
            return JSONResponse({"error": "invalid request signature"}, status_code=401)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "request body is not UTF-8"}, status_code=400)
        # A signed request runs once: the same one again within the window is answered 200 and does nothing
        # (bot/slack_replays.py), so a replayed /flag or /rollback has one effect and Slack shows no error.
        claims = await slack_replays.first_delivery(
            bot,
            replays,
            body,
            request.headers.get("x-slack-request-timestamp", "").strip(),
            request.headers.get("x-slack-signature", ""),
            request.headers.get("x-slack-retry-num"),
        )
        if claims is None:
            REPLAYS.inc()
            log.info("a Slack request seen already was answered without running it again")
            return Response(status_code=200)
        try:
            response = await slack_handler.handle(request)
        except Exception:
            # Only a signed request gets here, so only Slack (or someone holding the signing secret) can send
            # what Bolt cannot read; it is logged for us and refused plainly rather than answered 500.
            log.exception("a signed Slack request could not be read")
            return JSONResponse({"error": "request not understood"}, status_code=400)
        if response.status_code >= 500:
            for claimed in claims:  # it did not run: Slack's retry of it must
                await slack_replays.release(bot, claimed)
        return response

    webhook = WebhookRoute(bot, webhooks, on_webhook_stored, RouteOutcomes(WEBHOOK_PATH).count)
    app = Starlette(
        routes=[
            Route("/slack/events", counted("/slack/events", slack_events), methods=["POST"]),
            Route(WEBHOOK_PATH, webhook, methods=["POST"]),  # reached by other methods only: their 405
            *_probe_routes(storage),
        ]
    )
    limited = BodyLimit(app, {"/slack/events": SLACK_BODY_LIMIT, WEBHOOK_PATH: PAGERDUTY_BODY_LIMIT})
    return WebhookFirst(webhook, limited)


def _probe_routes(storage: Storage) -> list[Route]:
    """/healthz, /readyz and /metrics: the same in every process, so one liveness probe, readiness probe and
    scrape config serve `serve`, `serve --web-only` and `worker` alike."""

    async def healthz(request: Request) -> Response:
        REQUESTS.labels("/healthz", "200").inc()
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = await storage.ready()
        ready = all(value == "ok" for value in checks.values())
        REQUESTS.labels("/readyz", "200" if ready else "503").inc()
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def build_probe_app(storage: Storage) -> ASGIApp:
    """The HTTP side of `mira-bot worker`: only the probes and the metrics, no Slack or PagerDuty route (a
    request for one is a 404, so a load balancer pointed at a worker by mistake fails loudly)."""
    return Starlette(routes=_probe_routes(storage))


class BotServer(uvicorn.Server):
    """uvicorn, but a SIGTERM/SIGINT ends `serve()` gracefully without being re-raised afterwards.

    uvicorn re-raises the captured signal once it has shut down, which kills the process before the caller's
    cleanup (draining post-ack work, stopping embedded servers) runs and turns a clean stop into status -15.
    Outside the main thread (tests, the console) signals are left to the caller.
    """

    def __init__(self, config: uvicorn.Config, *, handle_signals: bool = True) -> None:
        super().__init__(config)
        self.handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread() or not self.handle_signals:
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


@dataclass
class RunningServer:
    """A uvicorn server running as a task in this event loop (console, tests), on an ephemeral port if asked."""

    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


def uvicorn_config(app: ASGIApp, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """The HTTP stack of `mira-bot serve`, the test servers and the bench baselines alike (so ratios compare the
    app, not the server): httptools, the C parser a production uvicorn uses (a base dependency), no access log
    (our logs say more), no lifespan (the runtime's start-up is ours)."""
    options: dict[str, Any] = {
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "lifespan": "off",
        **overrides,
    }
    return uvicorn.Config(app, host=host, port=port, **options)


def run_event_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)` on uvloop, the event loop a production uvicorn runs (`uvicorn.run` picks it with its
    default `loop="auto"`; a server started as `asyncio.run(server.serve())`, as ours is so that start-up and
    shutdown are ours, would stay on the pure-Python loop). `mira-bot serve`, `mira-bot worker` and the bench
    baselines all run on it, so ratios compare the app, not the loop."""
    return uvloop.run(main)


async def start_server(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    config = uvicorn_config(app, host, port, log_level="warning")
    server = BotServer(config, handle_signals=False)  # the caller owns signals
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # raises the start-up error (port in use, …)
            raise RuntimeError("the HTTP server stopped during start-up")
        await asyncio.sleep(0.01)
    return RunningServer(server=server, task=task)
