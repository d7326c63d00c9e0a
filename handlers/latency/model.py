"""What /latency decides and its blocks render: the windows and the request, beside neither, so the handler
(command.py) and its rendering (blocks.py) both import this and never each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.catalog import LatencySource, Service

#: Each window with the number of trend buckets: 20 s, 5 min, 1 h and 6 h slices.
WINDOWS: dict[str, tuple[timedelta, int]] = {
    "5m": (timedelta(minutes=5), 15),
    "1h": (timedelta(hours=1), 12),
    "24h": (timedelta(hours=24), 24),
    "7d": (timedelta(days=7), 28),
}


@dataclass(frozen=True)
class LatencyRequest:
    """One service over one window; `kind` None means every kind (or a source without kinds). `kinds` are the
    choices the service offers (empty without a kind column); `missing` the unset `${VAR}`s of its source."""

    service: Service
    window: str
    kind: str | None
    kind_defaulted: bool = False
    kinds: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def source(self) -> LatencySource:
        assert self.service.latency is not None
        return self.service.latency

    @property
    def duration(self) -> timedelta:
        return WINDOWS[self.window][0]

    @property
    def buckets(self) -> int:
        return WINDOWS[self.window][1]
