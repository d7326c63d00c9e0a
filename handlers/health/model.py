"""What /health decides and its blocks render: the request and the report, beside neither, so the handler
(command.py) and its rendering (blocks.py) both import this and never each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.catalog import Service
from handlers.health.probing import ServiceHealth


@dataclass(frozen=True)
class HealthRequest:
    """Which services to check; `detailed` when one was named (every probe shown, even the healthy ones)."""

    services: tuple[Service, ...]
    detailed: bool


@dataclass(frozen=True)
class HealthReport:
    services: tuple[ServiceHealth, ...]
    detailed: bool
    checked_at: datetime
    requested_by: str
    recorded: bool = True
