"""The first wall around a diagnostic's SQL: what `mira-bot check-catalog` and load refuse before anything runs.

The READ ONLY transaction the runner opens (handlers/diagnostics/runner.py) is the second wall; this one makes a
query that could write, interpolate or return an unbounded result fail at load with its catalog path, instead of
at 3 a.m. It reads the statement the way psycopg and Postgres will: string literals (also E'…' and $tag$…$tag$),
quoted identifiers and comments are set aside, and the rules apply to the code that remains:

* one SELECT or WITH statement (a trailing `;` is dropped; any other `;` is a second statement);
* no data-modifying or session keyword (INSERT, UPDATE, DELETE, MERGE, TRUNCATE, CREATE, ALTER, DROP, GRANT, COPY,
  CALL, DO, LOCK, SET, `SELECT … INTO`, …): a column named like one is written quoted ("lock");
* no function known to write, to signal other sessions or to change settings, which READ ONLY does not all refuse
  (`set_config` would lift the statement timeout, `pg_terminate_backend` passes a read-only transaction);
* no `{…}`, `${…}` or `||` (the quoting tricks of string-built SQL), and no `%` that is not a declared `%(name)s`
  placeholder or a literal `%%` (psycopg reads `%` everywhere, string literals included);
* every placeholder declared and every declared parameter used;
* a top-level `LIMIT` at the end: a `limit`/`int` parameter or an integer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)s")
_PERCENT = re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)s|%%|%")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")

#: Statements and clauses that write or change the session. Keywords, so a column must be quoted to use one.
FORBIDDEN_KEYWORDS = frozenset(
    [
        "insert",
        "update",
        "delete",
        "merge",
        "truncate",
        "create",
        "alter",
        "drop",
        "grant",
        "revoke",
        "copy",
        "call",
        "do",
        "lock",
        "set",
        "reset",
        "vacuum",
        "reindex",
        "refresh",
        "into",
        "execute",
        "prepare",
        "deallocate",
        "discard",
        "listen",
        "notify",
        "unlisten",
        "begin",
        "commit",
        "rollback",
        "savepoint",
    ]
)
#: Functions that write, signal other sessions or change settings even inside a SELECT (READ ONLY refuses some,
#: not all: `pg_terminate_backend` and `set_config` pass a read-only transaction).
FORBIDDEN_FUNCTIONS = re.compile(
    r"^(set_config|nextval|setval|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile"
    r"|pg_notify|pg_advisory\w*|pg_try_advisory\w*|dblink\w*|lo_\w+|pg_read_\w*file|pg_ls_\w+|pg_file_\w+"
    r"|pg_stat_reset\w*|pg_switch_wal|pg_create_\w+|pg_drop_\w+|pg_logical_\w+|pg_replication_\w+|query_to_xml\w*"
    r"|table_to_xml\w*|cursor_to_xml\w*|database_to_xml\w*|schema_to_xml\w*)$",
    re.IGNORECASE,
)


# --- scanning ---------------------------------------------------------------------------------------------


def _skip_quoted(text: str, start: int, quote: str) -> int:
    """The index after the literal or identifier opened at `start` (a doubled quote stays inside)."""
    index = start + 1
    while index < len(text):
        if text[index] == quote:
            if index + 1 < len(text) and text[index + 1] == quote:
                index += 2
                continue
            return index + 1
        if quote == "'" and text[index] == "\\" and start > 0 and text[start - 1] in "eE":
            index += 2  # E'…\'…' escapes
            continue
        index += 1
    raise ValueError("sql has an unterminated quote")


def code_and_literals(text: str) -> tuple[str, str]:
    """`text` split into its code (string literals, quoted identifiers and comments blanked to spaces, so words and
    positions survive) and its string literals (everything psycopg would still read `%` in)."""
    code: list[str] = []
    literals: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith("--", index):
            end = text.find("\n", index)
            end = len(text) if end == -1 else end
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end == -1:
                raise ValueError("sql has an unterminated /* comment")
            end += 2
        elif char in "'\"":
            end = _skip_quoted(text, index, char)
            if char == "'":
                literals.append(text[index:end])
        elif char == "$" and (tag := re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text[index:])):
            close = text.find(tag.group(0), index + len(tag.group(0)))
            if close == -1:
                raise ValueError("sql has an unterminated dollar-quoted string")
            end = close + len(tag.group(0))
            literals.append(text[index:end])
        else:
            code.append(char)
            index += 1
            continue
        code.append(" " * (end - index) if char not in "'\"" else " " + "x" * (end - index - 2) + " ")
        index = end
    return "".join(code), "".join(literals)


def _ends_with_limit(code: str, limit_params: set[str]) -> bool:
    """Whether the statement ends with `LIMIT n` or `LIMIT %(p)s` (p a limit/int parameter) at depth 0."""
    match = re.search(r"\blimit\s+(\d+|%\(([A-Za-z_][A-Za-z0-9_]*)\)s)\s*$", code, re.IGNORECASE)
    if not match:
        return False
    head = code[: match.start()]
    if head.count("(") != head.count(")"):
        return False
    return match.group(2) is None or match.group(2) in limit_params


def sql_problem(sql: str, params: Mapping[str, str]) -> str | None:
    """Why `sql` may not run as a diagnostic, or None when it may; `params` maps each declared parameter to its
    type (interval, limit, text, int). See the module docstring for the rules."""
    try:
        code, literals = code_and_literals(sql)
    except ValueError as exc:
        return str(exc)
    code = code.rstrip()
    if code.endswith(";"):
        code = code[:-1].rstrip()
    first = _WORD.search(code)
    if first is None or first.group(0).lower() not in ("select", "with"):
        return "a diagnostic is one SELECT or WITH statement"
    if ";" in code:
        return "sql holds a second statement (`;`): a diagnostic is one statement"
    for trick in ("${", "{", "}", "||"):
        if trick in code:
            return f"sql may not contain `{trick}` (no string-built SQL: bind values as %(name)s parameters)"
    for match in _WORD.finditer(code):
        word = match.group(0).lower()
        if word in FORBIDDEN_KEYWORDS:
            return f"sql contains `{match.group(0).upper()}`: a diagnostic only reads"
        if FORBIDDEN_FUNCTIONS.match(word) and code[match.end() :].lstrip().startswith("("):
            return (
                f"sql calls `{match.group(0)}`, which writes or changes the session: a diagnostic only reads"
            )
    for match in _PERCENT.finditer(literals):
        if match.group(0) != "%%":
            return (
                "a string literal holds `%`: write `%%` for a literal percent sign, and no placeholder there"
            )
    for match in _PERCENT.finditer(code):
        if match.group(0) == "%":
            return "sql holds a bare `%` (write `%%` for the modulo operator; values are %(name)s parameters)"
    used = set(_PLACEHOLDER.findall(code))
    for name in sorted(used - set(params)):
        return f"sql uses %({name})s, which `params` does not declare"
    for name in sorted(set(params) - used):
        return f"params declares `{name}`, which sql never uses as %({name})s"
    limits = {name for name, kind in params.items() if kind in ("limit", "int")}
    if not _ends_with_limit(code, limits):
        return "sql must end with a top-level `LIMIT %(limit)s` (a limit parameter) or `LIMIT <number>`"
    return None
