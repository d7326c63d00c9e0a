"""The first wall: a diagnostic that could write, interpolate or run unbounded never loads, and the error names
its catalog path (services[…].diagnostics.queries[…].sql), at load and through `mira-bot check-catalog`."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import CatalogError, load_catalog
from tests.diag_fixtures import LOW_CONFIDENCE, shop_service, write_catalog

SQL_PATH = "services[demo-shop].diagnostics.queries[probe].sql"


def _probe(sql: str, **extra: Any) -> dict[str, Any]:
    return {"name": "probe", "title": "A probe", "runbook": {"section": "Appendix A"}, "sql": sql, **extra}


def _load(tmp_path: Path, *queries: dict[str, Any], env: dict[str, str] | None = None, **service: Any) -> Any:
    return load_catalog(
        write_catalog(tmp_path / "catalog.yaml", {**shop_service(list(queries)), **service}), env=env or {}
    )


def _refusal(tmp_path: Path, *queries: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(CatalogError) as raised:
        _load(tmp_path, *queries, **kwargs)
    return str(raised.value)


@pytest.mark.parametrize(
    ("sql", "params", "why"),
    [
        ("DELETE FROM notes WHERE id = 1", {}, "a diagnostic is one SELECT or WITH statement"),
        ("UPDATE notes SET note = 'x' LIMIT 1", {}, "a diagnostic is one SELECT or WITH statement"),
        (
            "WITH gone AS (DELETE FROM notes RETURNING id) SELECT id FROM gone LIMIT 1",
            {},
            "sql contains `DELETE`: a diagnostic only reads",
        ),
        (
            "WITH made AS (INSERT INTO notes (note) VALUES ('x') RETURNING id) SELECT id FROM made LIMIT 1",
            {},
            "sql contains `INSERT`: a diagnostic only reads",
        ),
        ("SELECT id INTO copied FROM notes LIMIT 1", {}, "sql contains `INTO`: a diagnostic only reads"),
        ("SELECT id FROM notes FOR UPDATE LIMIT 1", {}, "sql contains `UPDATE`: a diagnostic only reads"),
        ("SELECT id FROM notes LIMIT 1; DROP TABLE notes", {}, "sql holds a second statement (`;`)"),
        ("SELECT id FROM notes WHERE id = {id} LIMIT 1", {}, "sql may not contain `{`"),
        ("SELECT id FROM ${NOTES_TABLE} LIMIT 1", {}, "sql may not contain `${`"),
        ("SELECT id FROM notes WHERE id = %s LIMIT 1", {}, "sql holds a bare `%`"),
        ("SELECT id FROM notes WHERE note LIKE 'a%' LIMIT 1", {}, "a string literal holds `%`"),
        (
            "SELECT id FROM notes WHERE note = 'a' || %(word)s LIMIT 1",
            {"word": {"type": "text"}},
            "sql may not contain `||`",
        ),
        (
            "SELECT set_config('statement_timeout', '0', false) LIMIT 1",
            {},
            "sql calls `set_config`, which writes or changes the session",
        ),
        ("SELECT pg_terminate_backend(42) LIMIT 1", {}, "sql calls `pg_terminate_backend`"),
        ("SELECT id FROM notes", {}, "sql must end with a top-level `LIMIT"),
        ("SELECT id FROM (SELECT id FROM notes LIMIT 5) AS few", {}, "sql must end with a top-level `LIMIT"),
        (
            "SELECT id FROM notes LIMIT %(rows)s",
            {"rows": {"type": "text"}},
            "sql must end with a top-level `LIMIT",
        ),
        ("SELECT id FROM notes WHERE note = %(module)s LIMIT 1", {}, "sql uses %(module)s, which `params`"),
        (
            "SELECT id FROM notes LIMIT 1",
            {"module": {"type": "text", "optional": True}},
            "params declares `module`, which sql never uses as %(module)s",
        ),
        ("SELECT 'open quote FROM notes LIMIT 1", {}, "sql has an unterminated quote"),
    ],
)
def test_a_query_that_could_write_or_interpolate_is_refused_at_load_with_its_path(
    tmp_path: Path, sql: str, params: dict[str, Any], why: str
) -> None:
    message = _refusal(tmp_path, _probe(sql, params=params))
    assert message.startswith(f"{tmp_path / 'catalog.yaml'}: {SQL_PATH}: {why}"), message


def test_a_set_variable_is_not_substituted_into_sql(tmp_path: Path) -> None:
    message = _refusal(
        tmp_path, _probe("SELECT id FROM ${NOTES_TABLE} LIMIT 1"), env={"NOTES_TABLE": "notes"}
    )
    assert f"{SQL_PATH}: sql may not contain `${{`" in message


@pytest.mark.parametrize(
    "sql",
    [
        # Keywords, `;`, `{`, `||` and `%%` inside literals, quoted identifiers and comments are data, not code.
        "SELECT id, note FROM notes WHERE note <> 'please delete; then drop {it} || %%' LIMIT 5",
        'SELECT "update", "lock" FROM notes LIMIT 5',
        "SELECT id FROM notes -- update this later; insert more\nLIMIT 5",
        "SELECT id FROM notes /* DELETE; */ WHERE id %% 2 = 0 LIMIT 5",
        "SELECT $body$ DROP TABLE x; $body$ AS quoted LIMIT 1",
        "  select id from notes limit 3;  ",
    ],
)
def test_read_only_sql_loads(tmp_path: Path, sql: str) -> None:
    catalog = _load(tmp_path, _probe(sql))
    query = catalog.find("shop").diagnostics.query("probe")
    assert query is not None and not query.sql.endswith(";")


def test_the_contract_query_loads_with_its_parameters_bound_as_declared(tmp_path: Path) -> None:
    catalog = _load(tmp_path, LOW_CONFIDENCE, env={"SHOP_DATABASE_URL": "postgresql://db.example/shop"})
    service = catalog.find("demo-shop")
    assert service.diagnostics is not None and service.diagnostics.names() == ["low-confidence"]
    query = service.diagnostics.query("low-confidence")
    assert query is not None
    assert (query.window_param, query.limit_param, list(query.filters)) == ("window", "limit", ["module"])
    assert query.params["window"].bound_default == timedelta(hours=1)
    assert query.params["window"].bound_max == timedelta(days=7)
    assert service.diagnostics_dsn == "postgresql://db.example/shop"
    assert service.diagnostics.dsn_variable == "SHOP_DATABASE_URL"
    assert [step.command for step in service.diagnostic_steps("low-confidence")] == ["/restart demo-shop"]


@pytest.mark.parametrize(
    ("change", "where", "why"),
    [
        (
            {"thresholds": [{"column": "confidnce", "below": 0.3}]},
            "thresholds",
            "threshold column 'confidnce' is not among the query's columns",
        ),
        ({"thresholds": [{"column": "confidence"}]}, "thresholds[0]", "a threshold needs `above` or `below`"),
        ({"next_step": "rollback"}, "next_step", "next_step is one of latency_breach, down, incident"),
        ({"columns": [{"name": "a"}, {"name": "a"}]}, "columns", "column names are unique within a query"),
        (
            {"columns": [{"name": "a", "format": "{:.2f} {}"}]},
            "columns[a].format",
            "format holds exactly one",
        ),
        ({"name": "Low Confidence"}, "name", "expected a lowercase slug"),
        (
            {"params": {**LOW_CONFIDENCE["params"], "window": {"type": "interval", "default": "an hour"}}},
            "params.window",
            "an interval's default is written like 15m, 2h, 1d or 7d",
        ),
        (
            {"params": {**LOW_CONFIDENCE["params"], "limit": {"type": "limit", "default": 500, "max": 200}}},
            "params.limit",
            "a limit's default is larger than its max",
        ),
    ],
)
def test_columns_thresholds_params_and_next_steps_are_checked_with_their_path(
    tmp_path: Path, change: dict[str, Any], where: str, why: str
) -> None:
    query = {**copy.deepcopy(LOW_CONFIDENCE), **change}
    message = _refusal(tmp_path, query)
    name = query["name"] if query["name"] == LOW_CONFIDENCE["name"] else "Low Confidence"
    assert f"services[demo-shop].diagnostics.queries[{name}].{where}: {why}" in message, message


def test_a_next_step_list_the_service_leaves_empty_is_refused(tmp_path: Path) -> None:
    message = _refusal(tmp_path, {**LOW_CONFIDENCE, "next_step": "down"})
    assert (
        "services[demo-shop]: diagnostics.queries[low-confidence].next_step names next_steps.down, "
        "which the service leaves empty"
    ) in message


def test_query_names_are_unique_and_a_database_is_required(tmp_path: Path) -> None:
    message = _refusal(tmp_path, LOW_CONFIDENCE, LOW_CONFIDENCE)
    assert "services[demo-shop].diagnostics.queries: query names are unique within a service" in message
    message = _refusal(tmp_path, LOW_CONFIDENCE, latency=None)
    assert "diagnostics.dsn is unset and the service has no latency.dsn to default to" in message


def test_check_catalog_reports_the_refusal(tmp_path: Path) -> None:
    path = write_catalog(
        tmp_path / "catalog.yaml",
        shop_service([_probe("WITH gone AS (DELETE FROM notes RETURNING id) SELECT id FROM gone LIMIT 1")]),
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check-catalog"],
        env={"BOT_CATALOG": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode != 0
    assert f"{SQL_PATH}: sql contains `DELETE`: a diagnostic only reads" in result.stderr


def test_a_next_step_may_run_a_diagnostic_that_exists(tmp_path: Path) -> None:
    """`/diag SERVICE NAME` is a step like `/latency` (read-only: the button only shows more evidence)."""
    steps = {"down": [{"title": "Recent errors", "command": "/diag shop low-confidence"}]}
    catalog = _load(tmp_path, LOW_CONFIDENCE, next_steps={**shop_service()["next_steps"], **steps})
    assert catalog.find("shop").next_steps.down[0].command == "/diag shop low-confidence"
    steps = {"down": [{"title": "Recent errors", "command": "/diag shop low-confidnce"}]}
    message = _refusal(tmp_path, LOW_CONFIDENCE, next_steps={**shop_service()["next_steps"], **steps})
    assert (
        "next step `/diag shop low-confidnce` names unknown diagnostic low-confidnce of demo-shop" in message
    )
