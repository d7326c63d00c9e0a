"""Posting a diagnostic's answer: the message, and for a result too large for blocks, its CSV in the thread.

The CSV has every row with raw values (the table clips them), written by the csv module; a cell that a
spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return: OWASP's CSV
injection list) is prefixed with `'`, since a database value is outside text and the file is meant to be opened.
The file is uploaded with files_upload_v2 into the answer's thread, as /latency's chart is.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import date, datetime, timedelta

from bot.context import BotContext
from handlers.diagnostics.blocks import diagnostic_blocks, fits_in_blocks
from handlers.diagnostics.model import DiagnosticResult

__all__ = ["csv_text", "diagnostic_blocks", "needs_csv", "post_diagnostic", "upload_csv"]

log = logging.getLogger(__name__)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        text = value.isoformat()
    elif isinstance(value, timedelta):
        text = str(value.total_seconds())
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_text(result: DiagnosticResult) -> str:
    """Every result column and row, raw values, formula-guarded."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_csv_cell(name) for name in result.columns])
    for row in result.rows:
        writer.writerow([_csv_cell(value) for value in row])
    return out.getvalue()


def needs_csv(result: DiagnosticResult) -> bool:
    return result.error is None and bool(result.rows) and not fits_in_blocks(result)


async def upload_csv(bot: BotContext, channel: str, thread_ts: str, result: DiagnosticResult) -> None:
    """The whole result as a CSV file in the answer's thread."""
    name = f"diag-{result.service.name}-{result.query.name}"
    await bot.budget.call(
        channel,
        lambda: bot.slack.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=csv_text(result),
            filename=f"{name}.csv",
            title=f"{result.query.title} ({len(result.rows)} rows)",
        ),
    )


async def post_diagnostic(
    bot: BotContext, channel: str, thread_ts: str | None, result: DiagnosticResult
) -> str:
    """Post the answer in `channel` (in `thread_ts` when given) and, for a large result, its CSV in the thread;
    the message's ts."""
    text, blocks = diagnostic_blocks(result)
    response = await bot.budget.call(
        channel,
        lambda: bot.slack.chat_postMessage(
            channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, unfurl_links=False
        ),
    )
    ts = str(response["ts"])
    if needs_csv(result):
        await upload_csv(bot, str(response.get("channel") or channel), thread_ts or ts, result)
    return ts
