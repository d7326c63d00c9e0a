"""What every benchmark shares: the profile (how big), the run context (storage, the recording Slack server,
where logs go), starting a bot, and the rows of the table.

A benchmark is an `async def run(ctx) -> BenchResult`. It starts the bot and its baseline once, then alternates
rounds between them (bot first in even rounds, baseline first in odd ones), so that a machine that gets busier
or quieter during the run moves both sides; each row of the table is the median of the rounds with min and max.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.catalogs import write_catalog
from bench.environment import Storage, with_search_path
from bench.processes import WEB_ONLY, WORKER, BotProcess, SplitBot
from bench.stats import Summary
from stand_ins.recording_slack import RecordingSlackServer

SLACK_SIGNING_SECRET = "bench-signing-secret-0123456789"
SLACK_BOT_TOKEN = "xoxb-bench-token"
PAGERDUTY_SECRET = "bench-pagerduty-webhook-secret"


@dataclass(frozen=True)
class Profile:
    """How big each benchmark is. `full` is what docs/PERFORMANCE.md reports; `smoke` only proves that every
    benchmark still runs end to end (CI), in a few seconds each, and its figures mean nothing."""

    name: str
    rounds: int
    ack_requests: int
    ack_concurrency: int
    ingest_requests: int
    ingest_concurrency: int
    storm_incidents: int
    storm_seconds: float
    storm_rounds: int
    storm_threshold: int
    storm_deadline_s: float
    health_probes: int
    health_hung_timeout_s: float
    events_rows: int
    single_rounds: int  # rounds for the one-command benchmarks (health, latency)
    drain_timeout_s: (
        float  # how long to wait for the delivery worker to empty the outbox after a webhook load
    )
    drain_incidents: int  # the storm of lifecycles (5 events each): incidents
    drain_rate: float  # its webhooks per second
    drain_deadline_s: float  # when it stops, drained or not (from the first webhook)
    delivery_incidents: int  # delivery ÷ ingest: incidents (5 events each)
    delivery_services: int  # …spread over this many services (two channels each)
    delivery_deadline_s: float
    webhook_incidents: int  # webhook → Slack latency: incidents sent one at a time
    split_incidents: int  # split vs all in one: the storm each topology drains
    split_deadline_s: float


FULL = Profile(
    name="full",
    rounds=5,
    ack_requests=3000,
    ack_concurrency=200,
    ingest_requests=5000,
    ingest_concurrency=50,
    storm_incidents=300,
    storm_seconds=10.0,
    storm_rounds=3,
    storm_threshold=10,
    storm_deadline_s=180.0,
    health_probes=20,
    health_hung_timeout_s=1.0,
    events_rows=10_000_000,
    single_rounds=9,
    drain_timeout_s=300.0,
    drain_incidents=400,
    drain_rate=100.0,
    drain_deadline_s=660.0,
    delivery_incidents=400,
    delivery_services=20,
    delivery_deadline_s=300.0,
    webhook_incidents=200,
    split_incidents=100,
    split_deadline_s=300.0,
)

SMOKE = Profile(
    name="smoke",
    rounds=2,
    ack_requests=60,
    ack_concurrency=20,
    ingest_requests=60,
    ingest_concurrency=10,
    storm_incidents=12,
    storm_seconds=1.0,
    storm_rounds=1,
    storm_threshold=2,
    storm_deadline_s=45.0,
    health_probes=5,
    health_hung_timeout_s=0.5,
    events_rows=20_000,
    single_rounds=2,
    drain_timeout_s=3.0,
    drain_incidents=3,
    drain_rate=100.0,
    drain_deadline_s=6.0,
    delivery_incidents=4,
    delivery_services=2,
    delivery_deadline_s=5.0,
    webhook_incidents=5,
    split_incidents=2,
    split_deadline_s=3.0,
)


@dataclass
class Row:
    """One line of the table: a figure of the bot beside its baseline, and the target it is held to."""

    benchmark: str
    metric: str
    unit: str
    bot: Summary
    baseline: Summary | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "unit": self.unit,
            "bot": self.bot.as_json(),
            "baseline": self.baseline.as_json() if self.baseline else None,
            "baseline_label": self.baseline_label,
            "target": self.target,
            "met": self.met,
        }


@dataclass
class BenchResult:
    name: str
    rows: list[Row]
    params: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None  # why it measured nothing (e.g. the product lacks what it compares)

    def as_json(self) -> dict[str, Any]:
        return {
            "ran": True,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 1),
            "params": self.params,
            "rows": [row.as_json() for row in self.rows],
            "targets_met": all(row.met is not False for row in self.rows),
            "details": self.details,
        }


@dataclass
class Context:
    profile: Profile
    storage: Storage
    slack: RecordingSlackServer
    run_dir: Path
    log: Callable[[str], None]
    py_spy: bool = False

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    async def start_bot(
        self,
        label: str,
        catalog: dict[str, Any],
        settings: dict[str, str] | None = None,
        *,
        split: bool = False,
    ) -> tuple[BotProcess | SplitBot, str]:
        """`mira-bot serve` on a fresh schema and an empty bench Redis database; (the bot, its schema). `split`:
        `mira-bot serve --web-only` and `mira-bot worker` on that schema instead, the web one answering."""
        schema = await asyncio.to_thread(self.storage.new_schema, label)
        await asyncio.to_thread(self.storage.flush_redis)
        path = write_catalog(catalog, self.run_dir / f"catalog-{label}-{schema[-8:]}.yaml")
        env = {
            "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "DATABASE_URL": with_search_path(self.storage.database_url, schema),
            "REDIS_URL": self.storage.redis_url,
            "PAGERDUTY_WEBHOOK_SECRETS": PAGERDUTY_SECRET,
            "BOT_CATALOG": str(path),
            "STATE_DIR": str(self.run_dir / f"state-{schema[-8:]}"),
            "LOG_FORMAT": "json",
            **(settings or {}),
        }
        name = f"bot-{label}-{schema[-8:]}"
        if split:
            web = BotProcess(f"{name}-web", env, self.log_dir, self._profile_to(f"{name}-web"), WEB_ONLY)
            worker = BotProcess(
                f"{name}-worker", env, self.log_dir, self._profile_to(f"{name}-worker"), WORKER
            )
            pair = SplitBot(web, worker)
            await pair.start()
            return pair, schema
        bot = BotProcess(name, env, self.log_dir, self._profile_to(name))
        await bot.start()
        return bot, schema

    def _profile_to(self, name: str) -> Path | None:
        return self.run_dir / f"{name}.speedscope.json" if self.py_spy else None

    def bot_database_url(self, schema: str) -> str:
        return with_search_path(self.storage.database_url, schema)


def per_round_ratio(bot: list[float], baseline: list[float]) -> Summary:
    """bot ÷ baseline within each round, then the median of those: the figure a noisy machine moves least,
    because both sides of a ratio ran within seconds of each other."""
    return Summary.of([b / a for b, a in zip(bot, baseline, strict=True) if a])


def order(round_index: int) -> tuple[str, str]:
    """Bot first in even rounds, baseline first in odd ones."""
    return ("bot", "baseline") if round_index % 2 == 0 else ("baseline", "bot")


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float, interval: float = 0.05
) -> float | None:
    """Seconds until `condition` held, or None when it did not within `timeout`."""
    started = time.monotonic()
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(interval)


def lifecycle_spec(
    url: str,
    *,
    incidents: int,
    number_start: int,
    prefix: str,
    services: list[list[str]],
    concurrency: int,
    rate: float | None = None,
) -> dict[str, Any]:
    """The load generator's order for `incidents` lifecycles (bench/load.py `pagerduty_lifecycle`), sent to the
    bot's webhook route; `rate` webhooks per second, or as fast as `concurrency` allows."""
    spec: dict[str, Any] = {
        "kind": "pagerduty_lifecycle",
        "url": url + "/pagerduty/webhook",
        "secret": PAGERDUTY_SECRET,
        "incidents": incidents,
        "number_start": number_start,
        "prefix": prefix,
        "services": services,
        "concurrency": concurrency,
    }
    if rate is not None:
        spec["rate"] = rate
    return spec
