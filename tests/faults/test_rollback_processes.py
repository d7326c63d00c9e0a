"""Rollbacks under real processes: two replicas confirming at once run one rollback, and a replica killed with
SIGKILL during a `wait` step is resumed at that step by the next start, without repeating the steps before it.

The catalog gives the FA AI System a short plan — a deploy hook, a 6-second watch, a second hook, a health check —
so a whole run fits in a test; ROLLBACK_LEASE_SECONDS=2 lets a killed replica's lease lapse quickly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from bot.catalog import BUNDLED_CATALOG
from stand_ins.recording_hooks import RecordingHookServer
from tests.faults.harness import BotProcess, FaultWorld, until
from tests.harness import CHANNEL, answer, fake_service

REQUESTER, CONFIRMER = "U0OWNER01", "U0OWNER02"
HOOK_SECRET = "FAULTSUITE-hook-3c9e1a7b5d20"
PLAN = {
    "name": "drill",
    "description": "A short blue/green rollback for the fault suite",
    "steps": [
        {
            "kind": "deploy",
            "title": "Shift traffic back",
            "hook": {
                "kind": "webhook",
                "url": "${FA_ROLLBACK_HOOK_URL}/first",
                "secret_env": "FA_HOOK_SECRET",
            },
        },
        {"kind": "wait", "title": "Watch for 6 seconds", "minutes": 0.1},
        {
            "kind": "deploy",
            "title": "Drain the old colour",
            "hook": {
                "kind": "webhook",
                "url": "${FA_ROLLBACK_HOOK_URL}/second",
                "secret_env": "FA_HOOK_SECRET",
            },
        },
        {"kind": "verify", "title": "Health is ok"},
    ],
}


@pytest.fixture
async def hooks() -> AsyncIterator[RecordingHookServer]:
    async with RecordingHookServer() as server:
        server.require_secret("first", HOOK_SECRET)
        server.require_secret("second", HOOK_SECRET)
        yield server


@pytest.fixture
async def fa_health() -> AsyncIterator[str]:
    async with fake_service({"/health": answer({"status": "healthy"})}) as url:
        yield url


@pytest.fixture
def rollback_env(world: FaultWorld, hooks: RecordingHookServer, fa_health: str) -> dict[str, Any]:
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for service in data["services"]:
        service["owners"] = {"users": [REQUESTER, CONFIRMER], "groups": []}
        if service["name"] == "fa-ai-system":
            service["rollback_plans"] = [PLAN]
            service.pop("next_steps", None)  # they name the bundled plans, which this catalog replaces
    catalog = world.write_catalog(yaml.safe_dump(data, sort_keys=False))
    return {
        "BOT_CATALOG": str(catalog),
        "FA_BASE_URL": fa_health,
        "FA_ROLLBACK_HOOK_URL": f"{hooks.base_url}/hooks",
        "FA_HOOK_SECRET": HOOK_SECRET,
        "ROLLBACK_LEASE_SECONDS": 2,
    }


async def _request(world: FaultWorld, bot: BotProcess) -> str:
    await bot.command(world.slack, "/rollback", "fa drill", user=REQUESTER)

    async def posted() -> bool:
        return any(c.channel == CHANNEL and c.response for c in world.slack.calls_to("chat.postMessage"))

    await until(posted, within=30, what="the rollback request posted")
    [root] = [c for c in world.slack.calls_to("chat.postMessage") if c.channel == CHANNEL and c.response]
    return str(root.response["ts"])


async def _status(world: FaultWorld) -> str:
    [(status,)] = await world.sql("SELECT status FROM rollback_runs")
    return str(status)


def _thread(world: FaultWorld, root: str) -> list[str]:
    return [c.text or "" for c in world.slack.calls_to("chat.postMessage") if c.thread_ts == root]


async def test_two_replicas_confirming_at_once_run_the_rollback_once(
    world: FaultWorld, hooks: RecordingHookServer, rollback_env: dict[str, Any]
) -> None:
    first = await world.start_bot("replica-a", **rollback_env)
    second = await world.start_bot("replica-b", **rollback_env)
    root = await _request(world, first)
    for bot in (first, second, first, second):  # the same click on both replicas, twice
        await bot.click(world.slack, CHANNEL, root, "rollback_confirm", "1", user=CONFIRMER)

    async def done() -> bool:
        return await _status(world) == "done"

    await until(done, within=90, what="the rollback finished")
    assert [call.path for call in hooks.calls] == ["/hooks/first", "/hooks/second"]
    assert await world.count("SELECT count(*) FROM audit_log WHERE action = 'rollback.confirm'") == 1
    started = await world.sql(
        "SELECT target, count(*) FROM audit_log WHERE action = 'rollback.step' AND outcome = 'started' GROUP BY 1"
    )
    assert sorted(started) == [("1/1", 1), ("1/2", 1), ("1/3", 1), ("1/4", 1)]
    summaries = [c for c in world.slack.calls_to("chat.postMessage") if c.channel == "#incidents"]
    assert len(summaries) == 1


async def test_a_replica_killed_during_a_wait_is_resumed_at_that_step(
    world: FaultWorld, hooks: RecordingHookServer, rollback_env: dict[str, Any]
) -> None:
    bot = await world.start_bot("bot", **rollback_env)
    root = await _request(world, bot)
    await bot.click(world.slack, CHANNEL, root, "rollback_confirm", "1", user=CONFIRMER)

    async def watching() -> bool:
        rows = await world.sql("SELECT status FROM rollback_steps WHERE run_id = 1 AND position = 2")
        return rows == [("running",)]

    await until(watching, within=30, what="the watch step running")
    await bot.kill()
    assert [call.path for call in hooks.calls] == ["/hooks/first"]
    await bot.start()

    async def done() -> bool:
        return await _status(world) == "done"

    await until(done, within=90, what="the resumed rollback finished")
    assert [call.path for call in hooks.calls] == ["/hooks/first", "/hooks/second"]
    resumed = [t for t in _thread(world, root) if "Resumed after a restart" in t]
    assert len(resumed) == 1
    assert "Step 1 is done and will not run again. Continuing at step 2: Watch for 6 seconds." in resumed[0]
    assert await world.sql("SELECT position, attempts FROM rollback_steps ORDER BY position") == [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 1),
    ]
