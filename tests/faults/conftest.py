"""Fixtures of the fault suite: a `world` (tests/faults/harness.py) on the suite's Postgres schema and Redis
database, or — for the outage tests, which stop them — on embedded servers the test owns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.embedded import EmbeddedServers
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from tests.faults.harness import SECRETS, FaultWorld


@pytest.fixture
def world_database_url(database_url: str) -> str:
    """The world's DATABASE_URL; an outage test overrides it with `embedded.database_url`."""
    return database_url


@pytest.fixture
def world_redis_url(redis_url: str) -> str:
    """The world's REDIS_URL; an outage test overrides it with `embedded.redis_url`."""
    return redis_url


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedServers]:
    """Postgres and Valkey of this test's own, to stop and start: never the shared servers."""
    servers = EmbeddedServers(tmp_path / "embedded")
    yield servers
    servers.stop()


@pytest.fixture
async def pagerduty() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(SECRETS.pagerduty_api_token) as server:
        yield server


@pytest.fixture
async def world(
    tmp_path: Path,
    world_database_url: str,
    world_redis_url: str,
    slack: RecordingSlackServer,
    pagerduty: RecordingPagerDutyServer,
) -> AsyncIterator[FaultWorld]:
    faults = FaultWorld(
        tmp=tmp_path,
        database_url=world_database_url,
        redis_url=world_redis_url,
        slack=slack,
        pagerduty=pagerduty,
    )
    try:
        yield faults
    finally:
        await faults.close()
    assert_no_secret_leaked(faults)


def assert_no_secret_leaked(world: FaultWorld) -> None:
    """Every fault test doubles as a leak test: its processes ran with distinctive secrets, and none may appear
    in their logs or in any body they sent to Slack or PagerDuty (tokens travel only in Authorization headers)."""
    sent = [json.dumps(c.body, default=str) for c in world.slack.calls]
    sent += [json.dumps(c.body, default=str) for c in world.pagerduty.calls]
    logs = world.logs()
    for secret in SECRETS.values():
        assert secret not in logs, "a secret is in a bot's log"
        assert not any(secret in body for body in sent), "a secret was sent in a request body"


async def start_embedded_postgres(servers: EmbeddedServers) -> str:
    return await asyncio.to_thread(servers.start_postgres)


async def start_embedded_redis(servers: EmbeddedServers) -> str:
    return await asyncio.to_thread(servers.start_redis)
