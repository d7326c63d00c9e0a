"""Demo rows for `/diag`: the tables the catalog's `diagnostics:` queries read, so each runs on something real.

The latency tables are seeded by stand_ins/demo_data.py and stand_ins/demo_events.py; this module adds what the
runbooks' other SQL names (bot/catalog.yaml → diagnostics):
- Mira: `mira_intent_logs`, `mira_conversations`, `mira_query_logs`, and in `mira_events` the columns and events
  of its Issue 2 / Issue 4 / Appendix A queries (action_execution failures, tool_execution_error,
  circuit_breaker_opened, error).
- Ivy: failed requests in `ai_router_events` (the table /latency reads) and `eval_reports`, the nightly eval
  summaries the catalog assumes.
- AI Assistant: `error_type` on `ai_messages` with the last hour's failures, and `knowledge_documents`.
- FA: `batch_runs` (what `run_batch_phase2.py --check-last-run` prints) and `stock_summaries`.

Some rows cross the runbooks' thresholds on purpose, so the console shows a marked row and its next step: an
intent at 0.21 confidence, one action failing 7 times in 10 minutes, a query averaging 3.4 s, Ivy's RAG error
rate over 1% and last night's eval at 76%, AI Assistant timeouts over 1% of the hour's messages, FA's last
batch at 93% success. Every time is relative to the demo database's `now()` (the console's clock, see
stand_ins/demo_events.py), never to this process's, so a transcript reads the same whenever it is played; the
failures are older than 5 minutes, so `/latency SERVICE 5m` still shows a healthy service. pg_stat_statements is
not faked: the demo database does not load it, and `/diag … slow-statements` answers so. Nothing here is used
outside the console.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from stand_ins.demo_diagnostics_rows import (
    AI_ERRORS,
    BATCH_RUNS,
    CONVERSATIONS,
    EVAL_REPORTS,
    INTENTS,
    IVY_FAILURES,
    KNOWLEDGE_DOCUMENTS,
    MIRA_EVENTS,
    QUERY_LOGS,
    STOCK_SUMMARIES,
)

DIAGNOSTICS_COMMENT = (
    "Demo data created by `mira-bot console` (stand_ins/demo_diagnostics.py): synthetic rows so /diag has "
    "something to read. Not real traffic; safe to drop."
)
_LOCK_KEY = 0x4D49524144494147  # "MIRADIAG": one seeder at a time

#: The tables only /diag reads; created when missing, filled when empty.
_NEW_TABLES = {
    "mira_intent_logs": """CREATE TABLE IF NOT EXISTS mira_intent_logs (
        id bigserial PRIMARY KEY, module text NOT NULL, user_message text NOT NULL, detected_intent text,
        confidence real NOT NULL, created_at timestamptz NOT NULL DEFAULT now())""",
    "mira_conversations": """CREATE TABLE IF NOT EXISTS mira_conversations (
        conversation_id text PRIMARY KEY, mode text NOT NULL, advisor_id text NOT NULL, status text NOT NULL,
        created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)""",
    "mira_query_logs": """CREATE TABLE IF NOT EXISTS mira_query_logs (
        id bigserial PRIMARY KEY, query_text text NOT NULL, execution_time_ms integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""",
    "eval_reports": """CREATE TABLE IF NOT EXISTS eval_reports (
        id bigserial PRIMARY KEY, run_at timestamptz NOT NULL, suite text NOT NULL, total integer NOT NULL,
        passed integer NOT NULL, failed integer NOT NULL)""",
    "knowledge_documents": """CREATE TABLE IF NOT EXISTS knowledge_documents (
        document_id text PRIMARY KEY, title text NOT NULL, document_type text NOT NULL, language text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""",
    "batch_runs": """CREATE TABLE IF NOT EXISTS batch_runs (
        batch_id text PRIMARY KEY, started_at timestamptz NOT NULL, finished_at timestamptz,
        total_stocks integer NOT NULL, successful integer NOT NULL, failed integer NOT NULL,
        total_cost numeric(10, 2) NOT NULL)""",
    "stock_summaries": """CREATE TABLE IF NOT EXISTS stock_summaries (
        id bigserial PRIMARY KEY, ticker text NOT NULL, summary_type text NOT NULL, fact_check_status text NOT NULL,
        fact_check_details jsonb, updated_at timestamptz NOT NULL DEFAULT now())""",
}
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS mira_intent_logs_created_at_idx ON mira_intent_logs (created_at)",
    "CREATE INDEX IF NOT EXISTS mira_query_logs_created_at_idx ON mira_query_logs (created_at)",
    # Never used by a /diag query: what `/diag fa-ai-system unused-indexes` finds.
    "CREATE INDEX IF NOT EXISTS stock_summaries_ticker_idx ON stock_summaries (ticker)",
    "CREATE INDEX IF NOT EXISTS stock_summaries_fact_check_idx ON stock_summaries (fact_check_status, updated_at)",
)
#: Columns the runbooks' SQL reads on the latency tables, which /latency's seed does not have.
_NEW_COLUMNS = {
    "mira_events": ("action_type", "module", "error_message", "error_code", "tool_name"),
    "ai_messages": ("error_type",),
}
#: Each table's rows: (INSERT with `now() - make_interval(secs => …)` for every time, the rows).
_INSERTS: dict[str, tuple[str, list[tuple[object, ...]]]] = {
    "mira_intent_logs": (
        "INSERT INTO mira_intent_logs (module, user_message, detected_intent, confidence, created_at) "
        "VALUES (%s, %s, %s, %s, now() - make_interval(secs => %s))",
        INTENTS,
    ),
    "mira_conversations": (
        "INSERT INTO mira_conversations (conversation_id, mode, advisor_id, status, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, now() - make_interval(secs => %s), now() - make_interval(secs => %s))",
        CONVERSATIONS,
    ),
    "mira_query_logs": (
        "INSERT INTO mira_query_logs (query_text, execution_time_ms, created_at) "
        "VALUES (%s, %s, now() - make_interval(secs => %s))",
        QUERY_LOGS,
    ),
    "eval_reports": (
        # Nightly at 02:00: the run `days` before the latest 02:00 of the demo clock.
        "INSERT INTO eval_reports (suite, total, passed, failed, run_at) VALUES (%s, %s, %s, %s, "
        "date_trunc('day', now() - interval '2 hours') + interval '2 hours' - make_interval(days => %s))",
        EVAL_REPORTS,
    ),
    "knowledge_documents": (
        "INSERT INTO knowledge_documents (document_id, title, document_type, language, created_at) "
        "VALUES (%s, %s, %s, %s, now() - make_interval(days => %s))",
        KNOWLEDGE_DOCUMENTS,
    ),
    "batch_runs": (
        # Daily at 02:00 (the runbook's cron), `days` before today's.
        "INSERT INTO batch_runs (batch_id, total_stocks, successful, failed, total_cost, started_at, finished_at) "
        "SELECT %s, %s, %s, %s, %s, start, start + make_interval(mins => %s) FROM (SELECT date_trunc('day', "
        "now() - interval '6 hours') + interval '2 hours' - make_interval(days => %s) AS start) AS run",
        BATCH_RUNS,
    ),
    "stock_summaries": (
        "INSERT INTO stock_summaries (ticker, summary_type, fact_check_status, fact_check_details, updated_at) "
        "VALUES (%s, %s, %s, %s::jsonb, now() - make_interval(secs => %s))",
        STOCK_SUMMARIES,
    ),
}
#: Rows added to the latency tables, tagged so a second start does not add them again.
_EVENT_INSERTS = (
    (
        "SELECT EXISTS (SELECT 1 FROM mira_events WHERE event_type <> 'agent_response')",
        "INSERT INTO mira_events (event_type, success, action_type, module, tool_name, error_code, error_message, "
        "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now() - make_interval(secs => %s))",
        MIRA_EVENTS,
    ),
    (
        "SELECT EXISTS (SELECT 1 FROM ai_router_events WHERE success = false)",
        "INSERT INTO ai_router_events (query_kind, latency_ms, success, created_at) "
        "VALUES (%s, %s, false, now() - make_interval(secs => %s))",
        IVY_FAILURES,
    ),
    (
        "SELECT EXISTS (SELECT 1 FROM ai_messages WHERE error_type IS NOT NULL)",
        "INSERT INTO ai_messages (error_type, created_at) VALUES (%s, now() - make_interval(secs => %s))",
        AI_ERRORS,
    ),
)


async def _insert_once(
    conn: psycopg.AsyncConnection, exists: str | sql.Composed, insert: str, rows: list[tuple[object, ...]]
) -> int:
    """Insert `rows` unless `exists` finds them there already (a second console start on the same database)."""
    found = await (await conn.execute(exists)).fetchone()
    if found and found[0]:
        return 0
    async with conn.cursor() as cursor:
        await cursor.executemany(insert, rows)
    return len(rows)


async def seed_diagnostics(dsn: str) -> int:
    """Create and fill the tables /diag reads, after the latency tables exist (stand_ins/demo.py seeds those
    first); the rows inserted, 0 when they were all there already. `dsn` is the demo services' (its `now()` is
    the console's clock)."""
    inserted = 0
    async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for table, columns in _NEW_COLUMNS.items():
            for column in columns:
                await conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} text").format(
                        sql.Identifier(table), sql.Identifier(column)
                    )
                )
        for table, ddl in _NEW_TABLES.items():
            await conn.execute(ddl)
            await conn.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    sql.Identifier(table), sql.Literal(DIAGNOSTICS_COMMENT)
                )
            )
        for statement in _INDEXES:
            await conn.execute(statement)
        for table, (insert, rows) in _INSERTS.items():
            exists = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
            inserted += await _insert_once(conn, exists, insert, rows)
        for check, insert, rows in _EVENT_INSERTS:
            inserted += await _insert_once(conn, check, insert, rows)
        for table in (*_NEW_TABLES, *_NEW_COLUMNS):
            await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return inserted
