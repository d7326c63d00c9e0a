"""Running one catalog diagnostic: bind the user's arguments, read the service's own database, mark the rows.

The statement is the catalog's text, validated at load (bot/catalog/read_only_sql.py); the only values in it are
the declared parameters, bound by psycopg. It runs through integrations/read_only_db.py, as /latency's query does:
a READ ONLY transaction with `SET LOCAL statement_timeout` and a client-side guard, so a write that slipped past
load is refused by Postgres itself. Every failure becomes one line in `DiagnosticResult.error` that says what to
do: the variable to set, the catalog entry to fix (a missing table or column), the budget that ran out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import LiteralString, cast

from psycopg import sql

from bot.catalog import DiagnosticQuery, Service, Threshold, interval_text, missing_env, parse_interval
from bot.commands import did_you_mean
from bot.context import BotContext
from handlers.diagnostics.model import DiagnosticResult, catalog_path
from integrations import read_only_db

__all__ = ["ArgumentError", "DiagnosticResult", "bind_args", "catalog_path", "evaluate", "run_diagnostic"]

APPLICATION_NAME = "mira-chatops /diag"
#: Rows fetched at most whatever the LIMIT says: a result is shown, not paged through.
MAX_ROWS = 10_000
#: Longest text filter value: a filter is a word or a name, never a document.
MAX_FILTER_CHARS = 200
#: Postgres' `relation "x" does not exist` / `column "x" does not exist` (or `column t.x …`): the name it lacks.
_MISSING_NAME = re.compile(r'(?:relation|column) "?([^"\s]+)"? does not exist')


class ArgumentError(ValueError):
    """A bad argument for a query: the message and, when one is close, what the user may have meant."""

    def __init__(self, message: str, *, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


# --- arguments --------------------------------------------------------------------------------------------------


def _bind_interval(name: str, raw: str, maximum: timedelta) -> timedelta:
    value = parse_interval(raw)
    if value is None:
        raise ArgumentError(f"{name} is written like 15m, 2h, 1d or 7d, got `{raw}`.")
    if value > maximum:
        raise ArgumentError(f"{name} is at most {interval_text(maximum)}, got `{raw}`.")
    return value


def _bind_number(name: str, raw: str, maximum: int | None) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ArgumentError(f"{name} is a positive whole number, got `{raw}`.")
    if maximum is not None and int(raw) > maximum:
        raise ArgumentError(f"{name} is at most {maximum}, got `{raw}`.")
    return int(raw)


def bind_args(query: DiagnosticQuery, args: Mapping[str, str] | None = None) -> dict[str, object]:
    """The bound parameters from the user's raw strings (`{"window": "2h", "module": "chat"}`), with the catalog's
    defaults for the rest; `ArgumentError` for an unknown key, a bad value or one past its max. Pure."""
    args = dict(args or {})
    for key in args:
        if key not in query.params:
            known = list(query.params)
            raise ArgumentError(
                f"`{query.name}` has no parameter `{key}`"
                + (f"; it takes {', '.join(f'`{k}`' for k in known)}." if known else "; it takes none."),
                suggestion=did_you_mean(key, known),
            )
    bound: dict[str, object] = {}
    for name, param in query.params.items():
        raw = args.get(name)
        if raw is None:
            if param.default is None and not param.optional:
                raise ArgumentError(f"`{query.name}` needs `{name}=…`.")
            bound[name] = param.bound_default
        elif param.type == "interval":
            maximum = param.bound_max
            assert isinstance(maximum, timedelta)
            bound[name] = _bind_interval(name, raw, maximum)
        elif param.type in ("limit", "int"):
            limit = param.bound_max
            bound[name] = _bind_number(name, raw, limit if isinstance(limit, int) else None)
        else:
            if len(raw) > MAX_FILTER_CHARS:
                raise ArgumentError(f"{name} is at most {MAX_FILTER_CHARS} characters.")
            bound[name] = raw
    return bound


# --- running ----------------------------------------------------------------------------------------------------


def evaluate(
    columns: list[str], rows: list[tuple[object, ...]], thresholds: Sequence[Threshold]
) -> list[tuple[int, Threshold]]:
    """Every (row index, threshold) where the row's value in the threshold's column crosses it."""
    crossed: list[tuple[int, Threshold]] = []
    for index, row in enumerate(rows):
        for threshold in thresholds:
            if threshold.column in columns and threshold.crossed_by(row[columns.index(threshold.column)]):
                crossed.append((index, threshold))
    return crossed


def _failure_text(
    error: read_only_db.ReadOnlyQueryError, service: Service, query: DiagnosticQuery, db: str
) -> str:
    where = f"fix {catalog_path(service, query)} in BOT_CATALOG"
    if isinstance(error, read_only_db.UndefinedObject):
        named = _MISSING_NAME.search(str(error))
        what = f"{error.kind} {named.group(1)} does not exist" if named else str(error)
        return f"{what} in {db} — {where}"
    if isinstance(error, read_only_db.WriteRefused):
        return f"refused: the query tried to write, and diagnostics only read ({error}) — {where}"
    if isinstance(error, read_only_db.QueryTimeout) and not error.connecting:
        return (
            f"the query timed out after {error.timeout_s:g} s (the service's diagnostics.statement_timeout_s): "
            "try a shorter window or a smaller limit"
        )
    return str(error)


def _shape_problem(
    service: Service, query: DiagnosticQuery, columns: list[str], thresholds: Sequence[Threshold]
) -> str | None:
    """A declared column or threshold column the result lacks: the catalog and the query disagree."""
    for column in query.columns:
        if column.name not in columns:
            return (
                f"column {column.name} is not in the result ({', '.join(columns)}) — fix "
                f"{catalog_path(service, query, 'columns')} in BOT_CATALOG"
            )
    for threshold in thresholds:
        if threshold.column not in columns:
            return (
                f"threshold column {threshold.column} is not in the result ({', '.join(columns)}) — fix "
                f"{catalog_path(service, query, 'thresholds')} in BOT_CATALOG"
            )
    return None


async def run_diagnostic(
    bot: BotContext,
    service: Service,
    query: DiagnosticQuery,
    args: Mapping[str, str] | None = None,
    thresholds: Sequence[Threshold] | None = None,
) -> DiagnosticResult:
    """Run `query` read-only on the service's own database. Never raises for what a person can fix: a bad
    argument, an unset variable, a missing table, a timeout or an unreachable database is `result.error`."""
    judged = list(query.thresholds if thresholds is None else thresholds)

    def failed(message: str, bound: Mapping[str, object], duration_ms: float = 0.0) -> DiagnosticResult:
        return DiagnosticResult(service, query, bound, [], [], duration_ms, [], message, judged)

    try:
        bound = bind_args(query, args)
    except ArgumentError as exc:
        return failed(exc.message, {})
    dsn = service.diagnostics_dsn
    variable = service.diagnostics.dsn_variable if service.diagnostics else None
    if dsn is None:
        return failed(f"not configured: {service.name} has no diagnostics dsn in the catalog", bound)
    if missing := missing_env(dsn):
        return failed(f"not configured: set {', '.join(missing)}", bound)
    timeout = service.diagnostics.statement_timeout_s if service.diagnostics else 5.0
    statement = sql.SQL(cast(LiteralString, query.sql))
    started = time.perf_counter()
    try:
        result = await read_only_db.fetch_read_only(
            dsn,
            statement,
            bound,
            statement_timeout=timeout,
            application_name=APPLICATION_NAME,
            max_rows=MAX_ROWS,
        )
    except read_only_db.ReadOnlyQueryError as error:
        duration = (time.perf_counter() - started) * 1000
        db = f"{variable}'s database" if variable else "the service's database"
        return failed(_failure_text(error, service, query, db), bound, duration)
    duration = (time.perf_counter() - started) * 1000
    if problem := _shape_problem(service, query, result.columns, judged):
        return failed(problem, bound, duration)
    crossed = evaluate(result.columns, result.rows, judged)
    return DiagnosticResult(
        service, query, bound, result.columns, result.rows, duration, crossed, None, judged
    )
