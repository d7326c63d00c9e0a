"""Where the benchmarks run: Postgres and Redis, the bench's own database, schemas and Redis db, the machine.

Postgres and Redis are the real servers the tests use: BENCH_DATABASE_URL / BENCH_REDIS_URL when set, else the
local ones on 127.0.0.1:5432 and :6379 when they answer, else the embedded servers (bot/embedded.py) with their
data under bench/.state, so the 10-million-row events table survives between runs there too. The bench keeps out
of the test suite's way: its own database (`mira_bench`, or a schema of the server's default database when it may
not create one), a fresh schema for each bot it starts, and Redis database 11 (the tests use 15 or their own; BENCH_REDIS_DB picks another).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import redis

from bot.embedded import EmbeddedServers

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / "bench" / ".state"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "11"))  # another number when two benches share a server
BENCH_DATABASE = "mira_bench"


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A loopback port nothing listens on now (the server that gets it binds it moments later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


def with_redis_db(url: str, db: int) -> str:
    """The same server, database `db`: the path of a redis:// URL, the `db` parameter of a unix:// one."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [kv for kv in parts.query.split("&") if kv and not kv.startswith("db=")]
        return urlunsplit(parts._replace(query="&".join([*query, f"db={db}"])))
    return urlunsplit(parts._replace(path=f"/{db}"))


@dataclass
class Storage:
    """The servers the bench uses, and what it started itself."""

    database_url: str  # the bench's own database
    redis_url: str  # the bench's own Redis database
    kind: str  # "local", "environment" or "embedded"
    embedded: EmbeddedServers | None = None
    schemas: list[str] = field(default_factory=list)

    def new_schema(self, label: str) -> str:
        """A fresh, empty schema for one bot: its tables start empty, so counting rows afterwards is exact."""
        schema = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        self.schemas.append(schema)
        return schema

    def drop_schemas(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.schemas.clear()

    def flush_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushdb()
        finally:
            client.close()

    def close(self) -> None:
        try:
            self.drop_schemas()
        finally:
            if self.embedded is not None:
                self.embedded.stop()


def _bench_database(server_url: str) -> str:
    """The bench's own database on that server; the server's default database when it may not create one."""
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
        return with_database(server_url, BENCH_DATABASE)
    except psycopg.errors.InsufficientPrivilege:
        return server_url


def open_storage() -> Storage:
    """BENCH_DATABASE_URL / BENCH_REDIS_URL name servers (the CI smoke test passes the test suite's); the bench
    always uses its own database and Redis database number on them."""
    embedded: EmbeddedServers | None = None
    server_url = os.environ.get("BENCH_DATABASE_URL")
    redis_server = os.environ.get("BENCH_REDIS_URL")
    kinds = []
    if server_url is not None:
        kinds.append("postgres from BENCH_DATABASE_URL")
    elif answers("127.0.0.1", 5432):
        try:
            with psycopg.connect(LOCAL_POSTGRES, connect_timeout=2):
                server_url = LOCAL_POSTGRES
                kinds.append("local postgres")
        except psycopg.Error:
            server_url = None
    if server_url is None:
        embedded = EmbeddedServers(STATE_DIR)
        server_url = embedded.start_postgres()
        kinds.append("embedded postgres")
    if redis_server is not None:
        kinds.append("redis from BENCH_REDIS_URL")
    elif answers("127.0.0.1", 6379):
        redis_server = "redis://127.0.0.1:6379/0"
        kinds.append("local redis")
    else:
        embedded = embedded or EmbeddedServers(STATE_DIR)
        redis_server = embedded.start_redis()
        kinds.append("embedded redis")
    return Storage(
        database_url=_bench_database(server_url),
        redis_url=with_redis_db(redis_server, BENCH_REDIS_DB),
        kind=", ".join(kinds),
        embedded=embedded,
    )


def _lscpu_model() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown"
    match = re.search(r"^Model name:\s*(.+)$", output, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, object]:
    """What the figures were measured on: they mean little without it."""
    return {
        "cpu_model": _lscpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
    }


def postgres_settings(database_url: str) -> dict[str, str]:
    """The Postgres settings that bound the ingest and latency figures."""
    names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections")
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]
