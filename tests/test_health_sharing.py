"""/health during a crowd: requests that arrive together probe each backend once and are each answered; a request
after the freshness window probes again. End to end: signed requests → the probe stand-in's hits → what reached
the recording Slack server and `health_runs`. The bot's monotonic source is replaced, so the window is stepped
over, never slept through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from handlers.health import runs
from handlers.health.probing import SHARED_PROBE_SECONDS
from tests.harness import BotUnderTest, blocks_text, fake_service


class ProbedService:
    """FA's ALB health check as a stand-in: counts its hits, holds them until `release` while `held`, and answers
    the status it is set to."""

    def __init__(self) -> None:
        self.hits = 0
        self.status = "ok"
        self.arrived = asyncio.Event()
        self.released = asyncio.Event()
        self.released.set()

    async def health(self, request: Request) -> Response:
        self.hits += 1
        self.arrived.set()
        await self.released.wait()
        return JSONResponse({"status": self.status}, status_code=200 if self.status == "ok" else 503)


class SteppedClock:
    """The bot's monotonic source, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fa() -> AsyncIterator[tuple[ProbedService, str]]:
    service = ProbedService()
    async with fake_service({"/health": service.health}) as url:
        yield service, url


@pytest.fixture
def catalog_env(fa: tuple[ProbedService, str]) -> dict[str, str]:
    """Only FA's HTTP probe is configured: every other probe of the catalog is "not configured" (no network)."""
    return {"FA_BASE_URL": fa[1]}


@pytest.fixture
def clock(bot: BotUnderTest) -> SteppedClock:
    stepped = SteppedClock()
    bot.runtime.bot.monotonic = stepped
    return stepped


async def _runs(database_url: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT scope, message_channel, message_ts FROM health_runs ORDER BY id")
        return await cursor.fetchall()


async def test_requests_arriving_together_probe_once_and_each_is_answered(
    bot: BotUnderTest, fa: tuple[ProbedService, str], clock: SteppedClock, database_url: str
) -> None:
    service, _ = fa
    service.released.clear()  # the first probe stays in flight while the second request arrives
    assert (await bot.command("/health")).status_code == 200
    await asyncio.wait_for(service.arrived.wait(), timeout=10)
    # Another scope and detail level: `/health fa` shares FA's probe with the all-services `/health`.
    assert (await bot.command("/health", "fa")).status_code == 200
    service.released.set()
    await bot.settle()

    assert service.hits == 1
    posts = await bot.slack.wait_for("chat.postMessage", count=2, timeout=10)
    assert sorted(post.text.split(" ", 1)[0] for post in posts) == ["FA", "Health:"]
    for post in posts:
        assert "FA AI System" in str(post.blocks) and "`health`" in str(post.blocks)
    assert [p.text for p in posts if p.text.startswith("FA")] == [
        "FA AI System: ok (3 probes: 1 ok, 2 not configured)"
    ]
    # Each request kept its own run, pointing at its own answer (the runs were written together).
    by_ts = {post.response["ts"]: post for post in posts}
    runs = await _runs(database_url)
    assert sorted(run[0] or "" for run in runs) == ["", "fa-ai-system"]
    for scope, channel, ts in runs:
        assert ts in by_ts and channel == by_ts[ts].response["channel"]
        assert by_ts[ts].text.startswith("FA" if scope else "Health:")


async def test_a_request_after_the_window_probes_again(
    bot: BotUnderTest, fa: tuple[ProbedService, str], clock: SteppedClock
) -> None:
    service, _ = fa
    await bot.command("/health", "fa")
    await bot.settle()
    service.status = "starting"  # the backend changed: a fresh probe must see it
    clock.now += SHARED_PROBE_SECONDS / 2
    await bot.command("/health", "fa")
    await bot.settle()
    assert service.hits == 1  # within the window: the first result was given again

    clock.now += SHARED_PROBE_SECONDS / 2  # the first probe started a whole window ago
    await bot.command("/health", "fa")
    await bot.settle()

    assert service.hits == 2
    first, second, third = [post.text for post in bot.slack.calls_to("chat.postMessage")]
    assert first == second and first.startswith("FA AI System: ok")
    assert third.startswith("FA AI System: down")


async def test_a_hung_health_runs_write_is_cut_and_the_answer_says_not_recorded(
    bot: BotUnderTest, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs are written one batch after another, so a statement that hangs (here: behind a lock, as behind a
    frozen Postgres) must not hold every later /health answer: it is cut, and the next batch records again."""
    monkeypatch.setattr(runs, "WRITE_TIMEOUT", 0.5)
    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await holder.execute("LOCK TABLE health_runs IN ACCESS EXCLUSIVE MODE")
        await bot.command("/health", "fa")
        [post] = await bot.slack.wait_for("chat.postMessage", timeout=10)
        assert "this run was not recorded" in blocks_text(post.blocks)
        await holder.rollback()
    await bot.command("/health", "fa")
    await bot.settle()
    later = bot.slack.calls_to("chat.postMessage")[-1]
    assert "not recorded" not in blocks_text(later.blocks)
    assert [run[2] for run in await _runs(database_url)] == [later.response["ts"]]
