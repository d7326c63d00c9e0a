"""Diagnostics: the runbooks' investigation queries as catalog data, run read-only by `/diag`.

A query is SQL with bound parameters only (a window, a limit, a filter value), the columns to show, the thresholds
that mark a row, and the next step a crossing offers. Nothing from a user is ever pasted into the text: `/diag`
binds the declared parameters, and the statement runs in a READ ONLY transaction with a statement timeout
(handlers/diagnostics/runner.py). That transaction is the second wall; this module is the first: a query that could
write, that interpolates, or that could return an unbounded result never loads (`mira-bot check-catalog` names it).

What load refuses is in bot/catalog/read_only_sql.py; every placeholder must be declared in `params`, and every
declared parameter used.
"""

from __future__ import annotations

import re
import string
from datetime import timedelta
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from bot.catalog.base import _SLUG, _Model
from bot.catalog.next_steps import NextStep, RunbookSection
from bot.catalog.read_only_sql import sql_problem

#: The next_steps lists a query may name with `next_step: KEY` (bot.catalog.next_steps.NextSteps' fields).
NEXT_STEP_KEYS = ("latency_breach", "down", "incident")

_INTERVAL = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_interval(text: str) -> timedelta | None:
    """`15m`, `2h`, `1d`, `7d`, `1w` (also `30s`) as a timedelta; None when it is not one."""
    match = _INTERVAL.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        return None
    return timedelta(seconds=int(match.group(1)) * _INTERVAL_UNITS[match.group(2)])


def interval_text(value: timedelta) -> str:
    """A timedelta the way a user writes it: 1h, 90m, 7d (days, not weeks, as the runbooks count them)."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- the models -----------------------------------------------------------------------------------------------


class QueryParam(_Model):
    """A bound parameter. `interval`: a window the user writes as 15m/2h/1d (bound as a timedelta, at most `max`);
    `limit`: the row count (an int, at most `max`, default 200); `int`: a number filter; `text`: a filter the user
    writes as `key=value`. `optional` parameters without a default are bound as NULL when absent."""

    type: Literal["interval", "limit", "text", "int"]
    default: str | int | None = None
    max: str | int | None = None
    optional: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> QueryParam:
        if self.type == "interval":
            for label, value in (("default", self.default), ("max", self.max)):
                if value is not None and parse_interval(str(value)) is None:
                    raise ValueError(
                        f"an interval's {label} is written like 15m, 2h, 1d or 7d, got {value!r}"
                    )
            longest, default = parse_interval(str(self.max)), parse_interval(str(self.default))
            if self.max is not None and longest and default and default > longest:
                raise ValueError("an interval's default is longer than its max")
        elif self.type in ("limit", "int"):
            for label, value in (("default", self.default), ("max", self.max)):
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                    raise ValueError(f"a {self.type}'s {label} is a positive whole number, got {value!r}")
            if isinstance(self.default, int) and isinstance(self.max, int) and self.default > self.max:
                raise ValueError(f"a {self.type}'s default is larger than its max")
        elif self.max is not None:
            raise ValueError("a text parameter has no max")
        if self.type in ("interval", "limit") and self.default is None:
            raise ValueError(
                f"an {self.type} parameter needs a default"
                if self.type == "interval"
                else "a limit parameter needs a default"
            )
        return self

    @property
    def bound_default(self) -> object:
        """The default as bound: a timedelta for an interval, an int for a limit/int, else the text or None."""
        if self.default is None:
            return None
        if self.type == "interval":
            return parse_interval(str(self.default))
        return self.default

    @property
    def bound_max(self) -> timedelta | int | None:
        if self.type == "interval":
            return parse_interval(str(self.max)) if self.max is not None else timedelta(days=30)
        if self.type == "limit":
            return int(self.max) if self.max is not None else 200
        return int(self.max) if isinstance(self.max, int) else None


class ResultColumn(_Model):
    """A column of the result that Slack shows, in order: `name` as the SQL returns it, `title` as the header
    (default: the name), `format` a Python format spec for the value (`{:.2f}`, `{:%H:%M}`)."""

    name: str = Field(min_length=1)
    title: str | None = None
    format: str | None = None

    @field_validator("format")
    @classmethod
    def _one_field(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(f"format {value!r} is not a format string: {exc}") from None
        if fields != [""]:
            raise ValueError(f"format holds exactly one `{{}}` (like {{:.2f}}), got {value!r}")
        return value

    @property
    def header(self) -> str:
        return self.title or self.name


class Threshold(_Model):
    """A row is marked when its `column` is above `above` or below `below`; `critical` (🔴) or `warn` (🟡)."""

    column: str
    above: float | None = None
    below: float | None = None
    level: Literal["warn", "critical"] = "critical"

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        if self.above is None and self.below is None:
            raise ValueError("a threshold needs `above` or `below`")
        return self

    def crossed_by(self, value: object) -> bool:
        """Whether `value` (a number, or text that reads as one) crosses this threshold; NULL never does."""
        if value is None or isinstance(value, bool):
            return False
        try:
            number = float(value)  # type: ignore[arg-type]  # Decimal, int, float, numeric text
        except (TypeError, ValueError):
            return False
        return (self.above is not None and number > self.above) or (
            self.below is not None and number < self.below
        )

    @property
    def label(self) -> str:
        """`confidence < 0.3`, `cost_per_stock > 0.4`."""
        parts = []
        if self.above is not None:
            parts.append(f"{self.column} > {self.above:g}")
        if self.below is not None:
            parts.append(f"{self.column} < {self.below:g}")
        return " or ".join(parts)


class DiagnosticQuery(_Model):
    """One named query of a service (see the module docstring for what load refuses)."""

    name: str
    title: str = Field(min_length=1, max_length=150)
    runbook: RunbookSection
    params: dict[str, QueryParam] = Field(default_factory=dict)
    sql: str
    columns: list[ResultColumn] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(default_factory=list)
    next_step: str | list[NextStep] | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("expected a lowercase slug like low-confidence")
        return value

    @field_validator("title")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value.strip():
            raise ValueError("a query's title is one line")
        return value.strip()

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, QueryParam]) -> dict[str, QueryParam]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"a parameter name is lowercase letters, digits and _, got {name!r}")
        for kind in ("interval", "limit"):
            if sum(param.type == kind for param in value.values()) > 1:
                raise ValueError(f"a query has at most one {kind} parameter")
        return value

    @field_validator("sql")
    @classmethod
    def _read_only(cls, value: str, info: ValidationInfo) -> str:
        params = info.data.get("params")
        if params is None:
            return value  # params failed on their own: that error is the one to show
        if problem := sql_problem(value, {name: param.type for name, param in params.items()}):
            raise ValueError(problem)
        stripped = value.rstrip()
        return stripped[:-1].rstrip() if stripped.endswith(";") else stripped

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, value: list[ResultColumn]) -> list[ResultColumn]:
        names = [column.name for column in value]
        if len(set(names)) != len(names):
            raise ValueError("column names are unique within a query")
        return value

    @field_validator("thresholds")
    @classmethod
    def _known_columns(cls, value: list[Threshold], info: ValidationInfo) -> list[Threshold]:
        columns = info.data.get("columns")
        if columns:
            names = [column.name for column in columns]
            for threshold in value:
                if threshold.column not in names:
                    raise ValueError(
                        f"threshold column {threshold.column!r} is not among the query's columns ({', '.join(names)})"
                    )
        return value

    @field_validator("next_step")
    @classmethod
    def _known_key(cls, value: str | list[NextStep] | None) -> str | list[NextStep] | None:
        if isinstance(value, str) and value not in NEXT_STEP_KEYS:
            raise ValueError(
                f"next_step is one of {', '.join(NEXT_STEP_KEYS)} or a list of steps, got {value!r}"
            )
        return value

    @property
    def filters(self) -> dict[str, QueryParam]:
        """The parameters a user gives as `key=value` (text and int ones)."""
        return {name: param for name, param in self.params.items() if param.type in ("text", "int")}

    @property
    def window_param(self) -> str | None:
        return next((name for name, param in self.params.items() if param.type == "interval"), None)

    @property
    def limit_param(self) -> str | None:
        return next((name for name, param in self.params.items() if param.type == "limit"), None)


class Diagnostics(_Model):
    """A service's diagnostics: the database they read (`dsn`, default the service's `latency.dsn`), the statement
    timeout (as /latency's), and the queries."""

    dsn: str | None = None
    #: The `${NAME}` the database comes from, for messages that name it but never show the DSN; filled at load.
    dsn_variable: str | None = None
    statement_timeout_s: float = Field(default=5.0, gt=0, le=60)
    queries: list[DiagnosticQuery] = Field(default_factory=list)

    @field_validator("queries")
    @classmethod
    def _unique(cls, value: list[DiagnosticQuery]) -> list[DiagnosticQuery]:
        names = [query.name for query in value]
        if duplicated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"query names are unique within a service: {', '.join(duplicated)} repeats")
        return value

    def query(self, name: str) -> DiagnosticQuery | None:
        wanted = name.strip().lower()
        return next((query for query in self.queries if query.name == wanted), None)

    def names(self) -> list[str]:
        return [query.name for query in self.queries]
