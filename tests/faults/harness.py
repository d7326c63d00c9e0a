"""The fault harness: real `mira-bot serve` processes against real Postgres and Redis, the recording Slack and
PagerDuty servers on loopback, and the means to hurt them — SIGKILL, SIGTERM, restart, a second replica.

A `FaultWorld` is one deployment: its database and Redis, the two recording servers (served from the test's
event loop, so the test sees every call the processes make), the distinctive secrets every process is started
with, and the processes themselves (`start_bot`, any number, each with its own port and log file). A test sends
what Slack and PagerDuty would send (`BotProcess.webhook`, `.command`, `.click`, all signed like the real thing),
breaks something, and asserts on what reached Slack and PagerDuty and on the database.

Extension points, for cases that need features built elsewhere:
- `FaultWorld.start_bot(name, **settings)` takes any setting as an environment override (e.g. a catalog file
  with `BOT_CATALOG`, `BOT_ADMINS`, `SCHEDULER_TICK_SECONDS`), so a rollback or handoff case starts replicas
  configured for it; `args=WEB_ONLY` / `args=WORKER` start the two halves of the split (`serve --web-only`,
  `worker`) instead of an all-in-one `serve`;
- `FaultWorld.write_catalog(text)` writes a catalog (owners, rollback plans, a handoff schedule) for
  `BOT_CATALOG`;
- `FaultWorld.sql` reads any table (rollback runs, handoff posts) to assert "once";
- `RecordingSlackServer.accept_and_hang` / `fail_after_accept` / `fail_next` and
  `RecordingPagerDutyServer.fail_next` / `hang_next` inject the upstream faults.

Every wait is bounded (`until`, `BotProcess.start`, `.terminate`): a fault test stops itself instead of hanging
CI, and the bounds are liveness guards, not performance claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bot.signing import sign_pagerduty_webhook, sign_slack_request
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import USER, click_body, command_body

#: How long a process may take to start (import, migrate, bind): a liveness bound on a loaded 2-core machine.
START_WITHIN = 60.0


@dataclass(frozen=True)
class Secrets:
    """Distinctive values, so a leak is found by searching logs, Slack posts and replies for them."""

    slack_bot_token: str = "xoxb-FAULTSUITE-7f3a9c2e41d8-bottoken"
    slack_signing_secret: str = "FAULTSUITE-signing-5b8e1d7c9a30"
    pagerduty_api_token: str = "FAULTSUITE-pdtoken-c41f9e02b7d6"
    pagerduty_webhook_secret: str = "FAULTSUITE-pdwebhook-e92b4a7f1c05"
    supabase_access_token: str = "sbp_FAULTSUITE0d4c8e6b2a9f1735"

    def values(self) -> list[str]:
        return [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.pagerduty_api_token,
            self.pagerduty_webhook_secret,
            self.supabase_access_token,
        ]


SECRETS = Secrets()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The commands a process can run: all in one (the default), the HTTP side alone, the background workers alone.
SERVE = ("serve",)
WEB_ONLY = ("serve", "--web-only")
WORKER = ("worker",)


def mira_bot_command(args: tuple[str, ...] = SERVE) -> list[str]:
    """The installed console script (what the Dockerfile runs), else the same entry point through -m."""
    script = Path(sys.executable).with_name("mira-bot")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "bot.cli", *args]


def signed_webhook(body: bytes, webhook_id: str | None = None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        **sign_pagerduty_webhook(SECRETS.pagerduty_webhook_secret, body),
    }
    if webhook_id:
        headers["X-Webhook-Id"] = webhook_id
    return headers


@dataclass
class BotProcess:
    """One `mira-bot serve` process (or `serve --web-only`, or `worker`, by `args`): start, SIGKILL, SIGTERM,
    restart; signed requests to it. A worker answers only /healthz, /readyz and /metrics."""

    name: str
    env: dict[str, str]
    log_path: Path
    cwd: Path
    args: tuple[str, ...] = SERVE
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=30.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    async def start(self, within: float = START_WITHIN) -> None:
        """Start the process and wait until /healthz answers (migrations applied, port bound)."""
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"--- start {self.starts} ---\n")
        log_file = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *mira_bot_command(self.args),
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        finally:
            log_file.close()  # the child has its own descriptor
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                pytest.fail(
                    f"{self.name} exited with {self.process.returncode} while starting:\n{self.log()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get("/healthz", timeout=1.0)).status_code == 200:
                    return
            await asyncio.sleep(0.05)
        await self.kill()
        pytest.fail(f"{self.name} did not answer /healthz within {within} s:\n{self.log()[-3000:]}")

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no drain — what a crash or an OOM kill does."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def terminate(self, within: float = 30.0) -> int:
        """SIGTERM and wait for the graceful stop; its exit status. Fails (and kills) past `within`."""
        assert self.process is not None and self.running, f"{self.name} is not running"
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                return await self.process.wait()
        except TimeoutError:
            await self.kill()
            pytest.fail(f"{self.name} did not stop within {within} s of SIGTERM:\n{self.log()[-3000:]}")

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    async def close(self) -> None:
        await self.kill()
        await self.http.aclose()

    # --- what Slack and PagerDuty send ------------------------------------------------------------------------

    async def webhook(self, body: bytes, headers: dict[str, str] | None = None) -> int | None:
        """POST a PagerDuty webhook (signed unless `headers` is given); its status, None when nothing answered."""
        try:
            response = await self.http.post(
                "/pagerduty/webhook",
                content=body,
                headers=signed_webhook(body) if headers is None else headers,
            )
        except httpx.HTTPError:
            return None
        return response.status_code

    async def slack_request(
        self, body: bytes, content_type: str = "application/x-www-form-urlencoded"
    ) -> httpx.Response:
        headers = {"Content-Type": content_type, **sign_slack_request(SECRETS.slack_signing_secret, body)}
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def command(
        self, slack: RecordingSlackServer, command: str, text: str = "", **kwargs: Any
    ) -> httpx.Response:
        return await self.slack_request(command_body(slack, command, text, **kwargs))

    async def click(
        self,
        slack: RecordingSlackServer,
        channel: str,
        ts: str,
        action_id: str,
        value: str | None = None,
        *,
        user: str = USER,
    ) -> httpx.Response:
        return await self.slack_request(click_body(slack, channel, ts, action_id, value, user=user))


@dataclass
class FaultWorld:
    """One deployment under test: storage, the recording upstreams, and the bot processes started in it."""

    tmp: Path
    database_url: str
    redis_url: str
    slack: RecordingSlackServer
    pagerduty: RecordingPagerDutyServer
    bots: list[BotProcess] = field(default_factory=list)

    def settings_env(self, **overrides: str | float | int) -> dict[str, str]:
        """The environment of a process: only what is set here (no inherited DATABASE_URL, proxies or .env)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.tmp),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "SLACK_BOT_TOKEN": SECRETS.slack_bot_token,
            "SLACK_SIGNING_SECRET": SECRETS.slack_signing_secret,
            "SLACK_API_URL": self.slack.api_url,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "PAGERDUTY_API_TOKEN": SECRETS.pagerduty_api_token,
            "PAGERDUTY_API_URL": self.pagerduty.base_url,
            "PAGERDUTY_FROM_EMAIL": "oncall-bot@example.com",
            "PAGERDUTY_WEBHOOK_SECRETS": SECRETS.pagerduty_webhook_secret,
            "SUPABASE_ACCESS_TOKEN": SECRETS.supabase_access_token,
            "HOST": "127.0.0.1",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "STORM_THRESHOLD": "0",
            # Seconds instead of minutes, so a crash and its takeover fit in a test; a generous post rate, so
            # hundreds of posts do too (the rate limit itself has its own test).
            "SLACK_POSTS_PER_SECOND": "40",
            "DELIVERY_LEASE_SECONDS": "2",
            "STALE_CLAIM_SECONDS": "4",
            "SCHEDULER_TICK_SECONDS": "1",
        }
        # The machine's clock comes along: a suite run under `faketime` (README, Tests: "a year ahead") moves the
        # bot processes with the tests and the embedded servers, as a machine whose clock is set ahead would.
        env.update(
            {k: v for k, v in os.environ.items() if k in ("LD_PRELOAD", "TZ") or k.startswith("FAKETIME")}
        )
        env.update({key.upper(): str(value) for key, value in overrides.items()})
        return env

    async def start_bot(
        self, name: str = "bot", *, args: tuple[str, ...] = SERVE, **settings: str | float | int
    ) -> BotProcess:
        """Start a `mira-bot serve` replica named `name` with these settings on top of the world's; `args`
        WEB_ONLY or WORKER starts one half of the split instead."""
        env = self.settings_env(**settings)
        env.setdefault("PORT", str(free_port()))
        env.setdefault("STATE_DIR", str(self.tmp / f"state-{name}"))
        bot = BotProcess(name=name, env=env, log_path=self.tmp / f"{name}.log", cwd=self.tmp, args=args)
        self.bots.append(bot)
        await bot.start()
        return bot

    def write_catalog(self, text: str, name: str = "catalog.yaml") -> Path:
        """A catalog file for BOT_CATALOG (owners, plans, schedules a case needs)."""
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path

    def logs(self) -> str:
        return "\n".join(bot.log() for bot in self.bots)

    async def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
            cursor = await conn.execute(query.encode(), params)
            return await cursor.fetchall() if cursor.description else []

    async def count(self, query: str, params: tuple[Any, ...] = ()) -> int:
        [(value,)] = await self.sql(query, params)
        return int(value)

    async def close(self) -> None:
        for bot in self.bots:
            await bot.close()


async def until(
    condition: Callable[[], Awaitable[bool]], *, within: float, what: str, every: float = 0.1
) -> None:
    """Wait for `condition`; fail naming `what` after `within` seconds (a liveness bound, not a timing claim)."""
    deadline = time.monotonic() + within
    while True:
        if await condition():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still not true after {within} s")
        await asyncio.sleep(every)
