"""Percentiles of one round, and the median / min / max of several rounds.

A figure in the table is always the median of the rounds with the smallest and largest round beside it, so one
round disturbed by another process on the machine shows as a wide range instead of moving the figure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so p99 of 200 samples is not the maximum."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    """One figure over the rounds of a benchmark."""

    median: float
    low: float
    high: float
    rounds: tuple[float, ...]

    @classmethod
    def of(cls, rounds: Sequence[float]) -> Summary:
        values = tuple(float(v) for v in rounds)
        if not values:
            return cls(math.nan, math.nan, math.nan, ())
        return cls(statistics.median(values), min(values), max(values), values)

    def as_json(self) -> dict[str, object]:
        return {
            "median": _finite(self.median),
            "min": _finite(self.low),
            "max": _finite(self.high),
            "rounds": [_finite(v) for v in self.rounds],
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)
