"""The latency trend as a picture: a PNG chart (matplotlib, Agg) or, without it, a text sparkline.

People look at a trend; they do not read it. `render_trend` draws p50/p95/p99 per bucket with the SLO lines, and
returns None when matplotlib is not installed so the caller falls back to `sparkline`. matplotlib is imported
lazily, and only its object-oriented API (`Figure` + the Agg canvas) is used, never pyplot's global state, so the
function is safe to run in a worker thread.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)

__all__ = ["Threshold", "render_trend", "sparkline"]

SPARK_LEVELS = "▁▂▃▄▅▆▇█"
GAP = " "

_LINE_STYLE = {"p50": ("#7f8c8d", 1.2), "p95": ("#1f77b4", 2.2), "p99": ("#9467bd", 1.2)}


@dataclass(frozen=True)
class Threshold:
    """A horizontal line in the series' unit (ms): an SLO limit (dashed) or where WARN starts (dotted), drawn in
    the colour of the metric it is for (red when none is given)."""

    label: str
    value: float
    level: str = "limit"  # "limit" or "warn"
    metric: str | None = None


def sparkline(values: Sequence[float | None]) -> str:
    """▁▂▃▄▅▆▇█ scaled from the lowest to the highest value; a gap (space) where there is no value."""
    present = [v for v in values if v is not None]
    if not present:
        return GAP * len(values)
    low, high = min(present), max(present)
    span = high - low
    top = len(SPARK_LEVELS) - 1
    out = []
    for value in values:
        if value is None:
            out.append(GAP)
        elif span == 0:
            out.append(SPARK_LEVELS[top // 2])
        else:
            out.append(SPARK_LEVELS[round((value - low) / span * top)])
    return "".join(out)


def render_trend(
    times: Sequence[datetime],
    lines: dict[str, Sequence[float | None]],
    *,
    title: str,
    thresholds: Sequence[Threshold] = (),
) -> bytes | None:
    """PNG bytes of the series (ms, plotted in seconds) against time; None when matplotlib is unavailable."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
        from matplotlib.figure import Figure
    except ImportError:
        log.info("matplotlib is not installed: the latency trend falls back to a sparkline")
        return None

    figure = Figure(figsize=(8, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    xs = date2num(list(times))  # matplotlib's own date numbers (UTC)
    highest = 0.0
    for name, values in lines.items():
        color, width = _LINE_STYLE.get(name, ("#333333", 1.2))
        present = [v / 1000.0 for v in values if v is not None]
        if not present:
            continue
        highest = max(highest, *present)
        # NaN for an empty bucket breaks the line there instead of drawing across the gap.
        ys = [math.nan if v is None else v / 1000.0 for v in values]
        axes.plot(xs, ys, label=name, color=color, linewidth=width, marker="o", markersize=2.5)
    for threshold in thresholds:
        color = _LINE_STYLE[threshold.metric][0] if threshold.metric in _LINE_STYLE else "#d62728"
        style = "--" if threshold.level == "limit" else ":"
        axes.axhline(
            threshold.value / 1000.0, color=color, linestyle=style, linewidth=1.2, label=threshold.label
        )
        highest = max(highest, threshold.value / 1000.0)
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    # The offset under the axis ("2026-Jan-01 UTC") says which day and that the times are UTC.
    offsets = ["", "%Y UTC", "%Y-%b UTC", "%Y-%b-%d UTC", "%Y-%b-%d UTC", "%Y-%b-%d %H:%M UTC"]
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, offset_formats=offsets))
    axes.set_ylabel("seconds")
    axes.set_ylim(0, (highest or 1.0) * 1.12)
    axes.set_title(title, fontsize=10, loc="left")
    axes.grid(True, alpha=0.3)
    # Beside the plot, never over the lines people look at.
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
