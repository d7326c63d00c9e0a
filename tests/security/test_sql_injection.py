"""SQL injection: every query that takes user input binds it as a parameter, so hostile strings through every
command argument, button value and modal field are data, never SQL.

Two checks. Statically, no `execute` in bot/, handlers/ or integrations/ is given SQL built from strings at run
time (f-strings, `%`, `str.format`, concatenation); identifiers go through `psycopg.sql`. Dynamically, the
strings of tests/fuzz/strategies.INJECTIONS go through every argument position as the owner of every service
(so they reach the deepest code paths), and the database afterwards has the same tables and columns, the rows
that were there are untouched, and any new row holds the hostile string literally.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
import yaml
from pydantic import SecretStr

from bot.catalog import BUNDLED_CATALOG, Catalog, load_catalog
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from integrations.flag_table import PostgresFlagTable
from stand_ins.recording_supabase import RecordingSupabaseServer
from tests import pd_payloads as pd
from tests.fuzz.strategies import INJECTIONS
from tests.harness import BotUnderTest

ROOT = Path(__file__).resolve().parents[2]
OWNER = "U0OWNER01"
PROJECT = "abcdefghijklmnopqrst"
SUPABASE_TOKEN = "sbp_sql_injection_test"
PD_SECRET = "pd-sql-injection-secret"

#: `execute` calls whose SQL is built at run time on purpose, with why that is safe.
ALLOWED_DYNAMIC_SQL = {
    "bot/embedded.py": "CREATE DATABASE of the module constant EMBEDDED_DATABASE; no input reaches it",
}


def _dynamic_sql(node: ast.expr) -> bool:
    """SQL text assembled from strings at run time (not a literal, not a psycopg.sql composition)."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)  # "…{}".format(…), not sql.SQL("…").format(…)
    )


def test_no_query_is_built_from_strings_at_run_time() -> None:
    found = []
    for package in ("bot", "handlers", "integrations"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany")
                    and node.args
                    and _dynamic_sql(node.args[0])
                    and rel not in ALLOWED_DYNAMIC_SQL
                ):
                    found.append(f"{rel}:{node.lineno}")
    assert found == [], f"SQL built from strings (bind parameters or use psycopg.sql): {found}"


def test_the_static_check_sees_what_it_looks_for() -> None:
    """The control: the detector flags each way of building SQL from strings, and passes the safe ones."""
    flagged = [
        'conn.execute(f"SELECT * FROM t WHERE id = {x}")',
        'conn.execute("SELECT * FROM t WHERE id = %s" % x)',
        'conn.execute("SELECT * FROM t WHERE id = " + x)',
        'conn.execute("SELECT * FROM t WHERE id = {}".format(x))',
    ]
    safe = [
        'conn.execute("SELECT * FROM t WHERE id = %s", (x,))',
        'conn.execute(sql.SQL("SELECT {}").format(i))',
    ]
    for source in flagged:
        call = ast.parse(source).body[0].value  # type: ignore[attr-defined]
        assert _dynamic_sql(call.args[0]), source
    for source in safe:
        call = ast.parse(source).body[0].value  # type: ignore[attr-defined]
        assert not _dynamic_sql(call.args[0]), source


# --- through the running bot ----------------------------------------------------------------------------------


@pytest.fixture
async def supabase() -> AsyncIterator[RecordingSupabaseServer]:
    async with RecordingSupabaseServer(token=SUPABASE_TOKEN) as server:
        yield server


@pytest.fixture
def catalog(tmp_path: Path, database_url: str) -> Catalog:
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for service in data["services"]:
        service["owners"] = {"users": [OWNER], "groups": []}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_catalog(path, env={"IVY_DATABASE_URL": database_url, "MIRA_DATABASE_URL": database_url})


@pytest.fixture
def settings(settings: Settings, supabase: RecordingSupabaseServer) -> Settings:
    return settings.model_copy(
        update={
            "supabase_api_url": supabase.base_url,
            "supabase_access_token": SecretStr(SUPABASE_TOKEN),
            "supabase_project_ref": PROJECT,
            "pagerduty_webhook_secrets": [SecretStr(PD_SECRET)],
        }
    )


def invocations(x: str) -> list[tuple[str, str]]:
    """`x` in every argument position of every command."""
    return [
        ("/health", x),
        ("/latency", x),
        ("/latency", f"mira-copilot {x}"),
        ("/latency", f"ivy-v2 1h {x}"),
        ("/flag", x),
        ("/flag", f"list {x}"),
        ("/flag", f"get {x}"),
        ("/flag", f"get ivy-v2:{x}"),
        ("/flag", f"set {x} 1"),
        ("/flag", f"set AI_BURST_LIMIT {x}"),
        ("/flag", f"set mira-copilot:OPENAI_MODEL {x}"),  # a free-text flag: the string goes all the way
        ("/flag", f"set MIRA_ENABLED_USERS {x}"),
        ("/flag", f"on {x}"),
        ("/flag", f"unset {x}"),
        ("/flag", f"preset {x} emergency"),
        ("/flag", f"preset ivy-v2 {x}"),
        ("/flag", f"revert {x}"),
        ("/flag", f"rollout {x} 10%"),
        ("/flag", f"rollout MIRA_COPILOT_ENABLED {x}"),
        ("/rollback", x),
        ("/oncall", x),
    ]


async def fingerprint(database_url: str) -> tuple[list[tuple[str, str]], dict[str, set[str]]]:
    """(every table and column of the schema, each table's rows as hashes)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        columns = await (
            await conn.execute(
                """SELECT table_name, column_name FROM information_schema.columns
                   WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"""
            )
        ).fetchall()
        rows: dict[str, set[str]] = {}
        for table in sorted({t for t, _ in columns}):
            cursor = await conn.execute(f'SELECT to_jsonb(t)::text FROM "{table}" t')  # noqa: S608 - catalog names
            rows[table] = {hashlib.sha256(r[0].encode()).hexdigest() for r in await cursor.fetchall()}
    return [(str(t), str(c)) for t, c in columns], rows


async def test_injection_strings_through_every_argument_leave_the_database_as_it_was(
    bot: BotUnderTest, database_url: str, supabase: RecordingSupabaseServer
) -> None:
    await PostgresFlagTable(database_url, "feature_flags").ensure_table()
    # Rows that must survive: an applied flag change with its audit, a stored and delivered incident.
    await bot.command("/flag", "set AI_BURST_LIMIT 5", user=OWNER)
    body = pd.body(pd.event("incident.triggered", pd.incident(id="PSQLI01"), event_id="evt-sqli"))
    await bot.client.post("/pagerduty/webhook", content=body, headers=sign_pagerduty_webhook(PD_SECRET, body))
    await bot.runtime.delivery.run_once()
    await bot.settle()
    schema_before, rows_before = await fingerprint(database_url)

    for x in INJECTIONS:
        for command, text in invocations(x):
            response = await bot.command(command, text, user=OWNER)
            assert response.status_code == 200, (command, text)
        for action_id in (
            "incident_ack",
            "incident_postmortem_scheduled",
            "flag_confirm",
            "flag_cancel",
            "health_rerun",
        ):
            assert (await bot.click("C0OPS0001", "1.1", action_id, x, user=OWNER)).status_code == 200
        view = {
            "type": "view_submission",
            "user": {"id": OWNER},
            "team": {"id": "T0CONSOLE"},
            "view": {
                "type": "modal",
                "callback_id": "incident_note_modal",
                "private_metadata": json.dumps({"incident": x, "channel": "C0OPS0001"}),
                "state": {"values": {"text": {"text": {"type": "plain_text_input", "value": x}}}},
            },
        }
        assert (await bot.post_signed(urlencode({"payload": json.dumps(view)}).encode())).status_code == 200
        await bot.settle()

    schema_after, rows_after = await fingerprint(database_url)
    assert schema_after == schema_before  # no table or column dropped, added or altered
    for table, before in rows_before.items():
        missing = before - rows_after[table]
        assert not missing, f"{table}: {len(missing)} existing rows changed or deleted"
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        stored = await (
            await conn.execute(
                "SELECT count(*) FROM flag_changes WHERE changes::text LIKE %s", ("%DROP TABLE%",)
            )
        ).fetchone()
        assert stored is not None and stored[0] > 0  # the hostile text went in, as data
