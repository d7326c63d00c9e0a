"""The second wall and the runner on real Postgres: READ ONLY refuses what slipped past load, the statement timeout
cancels a slow query, a missing table or column names the catalog entry to fix, thresholds mark rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.catalog import Catalog, DiagnosticQuery, RunbookSection, Service, Threshold
from handlers.diagnostics import ArgumentError, bind_args, run_diagnostic
from tests.diag_fixtures import create_shop_tables, execute, shop_catalog
from tests.harness import BotUnderTest


@pytest.fixture
def catalog(tmp_path: Path, database_url: str) -> Catalog:
    return shop_catalog(tmp_path, database_url)


@pytest.fixture
def shop(catalog: Catalog) -> Service:
    service = catalog.find("shop")
    assert service is not None
    return service


def _query(service: Service, name: str) -> DiagnosticQuery:
    assert service.diagnostics is not None
    query = service.diagnostics.query(name)
    assert query is not None
    return query


async def _intents(dsn: str, rows: list[tuple[str, str, float, str, timedelta]]) -> None:
    await execute(
        dsn,
        "INSERT INTO intent_logs (user_message, detected_intent, confidence, module, created_at) "
        "VALUES (%s, %s, %s, %s, now() - %s)",
        rows,
    )


async def test_rows_crossing_a_threshold_are_marked_per_row(
    bot: BotUnderTest, shop: Service, database_url: str
) -> None:
    await create_shop_tables(database_url)
    await _intents(
        database_url,
        [
            ("refund please", "billing", 0.25, "chat", timedelta(minutes=5)),
            ("where is it", "tracking", 0.35, "chat", timedelta(minutes=10)),
            ("hello", "greeting", 0.45, "email", timedelta(minutes=15)),
            ("old one", "greeting", 0.1, "chat", timedelta(hours=3)),  # outside the default 1h window
            ("sure thing", "greeting", 0.9, "chat", timedelta(minutes=1)),  # not low-confidence
        ],
    )
    query = _query(shop, "low-confidence")
    result = await run_diagnostic(bot.runtime.bot, shop, query)

    assert result.error is None
    assert result.columns == ["created_at", "user_message", "detected_intent", "confidence"]
    assert [row[1] for row in result.rows] == ["refund please", "where is it", "hello"]
    critical, warn = query.thresholds
    assert result.crossed == [(0, critical), (0, warn), (1, warn)]
    assert result.args == {"window": timedelta(hours=1), "limit": 20, "module": None}
    assert result.duration_ms > 0

    wider = await run_diagnostic(
        bot.runtime.bot, shop, query, {"window": "4h", "module": "chat", "limit": "2"}
    )
    assert [row[1] for row in wider.rows] == ["old one", "refund please"]
    assert wider.args == {"window": timedelta(hours=4), "limit": 2, "module": "chat"}

    # A caller's thresholds replace the catalog's (a scheduled check judging against its own ranges).
    stricter = Threshold(column="confidence", below=0.5, level="warn")
    judged = await run_diagnostic(bot.runtime.bot, shop, query, thresholds=[stricter])
    assert judged.crossed == [(0, stricter), (1, stricter), (2, stricter)]


async def test_a_write_that_slipped_past_load_is_refused_by_the_read_only_transaction(
    bot: BotUnderTest, shop: Service, database_url: str
) -> None:
    await create_shop_tables(database_url)
    # Constructed without validation, as if load had missed it: a data-modifying CTE and a plain DELETE.
    for sql in (
        "WITH made AS (INSERT INTO notes (note) VALUES ('written') RETURNING id) SELECT id FROM made LIMIT 1",
        "DELETE FROM notes RETURNING id",
    ):
        sneaky = DiagnosticQuery.model_construct(
            name="sneaky",
            title="Writes",
            runbook=RunbookSection(section="Appendix A"),
            params={},
            sql=sql,
            columns=[],
            thresholds=[],
            next_step=None,
        )
        result = await run_diagnostic(bot.runtime.bot, shop, sneaky)
        assert result.error is not None and result.error.startswith(
            "refused: the query tried to write, and diagnostics only read (cannot execute "
        )
        assert (
            "in a read-only transaction) — fix services[demo-shop].diagnostics.queries[sneaky].sql"
            in result.error
        )
    assert await execute(database_url, "SELECT count(*) FROM notes") == [(0,)]


async def test_a_volatile_function_that_inserts_passes_load_and_is_refused_by_postgres(
    bot: BotUnderTest, shop: Service, database_url: str
) -> None:
    await create_shop_tables(database_url)
    result = await run_diagnostic(bot.runtime.bot, shop, _query(shop, "stamps"))
    assert result.error == (
        "refused: the query tried to write, and diagnostics only read (cannot execute INSERT in a read-only "
        "transaction) — fix services[demo-shop].diagnostics.queries[stamps].sql in BOT_CATALOG"
    )
    assert await execute(database_url, "SELECT count(*) FROM audit") == [(0,)]


async def test_the_statement_timeout_cancels_a_slow_query(bot: BotUnderTest, shop: Service) -> None:
    result = await run_diagnostic(bot.runtime.bot, shop, _query(shop, "slow"))
    assert result.error == (
        "the query timed out after 1 s (the service's diagnostics.statement_timeout_s): "
        "try a shorter window or a smaller limit"
    )
    assert result.rows == []


async def test_a_missing_table_or_column_names_the_catalog_entry_to_fix(
    bot: BotUnderTest, shop: Service, database_url: str
) -> None:
    await create_shop_tables(database_url)
    table = await run_diagnostic(bot.runtime.bot, shop, _query(shop, "gone-table"))
    assert table.error == (
        "table no_such_table does not exist in SHOP_DATABASE_URL's database — "
        "fix services[demo-shop].diagnostics.queries[gone-table].sql in BOT_CATALOG"
    )
    column = await run_diagnostic(bot.runtime.bot, shop, _query(shop, "gone-column"))
    assert column.error == (
        "column no_such_column does not exist in SHOP_DATABASE_URL's database — "
        "fix services[demo-shop].diagnostics.queries[gone-column].sql in BOT_CATALOG"
    )


async def test_a_declared_column_the_result_lacks_names_the_columns_entry(
    bot: BotUnderTest, shop: Service, database_url: str, tmp_path: Path
) -> None:
    await create_shop_tables(database_url)
    query = _query(shop, "low-confidence")
    renamed = query.model_copy(
        update={"sql": query.sql.replace("detected_intent,", "detected_intent AS intent,")}
    )
    result = await run_diagnostic(bot.runtime.bot, shop, renamed)
    assert result.error == (
        "column detected_intent is not in the result (created_at, user_message, intent, confidence) — "
        "fix services[demo-shop].diagnostics.queries[low-confidence].columns in BOT_CATALOG"
    )


async def test_an_unset_database_variable_is_not_configured(bot: BotUnderTest, tmp_path: Path) -> None:
    unset = shop_catalog(tmp_path, None).find("shop")
    assert unset is not None
    result = await run_diagnostic(bot.runtime.bot, unset, _query(unset, "notes"))
    assert result.error == "not configured: set SHOP_DATABASE_URL"


@pytest.mark.parametrize(
    ("args", "message", "suggestion"),
    [
        ({"window": "2x"}, "window is written like 15m, 2h, 1d or 7d, got `2x`.", None),
        ({"window": "30d"}, "window is at most 7d, got `30d`.", None),
        ({"limit": "500"}, "limit is at most 200, got `500`.", None),
        ({"limit": "0"}, "limit is a positive whole number, got `0`.", None),
        (
            {"modul": "chat"},
            "`low-confidence` has no parameter `modul`; it takes `window`, `limit`, `module`.",
            "module",
        ),
    ],
)
def test_bad_arguments_are_explained(
    shop: Service, args: dict[str, str], message: str, suggestion: str | None
) -> None:
    with pytest.raises(ArgumentError) as raised:
        bind_args(_query(shop, "low-confidence"), args)
    assert (raised.value.message, raised.value.suggestion) == (message, suggestion)
