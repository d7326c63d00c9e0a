"""The table printed at the end of a run, and the JSON written beside it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.core import BenchResult, Row
from bench.stats import Summary


def _number(value: float) -> str:
    if math.isnan(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(summary: Summary | None) -> str:
    if summary is None:
        return ""
    if len(summary.rounds) <= 1:
        return _number(summary.median)
    return f"{_number(summary.median)} [{_number(summary.low)}–{_number(summary.high)}]"


def _verdict(row: Row) -> str:
    return "" if row.met is None else ("met" if row.met else "MISSED")


def _skipped(result: BenchResult) -> list[str]:
    return [result.name, f"skipped: {result.skipped}", "", "", "", ""]


def table(results: list[BenchResult]) -> str:
    header = ["benchmark", "figure", "bot  median [min–max]", "baseline  median [min–max]", "target", ""]
    lines: list[list[str]] = []
    for result in results:
        if result.skipped:
            lines.append(_skipped(result))
        for row in result.rows:
            baseline = _cell(row.baseline)
            if baseline and row.baseline_label:
                baseline = f"{baseline} ({row.baseline_label})"
            lines.append(
                [
                    row.benchmark,
                    f"{row.metric} ({row.unit})",
                    _cell(row.bot),
                    baseline,
                    row.target,
                    _verdict(row),
                ]
            )
    widths = [max([len(header[i]), *(len(line[i]) for line in lines)]) for i in range(len(header))]
    out = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join(out)


def markdown_table(results: list[BenchResult]) -> str:
    """The same table in Markdown, for docs/PERFORMANCE.md."""
    out = [
        "| benchmark | figure | bot: median [min–max] | baseline: median [min–max] | target | |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.skipped:
            out.append("| " + " | ".join(_skipped(result)) + " |")
        for row in result.rows:
            baseline = _cell(row.baseline)
            if baseline and row.baseline_label:
                baseline = f"{baseline} ({row.baseline_label})"
            out.append(
                f"| {row.benchmark} | {row.metric} ({row.unit}) | {_cell(row.bot)} | {baseline} | {row.target} "
                f"| {_verdict(row)} |"
            )
    return "\n".join(out)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
