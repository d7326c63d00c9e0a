"""/diag through the real Bolt app: signed command → ack → a read-only query on the test database → what reached
the recording Slack server (the table, its marks and next steps, the CSV in the thread, escaped hostile values),
and the list and usage answers in the ack."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from bot import slack_limits
from bot.catalog import Catalog
from handlers.diagnostics import post_diagnostic, run_diagnostic
from handlers.diagnostics.blocks import BLOCK_ROWS, CELL_CHARS
from tests.diag_fixtures import create_shop_tables, execute, shop_catalog
from tests.harness import CHANNEL, BotUnderTest, blocks_text

HOSTILE = ["<!channel>", "*bold*", "<http://evil.example|click me>", "&amp; <@U0BOSS>", "x" * 5000]


@pytest.fixture
def catalog(tmp_path: Path, database_url: str) -> Catalog:
    return shop_catalog(tmp_path, database_url)


async def _ack(bot: BotUnderTest, text: str) -> str:
    response = await bot.command("/diag", text)
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    return str(body["text"])


async def _answer(bot: BotUnderTest, text: str) -> Any:
    ack = await _ack(bot, text)
    assert ack.startswith("Running `"), ack
    [post] = await bot.slack.wait_for("chat.postMessage", timeout=15)
    return post


def _table(post: Any) -> str:
    [table] = [
        b["text"]["text"] for b in post.blocks if b["type"] == "section" and "```" in b["text"]["text"]
    ]
    return str(table)


async def _intents(dsn: str, rows: list[tuple[str, float, str]]) -> None:
    await execute(
        dsn,
        "INSERT INTO intent_logs (user_message, detected_intent, confidence, module, created_at) "
        "VALUES (%s, 'billing', %s, %s, now() - interval '5 minutes')",
        rows,
    )


async def test_a_crossing_row_is_marked_and_offers_the_next_step(
    bot: BotUnderTest, database_url: str
) -> None:
    await create_shop_tables(database_url)
    await _intents(
        database_url, [("refund please", 0.25, "chat"), ("hmm", 0.35, "chat"), ("ok", 0.45, "email")]
    )

    post = await _answer(bot, "shop low-confidence 2h module=chat")
    assert post.channel == CHANNEL
    assert post.text == "Low-confidence intents in the window — Demo Shop: 2 rows, 2 past a threshold"
    text = blocks_text(post.blocks)
    assert "*Low-confidence intents in the window* · Demo Shop (`/diag demo-shop low-confidence`)" in text
    assert (
        "2 rows · " in text
        and " ms · window 2h · limit 20 · module chat · runbook: "
        "<https://runbooks.example.com/demo-shop.md#issue-1-intent-misclassification|Issue 1: Intent "
        "Misclassification>"
        in text
    )
    lines = _table(post).strip("`").splitlines()
    assert lines[0].split() == ["When", "Message", "Intent", "Confidence"]
    assert lines[1].startswith("🔴 ") and lines[1].endswith("0.25")
    assert lines[2].startswith("🟡 ") and lines[2].endswith("0.35")
    assert "🔴 confidence < 0.3 (critical): 1 row\n🟡 confidence < 0.4 (warn): 2 rows" in text
    [actions] = [block for block in post.blocks if block["type"] == "actions"]
    [button] = actions["elements"]
    assert (button["text"]["text"], button["value"]) == ("Restart the shop", "/restart demo-shop")

    # Nothing crossed: no marks, no next steps.
    bot.slack.reset()
    quiet = await _answer(bot, "shop low-confidence module=email")
    assert quiet.text == "Low-confidence intents in the window — Demo Shop: 1 row"
    assert not any(block["type"] == "actions" for block in quiet.blocks)
    assert "🔴" not in _table(quiet) and "🟡" not in _table(quiet)


async def test_hostile_values_are_escaped_and_clipped(bot: BotUnderTest, database_url: str) -> None:
    await create_shop_tables(database_url)
    await execute(database_url, "INSERT INTO notes (note) VALUES (%s)", [(value,) for value in HOSTILE])

    post = await _answer(bot, "shop notes")
    table = _table(post)
    everything = table + post.text + blocks_text(post.blocks)
    for raw in ("<!channel>", "<http://evil.example", "<@U0BOSS>"):
        assert raw not in everything
    assert "&lt;!channel&gt;" in table and "*bold*" in table
    assert "&lt;http://evil.example|click me&gt;" in table
    assert "&amp;amp; &lt;@U0BOSS&gt;" in table
    assert "x" * CELL_CHARS not in table and "x" * (CELL_CHARS - 1) + "…" in table
    assert all(len(b["text"]["text"]) <= slack_limits.SECTION_TEXT for b in post.blocks if "text" in b)
    await bot.settle()
    assert bot.slack.calls_to("files.completeUploadExternal") == []  # five rows fit the message


async def test_a_result_too_large_for_blocks_goes_to_a_csv_in_the_thread(
    bot: BotUnderTest, database_url: str
) -> None:
    await create_shop_tables(database_url)
    notes = [f"note {n}" for n in range(1, 121)]
    notes[6] = '=HYPERLINK("http://evil.example","open")'
    notes[7] = "-2+3"
    notes[8] = 'says "hi", twice'
    await execute(database_url, "INSERT INTO notes (note) VALUES (%s)", [(note,) for note in notes])

    post = await _answer(bot, "demo-shop notes 150")
    assert post.text == "Every note, oldest first — Demo Shop: 120 rows"
    text = blocks_text(post.blocks)
    assert "120 rows — full result in the CSV in the thread (first 10 shown)" in text
    lines = _table(post).strip("`").splitlines()
    assert len(lines) == 1 + 10 and lines[1].split() == ["1", "note", "1"]

    [complete] = await bot.slack.wait_for("files.completeUploadExternal", timeout=15)
    assert complete.body["channel_id"] == post.response["channel"]
    assert complete.body["thread_ts"] == post.response["ts"]
    [entry] = complete.body["files"]
    assert entry["title"] == "Every note, oldest first (120 rows)"
    [share] = bot.slack.file_shares
    assert (share.thread_ts, share.filename) == (post.response["ts"], "diag-demo-shop-notes.csv")
    rows = list(csv.reader(io.StringIO(bot.slack.uploaded_files[entry["id"]].decode())))
    assert rows[0] == ["id", "note"] and len(rows) == 1 + 120
    assert rows[1] == ["1", "note 1"]
    assert rows[7] == ["7", "'" + notes[6]], "a formula is quoted so a spreadsheet shows it as text"
    assert rows[8] == ["8", "'-2+3"]
    assert rows[9] == ["9", 'says "hi", twice'], "raw values, CSV-escaped"


async def test_more_rows_than_the_table_holds_go_to_the_csv(bot: BotUnderTest, database_url: str) -> None:
    await create_shop_tables(database_url)
    await execute(database_url, "INSERT INTO notes (note) VALUES (%s)", [("n",)] * (BLOCK_ROWS + 1))
    post = await _answer(bot, "shop notes 50")
    assert f"{BLOCK_ROWS + 1} rows — full result in the CSV in the thread" in blocks_text(post.blocks)
    await bot.slack.wait_for("files.completeUploadExternal", timeout=15)


async def test_a_failing_query_is_answered_in_the_channel(bot: BotUnderTest, database_url: str) -> None:
    post = await _answer(bot, "shop gone-table")
    assert (
        "⚠️ table no_such_table does not exist in SHOP_DATABASE_URL's database — "
        "fix services[demo-shop].diagnostics.queries[gone-table].sql in BOT_CATALOG"
    ) in blocks_text(post.blocks)


async def test_the_list_names_every_query_with_its_runbook_section(bot: BotUnderTest) -> None:
    everything = await _ack(bot, "")
    assert everything.startswith(
        "*Demo Shop* (`demo-shop`)\n• `low-confidence` — Low-confidence intents in the window"
    )
    assert (
        "• `notes` — Every note, oldest first (runbook: <https://runbooks.example.com/demo-shop.md#appendix-a-useful-queries|Appendix A: Useful Queries>)"
        in everything
    )
    assert everything.endswith(
        "Run one: `/diag demo-shop low-confidence` · usage: `/diag [SERVICE [NAME [window] [limit] [key=value…]]]`"
    )
    assert await _ack(bot, "SHOP") == everything  # one service here: the same list
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "shpo",
            ":grey_question: I don't know a service called `shpo`. Services with diagnostics: demo-shop.\n"
            "Did you mean `demo-shop`?",
        ),
        (
            "shop low-confidnce",
            ":grey_question: Demo Shop has no query `low-confidnce`. Its queries: low-confidence, notes, slow, "
            "gone-table, gone-column, stamps.\nDid you mean `/diag demo-shop low-confidence`?",
        ),
        (
            "shop low-confidence modul=chat",
            ":grey_question: `low-confidence` has no parameter `modul`; it takes `window`, `limit`, `module`.\n"
            "Did you mean `module=…`?\nUsage: `/diag demo-shop low-confidence [window ≤ 7d, default 1h] "
            "[limit ≤ 200, default 20] [module=…]`",
        ),
        ("shop low-confidence 30d", ":grey_question: window is at most 7d, got `30d`."),
        ("shop low-confidence 500", ":grey_question: limit is at most 200, got `500`."),
        ("shop low-confidence 2h 1h", ":grey_question: Give `window` once, got `2h` and `1h`."),
        ("shop slow 2h", ":grey_question: `slow` takes no window, got `2h`."),
        (
            "shop low-confidence chat",
            ":grey_question: I don't understand `chat`: a window is like 2h, a limit a number. Its filters: "
            "`module=…`.\nUsage: `/diag demo-shop low-confidence [window ≤ 7d, default 1h] [limit ≤ 200, "
            "default 20] [module=…]`",
        ),
    ],
)
async def test_bad_input_gets_the_usage_and_did_you_mean(bot: BotUnderTest, text: str, expected: str) -> None:
    answer = await _ack(bot, text)
    assert answer.startswith(expected), answer
    assert "Usage: `/diag" in answer
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_help_lists_diag(bot: BotUnderTest) -> None:
    response = await bot.command("/help", "")
    assert (
        "`/diag [SERVICE [NAME [window] [limit] [key=value…]]]` — Run a runbook's read-only diagnostic query"
        in (response.json()["text"])
    )


async def test_post_diagnostic_posts_where_it_is_told_with_the_csv_in_that_thread(
    bot: BotUnderTest, database_url: str, catalog: Catalog
) -> None:
    """What a scheduled check calls: the answer in a given thread, the CSV of a large result beside it."""
    await create_shop_tables(database_url)
    await execute(database_url, "INSERT INTO notes (note) VALUES (%s)", [(f"n{n}",) for n in range(30)])
    shop = catalog.find("shop")
    assert shop is not None and shop.diagnostics is not None
    query = shop.diagnostics.query("notes")
    assert query is not None
    result = await run_diagnostic(bot.runtime.bot, shop, query, {"limit": "30"})
    ts = await post_diagnostic(bot.runtime.bot, "C0ALERTS1", "1700000000.000100", result)

    [post] = await bot.slack.wait_for("chat.postMessage", timeout=15)
    assert (post.channel, post.thread_ts, post.response["ts"]) == ("C0ALERTS1", "1700000000.000100", ts)
    [share] = bot.slack.file_shares
    assert (share.channel, share.thread_ts) == ("C0ALERTS1", "1700000000.000100")
