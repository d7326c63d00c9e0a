"""A small catalog of our own for the /diag tests (not the bundled queries): one service, Demo Shop, whose
diagnostics read tables each test creates in its own schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bot.catalog import Catalog, load_catalog

LOW_CONFIDENCE: dict[str, Any] = {
    "name": "low-confidence",
    "title": "Low-confidence intents in the window",
    "runbook": {"section": "Issue 1: Intent Misclassification"},
    "params": {
        "window": {"type": "interval", "default": "1h", "max": "7d"},
        "limit": {"type": "limit", "default": 20, "max": 200},
        "module": {"type": "text", "optional": True},
    },
    "sql": (
        "SELECT created_at, user_message, detected_intent, confidence\n"
        "FROM intent_logs\n"
        "WHERE created_at > now() - %(window)s AND confidence < 0.5\n"
        "  AND (%(module)s::text IS NULL OR module = %(module)s)\n"
        "ORDER BY confidence\n"
        "LIMIT %(limit)s\n"
    ),
    "columns": [
        {"name": "created_at", "title": "When"},
        {"name": "user_message", "title": "Message"},
        {"name": "detected_intent", "title": "Intent"},
        {"name": "confidence", "title": "Confidence", "format": "{:.2f}"},
    ],
    "thresholds": [
        {"column": "confidence", "below": 0.3, "level": "critical"},
        {"column": "confidence", "below": 0.4, "level": "warn"},
    ],
    "next_step": "latency_breach",
}

QUERIES: list[dict[str, Any]] = [
    LOW_CONFIDENCE,
    {
        "name": "notes",
        "title": "Every note, oldest first",
        "runbook": {"section": "Appendix A: Useful Queries"},
        "params": {"limit": {"type": "limit", "default": 20, "max": 500}},
        "sql": "SELECT id, note FROM notes ORDER BY id LIMIT %(limit)s",
    },
    {
        "name": "slow",
        "title": "A statement slower than the budget",
        "runbook": {"section": "Appendix A: Useful Queries"},
        "sql": "SELECT pg_sleep(30) AS slept LIMIT 1",
    },
    {
        "name": "gone-table",
        "title": "Reads a table the database lacks",
        "runbook": {"section": "Appendix A: Useful Queries"},
        "sql": "SELECT id FROM no_such_table LIMIT 5",
    },
    {
        "name": "gone-column",
        "title": "Reads a column the table lacks",
        "runbook": {"section": "Appendix A: Useful Queries"},
        "sql": "SELECT id, no_such_column FROM notes LIMIT 5",
    },
    {
        # Nothing in the text writes; the function it calls does. Load cannot know, READ ONLY refuses it.
        "name": "stamps",
        "title": "Calls a volatile function that inserts",
        "runbook": {"section": "Appendix A: Useful Queries"},
        "sql": "WITH stamped AS (SELECT stamp_audit() AS id) SELECT id FROM stamped LIMIT 1",
    },
]


def shop_service(queries: list[dict[str, Any]] | None = None, **diagnostics: Any) -> dict[str, Any]:
    return {
        "name": "demo-shop",
        "display_name": "Demo Shop",
        "aliases": ["shop"],
        "escalation": {"levels": [{"name": "Primary on-call", "after_minutes": 0}]},
        "runbooks": [
            {
                "title": "Demo Shop Runbook",
                "file": "demo-shop.md",
                "url": "https://runbooks.example.com/demo-shop.md",
            }
        ],
        "latency": {"dsn": "${SHOP_DATABASE_URL}", "table": "shop_events"},
        "next_steps": {"latency_breach": [{"title": "Restart the shop", "command": "/restart demo-shop"}]},
        "diagnostics": {
            "statement_timeout_s": 1,
            "queries": copy.deepcopy(QUERIES if queries is None else queries),
            **diagnostics,
        },
    }


def write_catalog(path: Path, *services: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"services": list(services) or [shop_service()]}, sort_keys=False))
    return path


def shop_catalog(tmp_path: Path, database_url: str | None) -> Catalog:
    env = {"SHOP_DATABASE_URL": database_url} if database_url else {}
    return load_catalog(write_catalog(tmp_path / "catalog.yaml"), env=env)


SHOP_TABLES = """
CREATE TABLE intent_logs (
    created_at timestamptz NOT NULL, user_message text, detected_intent text, confidence numeric, module text
);
CREATE TABLE notes (id serial PRIMARY KEY, note text);
CREATE TABLE audit (id serial PRIMARY KEY, what text);
CREATE FUNCTION stamp_audit() RETURNS integer LANGUAGE sql VOLATILE
    AS $$ INSERT INTO audit (what) VALUES ('diag was here') RETURNING id $$;
"""


async def create_shop_tables(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(SHOP_TABLES)


async def execute(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
        conn.cursor() as cursor,
    ):
        if isinstance(params, list):
            await cursor.executemany(statement, params)
            return []
        await cursor.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []
