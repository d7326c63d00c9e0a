"""Assembling a running bot from settings: catalog, storage, clients, capabilities, Bolt app and HTTP app.

`serve`, the console and the tests all start the bot through `start_runtime`, so they exercise the same wiring.
The capabilities (commands, jobs and worker hooks) are passed in or discovered from the installed entry point
(bot/capabilities.py); the platform never imports them. The scheduler and the workers are built here but started
by `serve`, `worker` and the console; tests drive them with an injected clock.

A runtime is built the same way for every role; the role decides what is started. `serve` starts everything
(`start_background`). `serve --web-only` (`web_only=True`) starts no worker: its webhook route wakes the workers
of other processes through Postgres NOTIFY (bot/wakeups.py) instead of the in-process event. `worker` starts the
background workers and their LISTEN (and serves only the probes, bot/server.py::build_probe_app).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
from slack_bolt.async_app import AsyncApp
from starlette.types import ASGIApp

from bot.app import build_bolt_app
from bot.capabilities import Capabilities, discover
from bot.catalog import Catalog, load_catalog
from bot.commands import CommandRegistry
from bot.context import BotContext
from bot.delivery import DeliveryWorker
from bot.logs import catalog_secrets, redact_also
from bot.redaction import Redactor
from bot.rollback_worker import RollbackWorker
from bot.scheduler import Scheduler
from bot.server import build_http_app
from bot.settings import Settings
from bot.slack_budget import ChannelBudget
from bot.storage import open_storage
from bot.wakeups import WakeListener, WakeNotifier
from integrations.pagerduty import PagerDutyClient
from integrations.slack import build_slack_client, close_slack_client

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    bot: BotContext
    registry: CommandRegistry
    bolt: AsyncApp
    http_app: ASGIApp
    scheduler: Scheduler
    delivery: DeliveryWorker
    rollbacks: RollbackWorker
    #: Wakes the workers of other processes after a webhook is stored (None: this process's own worker is woken).
    notifier: WakeNotifier | None = None
    listener: WakeListener | None = None

    def start_background(self) -> None:
        """The scheduler, the PagerDuty delivery worker and the rollback worker, and the LISTEN that wakes them
        when a web process stored work: started by `serve` (all in one), `worker` and the console, driven by
        hand (with an injected clock) in tests. Never by `serve --web-only`."""
        self.scheduler.start()
        self.delivery.start()
        self.rollbacks.start()
        if self.listener is None:
            conninfo = self.bot.storage.pool.conninfo
            assert isinstance(conninfo, str)  # open_storage gives the pool the URL itself
            self.listener = WakeListener(
                conninfo,
                {self.delivery.name: self.delivery, self.rollbacks.name: self.rollbacks},
            )
        self.listener.start()

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Let post-ack work finish (graceful shutdown), then release clients and storage. Undelivered events
        stay in the outbox for the next start; a rollback step in flight gets its grace, then its lease is
        handed on (bot/rollback_worker.py). Each worker stops whether or not it was started, so every role
        closes the same way."""
        if self.listener is not None:
            await self.listener.stop()
        await self.scheduler.stop()
        await self.delivery.stop()
        await self.rollbacks.stop()
        if self.bot.background.active:
            log.info(
                "waiting for post-ack work to finish",
                extra={"active": self.bot.background.active, "within_seconds": drain_timeout},
            )
        if not await self.bot.background.wait_idle(drain_timeout):
            log.warning(
                "post-ack work still running at shutdown", extra={"active": self.bot.background.active}
            )
        if self.notifier is not None:
            await self.notifier.close()
        await self.bot.http.aclose()
        await close_slack_client(self.bot.slack)
        await close_slack_client(self.bot.slack_unretried)
        if self.bot.pagerduty is not None:
            await self.bot.pagerduty.aclose()
        await self.bot.storage.close()


async def start_runtime(
    settings: Settings,
    catalog: Catalog | None = None,
    capabilities: Capabilities | None = None,
    *,
    web_only: bool = False,
) -> Runtime:
    """`web_only`: this process runs no worker (`serve --web-only`), so a stored webhook wakes the workers of
    other processes (NOTIFY) rather than this one's."""
    settings.require_slack()
    assert settings.slack_bot_token is not None
    if capabilities is None:
        capabilities = discover()
    if catalog is None:
        catalog = await asyncio.to_thread(load_catalog, settings.bot_catalog)
    storage = await open_storage(settings)
    redact = Redactor.for_settings(settings, catalog)
    redact_also(catalog_secrets(catalog))  # log lines: the formatter knew only the settings' secrets
    token = settings.slack_bot_token.get_secret_value()
    bot = BotContext(
        settings=settings,
        catalog=catalog,
        storage=storage,
        slack=build_slack_client(
            token, settings.slack_api_url, timeout=settings.slack_timeout_seconds, redact=redact
        ),
        slack_unretried=build_slack_client(
            token,
            settings.slack_api_url,
            timeout=settings.slack_timeout_seconds,
            blind_retries=False,
            redact=redact,
        ),
        http=httpx.AsyncClient(headers={"User-Agent": "mira-chatops"}, follow_redirects=False),
        # SLACK_POSTS_PER_SECOND, 0.8 by default: Slack's limit is about one post per second per channel, and the
        # slot is taken a moment before Slack receives the post; on a loaded host that moment varies by a tenth of
        # a second or more, so the margin keeps jitter from turning into 429s.
        budget=ChannelBudget(
            storage.redis,
            per_second=settings.slack_posts_per_second,
            updates_per_minute=settings.slack_updates_per_minute,
        ),
        pagerduty=PagerDutyClient(
            settings.pagerduty_api_token.get_secret_value(),
            settings.pagerduty_api_url,
            default_from=settings.pagerduty_from_email,
            timeout=settings.pagerduty_timeout_seconds,
        )
        if settings.pagerduty_api_token
        else None,
    )
    registry = capabilities.registry
    bolt = build_bolt_app(bot, registry)
    scheduler = Scheduler(
        storage.pool, clock=lambda: bot.clock(), tick=settings.scheduler_tick_seconds, owner=bot.replica
    )
    for job in capabilities.jobs(bot):
        scheduler.add(job)
    for name, sweep in capabilities.sweeps(bot):
        scheduler.add_sweep(name, sweep)
    delivery = DeliveryWorker(bot, capabilities.delivery, clock=lambda: bot.clock())
    notifier = WakeNotifier(storage, delivery.name) if web_only else None
    return Runtime(
        bot=bot,
        registry=registry,
        bolt=bolt,
        http_app=build_http_app(bolt, bot, notifier or delivery.wake),
        scheduler=scheduler,
        delivery=delivery,
        rollbacks=RollbackWorker(bot, capabilities.rollbacks),
        notifier=notifier,
    )
