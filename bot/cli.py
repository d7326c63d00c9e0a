"""`mira-bot`: serve Slack, or chat with the bot locally.

`serve` runs everything in one process. For scale, `serve --web-only` runs the HTTP side alone and `worker` the
background workers alone, as many of each as needed, coordinated only through Postgres and Redis
(docs/RELIABILITY.md, "Web and worker processes apart").

With no subcommand the bot picks for you: the server when SLACK_BOT_TOKEN is set, the console otherwise, so the
README's one command works on a fresh clone and in production alike. The console is the demo (local stand-ins for
the four services) unless a setting points it at a real service (`*_BASE_URL`, `*_DATABASE_URL`, `SUPABASE_*`,
`PAGERDUTY_API_TOKEN`) or `--no-demo` asks for the bare console: the stand-ins are the embedded default, as the
embedded Postgres and Valkey are. Configuration problems end the process with
one line naming the setting (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.capabilities import CapabilitiesMissing
from bot.catalog import CatalogError, load_catalog
from bot.embedded import EmbeddedError
from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings
from bot.storage import StorageUnavailable

if TYPE_CHECKING:
    from starlette.types import ASGIApp

log = logging.getLogger("mira-bot")


async def serve(settings: Settings, *, web_only: bool = False) -> int:
    """Run the HTTP server (and Socket Mode when SLACK_APP_TOKEN is set) until SIGINT/SIGTERM: with every
    background worker in this process, or none (`web_only`: they run in `mira-bot worker` processes)."""
    from bot.runtime import start_runtime

    runtime = await start_runtime(settings, web_only=web_only)
    if not web_only:
        runtime.start_background()
    _freeze_startup_objects()
    socket_mode = None
    if settings.slack_app_token is not None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        socket_mode = AsyncSocketModeHandler(runtime.bolt, settings.slack_app_token.get_secret_value())
        await socket_mode.connect_async()
        log.info("Socket Mode connected")
    log.info(
        "serving",
        extra={
            "host": settings.host,
            "port": settings.port,
            "socket_mode": socket_mode is not None,
            "role": "web" if web_only else "all-in-one",
        },
    )
    try:
        await _serve_http(runtime.http_app, settings)
    finally:
        if socket_mode is not None:
            await socket_mode.close_async()
        await runtime.close()
    return 0


async def worker(settings: Settings) -> int:
    """Run the background workers (PagerDuty delivery, the scheduler and its sweeps, rollback steps) until
    SIGINT/SIGTERM, with no Slack or PagerDuty route: only /healthz, /readyz and /metrics on HOST:PORT, so the
    same probes and scrape config serve every process. SIGTERM stops them as `serve` does: a delivery pass in
    flight is cut and its claims lapse to the next worker, a rollback step gets its grace, then its lease is
    handed on."""
    from bot.runtime import start_runtime
    from bot.server import build_probe_app

    runtime = await start_runtime(settings)
    runtime.start_background()
    _freeze_startup_objects()
    log.info("working", extra={"host": settings.host, "port": settings.port, "role": "worker"})
    try:
        await _serve_http(build_probe_app(runtime.bot.storage), settings)
    finally:
        await runtime.close()
    return 0


def _freeze_startup_objects() -> None:
    """What start-up loaded (libraries, the catalog, the registry) lives as long as the process: freeze it out of
    the cyclic GC. Otherwise every full collection walks those ~100,000 objects, about 50 ms on the benchmark
    machine, stalling every request in flight (docs/PERFORMANCE.md, "ack")."""
    gc.collect()
    gc.freeze()


async def _serve_http(app: ASGIApp, settings: Settings) -> None:
    """uvicorn on HOST:PORT until SIGINT/SIGTERM, which it turns into a graceful stop (bot/server.py)."""
    from bot.server import BotServer, uvicorn_config

    await BotServer(uvicorn_config(app, settings.host, settings.port)).serve()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mira-bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser(
        "serve",
        help="serve Slack over HTTP (and Socket Mode when SLACK_APP_TOKEN is set), with the background workers",
    )
    serve_parser.add_argument(
        "--web-only",
        action="store_true",
        help="only the HTTP side (Slack requests, PagerDuty webhooks stored, /healthz /readyz /metrics); "
        "delivery, the scheduler and rollback steps run in `mira-bot worker` processes",
    )
    sub.add_parser(
        "worker",
        help="the background workers (PagerDuty delivery, scheduler, rollback steps) for `serve --web-only`; "
        "serves only /healthz /readyz /metrics on HOST:PORT",
    )
    console = sub.add_parser("console", help="chat with the bot in this terminal; no Slack workspace needed")
    console.add_argument("--script", type=Path, help="run the lines of FILE and print the transcript")
    demo = console.add_mutually_exclusive_group()
    demo.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="local stand-ins for the four services (the default when no setting points at a real service)",
    )
    demo.add_argument(
        "--no-demo",
        dest="demo",
        action="store_false",
        help="the bare console: the services are what the settings point at",
    )
    sub.add_parser("check-catalog", help="validate the service catalog (BOT_CATALOG or the bundled one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        command = args.command or ("serve" if settings.slack_bot_token else "console")
        if command == "console":
            settings = (
                settings.model_copy(update={"log_level": "WARNING"})
                if settings.log_level == "INFO"
                else settings
            )
        configure_logging(settings)
        if command == "check-catalog":
            catalog = load_catalog(settings.bot_catalog)
            print(f"ok: {len(catalog.services)} services ({', '.join(catalog.names())})")
            return 0
        if command in ("serve", "worker"):
            from bot.server import run_event_loop
        if command == "serve":
            settings.require_slack()
            return run_event_loop(serve(settings, web_only=bool(getattr(args, "web_only", False))))
        if command == "worker":
            settings.require_slack()
            return run_event_loop(worker(settings))
        try:
            # The one import of stand_ins/ from bot/ (tests/test_architecture.py allows exactly this): the console
            # lives with the recording servers, which a production install does not ship.
            from stand_ins.console_runner import configured_services, run_console
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("stand_ins"):
                raise
            print(
                "mira-bot: the console needs the stand-ins (stand_ins/), which this install does not include: "
                "run it from a checkout (python3 dev.py run console), or set SLACK_BOT_TOKEN to serve",
                file=sys.stderr,
            )
            return 2

        script = getattr(args, "script", None)
        chosen = getattr(args, "demo", None)
        demo = not configured_services(settings) if chosen is None else bool(chosen)
        if script is not None:
            with script.open(encoding="utf-8") as lines:
                return asyncio.run(run_console(settings, lines, demo=demo))
        return asyncio.run(run_console(settings, demo=demo))
    except (SettingsError, CatalogError, EmbeddedError, StorageUnavailable, CapabilitiesMissing) as exc:
        print(f"mira-bot: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"mira-bot: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "),
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
