"""Block Kit for /diag: the query's answer as a monospace table, its crossings named, the runbook's next steps.

Layout, within Slack's limits (bot/slack_limits.py: 50 blocks, 3,000 characters a section, 40,000 a message's
text; Slack also refuses a message whose blocks add up to ~13,000 characters with msg_blocks_too_long, so one
table section is the bulk of it):

* a section: the query's title, the service and the runbook section it comes from (linked when the runbook's url
  is set), and a context line: row count, duration, the bound window / limit / filters;
* the rows as one code block, one line each, marked 🔴 (critical) or 🟡 (warn) in front when they cross a
  threshold; each cell clipped to `CELL_CHARS`;
* a line per crossed threshold naming it (`🔴 confidence < 0.3 (critical): 3 rows`), and, when any is crossed, the
  next steps of the query (handlers.next_steps buttons);
* a result too long (more than `BLOCK_ROWS` rows) or too wide (lines past `TABLE_WIDTH`, or a table past the
  section limit) shows its first rows and "N rows — full result in the CSV": the CSV goes in the thread
  (handlers/diagnostics/post.py).

Every value read from the database is outside text: escaped (bot/mrkdwn.py) after it is padded, so the columns
stay aligned as Slack shows `&lt;` as one character, and backticks are replaced so no value can close the block.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot import mrkdwn, slack_limits
from bot.catalog import ResultColumn, Threshold, interval_text, section_url
from handlers.diagnostics.model import DiagnosticResult
from handlers.next_steps import next_step_blocks

#: Longest cell shown in the table; the CSV has the whole value.
CELL_CHARS = 40
#: Most rows shown as a table in the message; a longer result goes to a CSV file.
BLOCK_ROWS = 20
#: Widest table line (characters) read comfortably in a Slack code block before it wraps.
TABLE_WIDTH = 120
#: Rows shown before "full result in the CSV".
PREVIEW_ROWS = 10
MARKS = {"critical": "🔴", "warn": "🟡"}
_FENCE = "```"


def cell_text(value: object, column: ResultColumn | None = None) -> str:
    """A value as the table shows it (before escaping): the column's format, else a readable default."""
    if value is None:
        return "—"
    if column is not None and column.format:
        try:
            return column.format.format(value)
        except (ValueError, TypeError):
            pass  # a format that does not fit this value: show it plainly rather than fail the answer
    if isinstance(value, datetime):  # one clock for every reader of the channel: UTC, marked Z
        moment = value.astimezone(UTC) if value.tzinfo else value
        return moment.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if value.tzinfo else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return interval_text(value) if value.total_seconds() >= 1 else f"{value.total_seconds() * 1000:.0f}ms"
    if isinstance(value, float | Decimal):
        return _number(float(value))
    return str(value)


def _number(value: float) -> str:
    """A measured number without false precision or exponent: 1234, 12.35, 0.004567."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value == int(value) or abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def _cell(value: object, column: ResultColumn | None) -> str:
    """One line, no backtick (which would close the code block), at most CELL_CHARS."""
    text = " ".join(cell_text(value, column).split()).replace("`", "ˋ")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def shown_columns(result: DiagnosticResult) -> list[tuple[int, str, ResultColumn | None]]:
    """(index in the result, header, catalog column) for what the table shows: the catalog's columns in order, or
    every result column when the query declares none."""
    if result.query.columns:
        return [
            (result.columns.index(column.name), column.header, column)
            for column in result.query.columns
            if column.name in result.columns
        ]
    return [(index, name, None) for index, name in enumerate(result.columns)]


def _mark(result: DiagnosticResult, row: int) -> str:
    levels = {threshold.level for threshold in result.crossed_rows.get(row, [])}
    return MARKS["critical"] if "critical" in levels else MARKS["warn"] if levels else "  "


def table_lines(result: DiagnosticResult, rows: int) -> list[str]:
    """The header and the first `rows` rows, padded into columns (not escaped yet)."""
    columns = shown_columns(result)
    grid = [[_cell(row[index], column) for index, _, column in columns] for row in result.rows[:rows]]
    headers = [_cell(header, None) for _, header, _ in columns]
    widths = [max([len(headers[i]), *(len(line[i]) for line in grid)]) for i in range(len(columns))]
    marked = bool(result.crossed)
    lines = [("   " if marked else "") + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    for number, line in enumerate(grid):
        prefix = f"{_mark(result, number)} " if marked else ""
        lines.append(prefix + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return [line.rstrip() for line in lines]


def _table_text(lines: list[str]) -> str:
    return _FENCE + "\n".join(mrkdwn.escape(line) for line in lines) + _FENCE


def fits_in_blocks(result: DiagnosticResult) -> bool:
    """Whether the whole result reads well as a table in the message (else: the CSV in the thread)."""
    if len(result.rows) > BLOCK_ROWS:
        return False
    lines = table_lines(result, len(result.rows))
    return max(map(len, lines)) <= TABLE_WIDTH and len(_table_text(lines)) <= slack_limits.SECTION_TEXT


def _preview(result: DiagnosticResult) -> list[str]:
    """The most of the first PREVIEW_ROWS rows that fit one section."""
    for rows in range(min(PREVIEW_ROWS, len(result.rows)), -1, -1):
        lines = table_lines(result, rows)
        if len(_table_text(lines)) <= slack_limits.SECTION_TEXT:
            return lines
    return []


def _runbook(result: DiagnosticResult) -> str:
    section = result.query.runbook
    url = section_url(result.service.runbooks, section)
    return mrkdwn.link(url, section.section, trusted_label=True) if url else f"§ {section.section}"


def _args_text(result: DiagnosticResult) -> str:
    parts = []
    for name, value in result.args.items():
        if value is None:
            continue
        shown = interval_text(value) if isinstance(value, timedelta) else str(value)
        parts.append(f"{name} {mrkdwn.outside(shown, 200)}")
    return " · ".join(parts)


def _rows_text(count: int) -> str:
    return f"{count} row" + ("" if count == 1 else "s")


def header_blocks(result: DiagnosticResult, requested_by: str | None = None) -> list[dict[str, Any]]:
    service, query = result.service, result.query
    title = f"*{query.title}* · {service.display_name} (`/diag {service.name} {query.name}`)"
    facts = [] if result.error else [_rows_text(len(result.rows)), f"{result.duration_ms:.0f} ms"]
    facts += [text] if (text := _args_text(result)) else []
    facts.append(f"runbook: {_runbook(result)}")
    if requested_by:
        facts.append(f"asked by <@{requested_by}>")
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": mrkdwn.clip(title, slack_limits.SECTION_TEXT)},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn.clip(" · ".join(facts), 3000)}]},
    ]


def crossing_lines(result: DiagnosticResult) -> list[str]:
    """One line per threshold crossed, naming it and counting its rows."""
    counts: dict[Threshold, int] = {}
    for _, threshold in result.crossed:
        counts[threshold] = counts.get(threshold, 0) + 1
    return [
        f"{MARKS[threshold.level]} {threshold.label} ({threshold.level}): {_rows_text(count)}"
        for threshold, count in counts.items()
    ]


def fallback_text(result: DiagnosticResult) -> str:
    head = f"{result.query.title} — {result.service.display_name}"
    if result.error:
        return mrkdwn.clip(f"{head}: {mrkdwn.escape(result.error)}", 3000)
    crossed = len(result.crossed_rows)
    return f"{head}: {_rows_text(len(result.rows))}" + (f", {crossed} past a threshold" if crossed else "")


def diagnostic_blocks(
    result: DiagnosticResult, *, requested_by: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and blocks for the answer; a large result shows its first rows (the CSV has all).
    `requested_by` is the Slack user who asked (a scheduled check asks nobody)."""
    blocks = header_blocks(result, requested_by)
    if result.error:
        text = f"⚠️ {mrkdwn.outside(result.error, slack_limits.SECTION_TEXT - 10)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        return fallback_text(result), blocks
    if not result.rows:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "_No rows: nothing to report._"}}
        )
        return fallback_text(result), blocks
    whole = fits_in_blocks(result)
    lines = table_lines(result, len(result.rows)) if whole else _preview(result)
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _table_text(lines)}})
    if not whole:
        shown = max(0, len(lines) - 1)
        note = f"{_rows_text(len(result.rows))} — full result in the CSV in the thread"
        note += f" (first {shown} shown)" if shown else " (too wide to show here)"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if crossed := crossing_lines(result):
        text = mrkdwn.clip("\n".join(crossed), slack_limits.SECTION_TEXT)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        steps = result.service.diagnostic_steps(result.query.name)
        blocks += next_step_blocks(
            result.service, steps, key=f"diag.{result.service.name}.{result.query.name}"
        )
    return fallback_text(result), blocks[: slack_limits.MESSAGE_BLOCKS]
