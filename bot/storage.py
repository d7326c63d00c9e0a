"""Storage: a psycopg 3 async pool and a redis-py asyncio client, external or embedded, with migrations applied.

Postgres is the source of truth (claims, audit, outbox); Redis holds only short-lived things (locks, rate budgets)
that may be lost. Migrations are numbered SQL files under `bot/migrations/`, applied at start under an advisory
lock so two replicas starting together apply each exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
import redis.asyncio as redis
from psycopg_pool import AsyncConnectionPool
from redis import exceptions as redis_exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.embedded import EmbeddedServers
from bot.settings import Settings

log = logging.getLogger(__name__)

POOL_TIMEOUT = 5.0
#: Connect and read timeout of every Redis call. Redis answers in well under a millisecond when it is healthy;
#: a frozen Redis (process stopped, connection open) otherwise holds each call for redis-py's retries.
REDIS_TIMEOUT = 1.0
#: After a Redis call timed out or could not connect, calls fail at once for this long (then one is tried again),
#: so a post's several Redis calls do not each wait out the timeout: the callers' fallbacks take over at once.
REDIS_COOL_OFF = 5.0
_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StorageUnavailable(Exception):
    """Postgres or Redis did not answer; `str()` says which, without the URL (it may hold a password)."""


class BoundedRedis(redis.Redis):
    """redis-py's asyncio client with every call bounded: REDIS_TIMEOUT for connecting and for the answer (the
    client is built with those socket timeouts and no retries), an overall deadline on top, and a cool-off after
    Redis did not answer, during which calls raise `RedisUnanswered` at once instead of queueing behind a dead
    socket. Every Redis user already falls back on `RedisError` (the budget to a local rate, the locks to
    Postgres), so a hung Redis costs one timeout, not one per call (issue 12: 35–45 s per incident post)."""

    _unanswered_until: float = 0.0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        loop = asyncio.get_running_loop()
        if loop.time() < self._unanswered_until:
            raise RedisUnanswered("Redis did not answer a moment ago; not asked again yet")
        try:
            async with asyncio.timeout(REDIS_TIMEOUT * 2):
                return await super().execute_command(*args, **options)
        except TimeoutError as exc:  # the overall deadline: redis-py's own timeouts raise its TimeoutError
            self._unanswered_until = loop.time() + REDIS_COOL_OFF
            raise RedisUnanswered("Redis call timed out") from exc
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError):
            self._unanswered_until = loop.time() + REDIS_COOL_OFF
            raise


class RedisUnanswered(redis_exceptions.ConnectionError):
    """Redis did not answer within REDIS_TIMEOUT (or did not a moment ago); a RedisError like any other."""


#: Connections to Redis one process keeps at most. More calls than this in flight wait for a free connection
#: (within REDIS_TIMEOUT) instead of failing.
REDIS_MAX_CONNECTIONS = 100


def redis_client(url: str) -> BoundedRedis:
    """The bot's Redis client: bounded timeouts, no retries (see BoundedRedis), on a *blocking* pool.

    redis-py's default pool raises `MaxConnectionsError` (a ConnectionError) on the 101st call in flight; to
    BoundedRedis that looked like a Redis that did not answer, so 200 acks in flight put a healthy Redis in its
    5-second cool-off and every replay claim, lock and budget fell back to Postgres meanwhile (the ack
    benchmark's profile: a fifth of the bot's CPU in the replay cache's Postgres fallback). A blocking pool
    makes the extra calls wait their turn for a connection, bounded by the same timeout."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )
    client = BoundedRedis(connection_pool=pool)
    client.auto_close_connection_pool = True  # closing the client closes its pool, as from_url's client does
    return client


class SessionLocks:
    """Postgres session advisory locks, on one connection of their own: the fallback of the short Redis locks
    (an incident's delivery) when Redis does not answer. A lock lasts until `unlock` or until the connection
    ends — a process that dies releases its locks with its connection, as a Redis lock's TTL would. A session
    lock is re-entrant in Postgres, so this process also keeps the set it holds and refuses itself a second
    time. Keys live in the two-integer key space under `hashtext('mira-bot:lock')`, apart from the one-integer
    transaction locks elsewhere."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._mutex = asyncio.Lock()
        self._held: set[str] = set()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._held.clear()  # a lost connection took its locks with it
            self._conn = await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, connect_timeout=int(POOL_TIMEOUT)
            )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def try_lock(self, name: str) -> bool | None:
        """True: held now; False: held by another process (or by this one); None: Postgres did not answer."""
        async with self._mutex:
            if name in self._held:
                return False
            try:
                async with asyncio.timeout(POOL_TIMEOUT):
                    conn = await self._connection()
                    cursor = await conn.execute(
                        "SELECT pg_try_advisory_lock(hashtext('mira-bot:lock'), hashtext(%s))", (name,)
                    )
                    row = await cursor.fetchone()
            except (psycopg.Error, TimeoutError):
                await self._drop()
                return None
            if row and row[0]:
                self._held.add(name)
                return True
            return False

    async def unlock(self, name: str) -> None:
        async with self._mutex:
            if name not in self._held or self._conn is None:
                return
            self._held.discard(name)
            try:
                async with asyncio.timeout(POOL_TIMEOUT):
                    await self._conn.execute(
                        "SELECT pg_advisory_unlock(hashtext('mira-bot:lock'), hashtext(%s))", (name,)
                    )
            except (psycopg.Error, TimeoutError):
                await self._drop()  # the session is gone or unusable: its locks end with it

    async def close(self) -> None:
        async with self._mutex:
            await self._drop()


@dataclass
class Storage:
    pool: AsyncConnectionPool
    redis: redis.Redis
    embedded: EmbeddedServers | None = None
    redis_url: str = ""
    #: Postgres advisory locks standing in for the Redis locks when Redis does not answer (None: not available).
    locks: SessionLocks | None = None

    @contextlib.asynccontextmanager
    async def autocommit(self, timeout: float | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection in autocommit mode, for one statement that is atomic on its own.

        The pool's connections open a transaction around whatever they run, and psycopg sends BEGIN, the statement
        and COMMIT as three round trips. A single INSERT … ON CONFLICT needs none of that: in autocommit it is one
        round trip, committed (and flushed to disk) by the time it returns, exactly as durable. The webhook ingest
        was a third as fast as a bare endpoint before (docs/PERFORMANCE.md, "ingest"). The connection goes back
        to the pool in its usual mode; a broken one is discarded by the pool as always.
        """
        async with self.pool.connection(timeout=timeout) as conn:
            await conn.set_autocommit(True)
            try:
                yield conn
            finally:
                with contextlib.suppress(
                    psycopg.Error
                ):  # only a broken connection refuses; the pool drops it
                    await conn.set_autocommit(False)

    async def ready(self, timeout: float = 2.0) -> dict[str, str]:
        """What /readyz reports: 'ok' or a short reason per dependency."""
        return {"postgres": await self._check_postgres(timeout), "redis": await self._check_redis(timeout)}

    async def _check_postgres(self, timeout: float) -> str:
        try:
            async with asyncio.timeout(timeout), self.pool.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")
            return "ok"
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"

    async def _check_redis(self, timeout: float) -> str:
        try:
            async with asyncio.timeout(timeout):
                await self.redis.ping()
            return "ok"
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"

    async def close(self) -> None:
        if self.locks is not None:
            await self.locks.close()
        await self.pool.close()
        await self.redis.aclose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every bundled migration, in order."""
    found = []
    for entry in resources.files("bot").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def apply_migrations(pool: AsyncConnectionPool) -> list[str]:
    """Apply pending migrations once, even when several replicas start together; return the names applied.

    The advisory lock is keyed on the current schema, so test schemas migrate independently.
    """
    applied: list[str] = []
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        await conn.execute("SELECT pg_advisory_lock(hashtext('mira-bot:migrations:' || current_schema()))")
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                applied.append(name)
                log.info("migration applied", extra={"migration": name})
        finally:
            await conn.execute(
                "SELECT pg_advisory_unlock(hashtext('mira-bot:migrations:' || current_schema()))"
            )
        await conn.set_autocommit(False)
    return applied


async def open_storage(settings: Settings, *, migrate: bool = True) -> Storage:
    """Connect to Postgres and Redis (starting embedded servers for whichever URL is unset) and migrate."""
    embedded: EmbeddedServers | None = None
    database_url = settings.database_url.get_secret_value() if settings.database_url else None
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    if database_url is None or redis_url is None:
        embedded = EmbeddedServers(settings.state_dir)
        try:
            if database_url is None:
                database_url = await asyncio.to_thread(embedded.start_postgres)
            if redis_url is None:
                redis_url = await asyncio.to_thread(embedded.start_redis)
        except Exception:
            await asyncio.to_thread(embedded.stop)
            raise

    # timeout: how long a caller waits for a connection. Without a database, every command and delivery pass
    # would otherwise hang for psycopg_pool's default 30 s before saying so; 5 s is far beyond a healthy wait.
    pool = AsyncConnectionPool(
        database_url, min_size=1, max_size=10, open=False, name="mira-bot", timeout=POOL_TIMEOUT
    )
    client = redis_client(redis_url)
    storage = Storage(
        pool=pool, redis=client, embedded=embedded, redis_url=redis_url, locks=SessionLocks(database_url)
    )
    try:
        try:
            await pool.open(wait=True, timeout=10.0)
        except Exception as exc:
            raise StorageUnavailable(
                f"Postgres did not answer at DATABASE_URL ({type(exc).__name__})"
            ) from exc
        try:
            await client.ping()
        except Exception as exc:
            raise StorageUnavailable(f"Redis did not answer at REDIS_URL ({type(exc).__name__})") from exc
        if migrate:
            await apply_migrations(pool)
    except BaseException:
        await storage.close()
        raise
    return storage
