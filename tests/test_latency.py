"""/latency end to end: signed request → ack → a read-only query on the real test database → what reached the
Slack API (the answer, and the chart or sparkline in its thread). Plus the pure parts: parse and the verdicts at
their boundaries, with the bundled catalog's objectives."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bot.catalog import Catalog, Objective, load_catalog
from bot.commands import UsageError
from handlers.latency import command as latency
from handlers.latency.blocks import format_ms
from handlers.latency.command import COMMAND, parse
from handlers.latency.slo import Level, judge, verdicts
from integrations.charts import SPARK_LEVELS, sparkline
from integrations.metrics_db import LatencyStats
from stand_ins.demo_data import seed_demo_mira_events
from tests.harness import CHANNEL, BotUnderTest, blocks_text, closed_port, finishes

SECRET = "hunter2-Sup3rS3cret"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
USAGE = "Usage: `/latency [service] [5m|1h|24h|7d] [kind]`"

# The Mira runbook's Issue 3 query, as an on-call would type it.
RUNBOOK_QUERY = """
SELECT
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY latency_ms) as p50,
  PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY latency_ms) as p95,
  PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY latency_ms) as p99
FROM mira_events
WHERE event_type = 'agent_response'
  AND created_at >= NOW() - INTERVAL '5 minutes';
"""


@pytest.fixture
def catalog_env(database_url: str) -> dict[str, str]:
    """Every service's latency source points at the test database (each test creates the tables it needs)."""
    return {
        "MIRA_DATABASE_URL": database_url,
        "IVY_DATABASE_URL": database_url,
        "AI_ASSISTANT_DATABASE_URL": database_url,
        "FA_DATABASE_URL": database_url,
    }


@pytest.fixture
async def latency_bot(bot: BotUnderTest) -> AsyncIterator[BotUnderTest]:
    """The running bot with /latency registered (the registry is read per request)."""
    bot.runtime.registry.commands["/latency"] = COMMAND
    yield bot


async def _execute(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def _table(dsn: str, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    """Create `table` and insert `rows`, the last value of each being its age (an interval before now)."""
    names = [part.split()[0] for part in columns.split(",")]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"CREATE TABLE {table} ({columns}, created_at timestamptz NOT NULL)")
        values = ", ".join(["%s"] * len(names))
        async with conn.cursor() as cursor:
            await cursor.executemany(
                f"INSERT INTO {table} ({', '.join(names)}, created_at) VALUES ({values}, now() - %s)", rows
            )


async def _mira_events(dsn: str, rows: list[tuple[str, int | None, bool, timedelta]]) -> None:
    await _table(dsn, "mira_events", "event_type text, latency_ms integer, success boolean", rows)


def _ago(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


async def _answer(bot: BotUnderTest, text: str, expected_ack: str | None = None) -> Any:
    response = await bot.command("/latency", text)
    assert response.status_code == 200
    if expected_ack is not None:
        assert response.json() == {"text": expected_ack, "response_type": "ephemeral"}
    [post] = await bot.slack.wait_for("chat.postMessage", timeout=15)
    return post


# --- end to end -----------------------------------------------------------------------------------------------


async def test_latency_answers_the_runbook_percentiles_with_verdicts_and_a_chart_in_the_thread(
    latency_bot: BotUnderTest, database_url: str
) -> None:
    # 100 agent responses in the last 5 minutes at 40, 80, … 4000 ms, 5 of them failed; noise around them.
    rows = [("agent_response", 40 * i, i % 20 != 0, _ago(i * 2.5)) for i in range(1, 101)]
    rows += [("agent_response", 60_000, True, _ago(600))] * 10  # before the window
    rows += [("action_execution", 90_000, False, _ago(30))] * 10  # another event type
    await _mira_events(database_url, rows)

    post = await _answer(latency_bot, "mira-copilot 5m", "Measuring Mira Co-Pilot latency over 5m…")
    [(p50, p95, p99)] = await _execute(database_url, RUNBOOK_QUERY)
    # math.isclose, not pytest.approx: the chart is being drawn in a worker thread that may be importing numpy,
    # and approx looks numpy up in sys.modules.
    assert all(math.isclose(a, b) for a, b in zip((p50, p95, p99), (2020.0, 3802.0, 3960.4), strict=True))

    assert post.channel == CHANNEL
    assert post.text == (
        "Mira Co-Pilot latency, last 5m: BREACH (p95 3.80 s vs ≤ 3 s) — "
        "p50 2.02 s, p95 3.80 s, p99 3.96 s, 100 events, 5.0 % errors"
    )
    text = blocks_text(post.blocks)
    assert ":red_circle: *Mira Co-Pilot latency — last 5m*: over its SLOs" in text
    for name, value in (("p50", p50), ("p95", p95), ("p99", p99)):
        assert f"*{name}*" in text and format_ms(value) in text
    assert ":red_circle: *p95* BREACH\n3.80 s\nSLO ≤ 3 s, warn from 2.4 s" in text
    assert "*events*\n100" in text and "*error rate*\n5.0 %" in text
    assert "`mira_events` where event_type = agent_response" in text
    assert "Mira Co-Pilot Production Runbook (Issue 3 High Latency: response times > 3 seconds)" in text

    [complete] = await latency_bot.slack.wait_for("files.completeUploadExternal", timeout=15)
    assert complete.body["channel_id"] == post.response["channel"]
    assert complete.body["thread_ts"] == post.response["ts"]
    [entry] = complete.body["files"]
    assert entry["title"] == "Mira Co-Pilot latency, last 5m (20 s buckets)"
    assert latency_bot.slack.uploaded_files[entry["id"]].startswith(PNG_SIGNATURE)
    [share] = latency_bot.slack.file_shares
    assert (share.channel, share.thread_ts, share.filename) == (
        post.response["channel"],
        post.response["ts"],
        "latency-mira-copilot-5m.png",
    )
    await latency_bot.settle()
    assert len(latency_bot.slack.calls_to("chat.postMessage")) == 1, "no sparkline when the chart is there"


async def test_when_the_upload_fails_the_thread_gets_a_sparkline(
    latency_bot: BotUnderTest, database_url: str
) -> None:
    rows = [("agent_response", 500 + 100 * (i // 10), True, _ago(3600 - i * 30)) for i in range(100)]
    await _mira_events(database_url, rows)
    latency_bot.slack.fail_next("files.getUploadURLExternal", status=200, error="not_allowed")

    await latency_bot.command("/latency", "mira 1h")
    first, reply = await latency_bot.slack.wait_for("chat.postMessage", count=2, timeout=15)
    assert first.thread_ts is None
    assert reply.channel == first.response["channel"]
    assert reply.thread_ts == first.response["ts"]
    assert reply.text.startswith("p95 trend, last 1h (12 × 5 min): `")
    spark = re.search(r"`([^`]*)`", reply.text)
    assert spark is not None and len(spark.group(1)) == 12
    assert set(spark.group(1)) <= set(SPARK_LEVELS) | {" "}
    assert spark.group(1).rstrip()[-1] == "█", "latency rises through the hour"
    assert "→" in reply.text and "peak" in reply.text
    await latency_bot.settle()
    assert latency_bot.slack.calls_to("files.completeUploadExternal") == []


async def test_ivy_rag_is_judged_against_the_rag_slos(latency_bot: BotUnderTest, database_url: str) -> None:
    """RAG P95 ≤ 2.2 s: exactly 2.2 s is not a breach (≤), but it is past 80 % of it (WARN). Conversational
    traffic, much slower, is not mixed in."""
    rows = [("rag", 2200, True, _ago(10 + i)) for i in range(50)]
    rows += [("conversational", 9000, i % 2 == 0, _ago(10 + i)) for i in range(50)]
    await _table(
        database_url, "ai_router_events", "query_kind text, latency_ms integer, success boolean", rows
    )

    post = await _answer(latency_bot, "ivy 5m rag", "Measuring Ivy v2 latency (rag) over 5m…")
    assert post.text == (
        "Ivy v2 latency (rag), last 5m: WARN (p95 2.20 s vs ≤ 2.2 s) — "
        "p50 2.20 s, p95 2.20 s, p99 2.20 s, 50 events, 0.00 % errors"
    )
    text = blocks_text(post.blocks)
    assert ":large_yellow_circle: *p95* WARN\n2.20 s\nSLO ≤ 2.2 s, warn from 1.76 s" in text
    assert ":large_green_circle: *p99* OK\n2.20 s\nSLO ≤ 4 s, warn from 3.2 s" in text
    assert ":large_green_circle: *error rate* OK\n0.00 %\nSLO < 1 %, warn from 0.8 %" in text
    assert "1.5 s" not in text, "the conversational SLOs do not apply to rag"
    assert "`ai_router_events` where query_kind = rag" in text


async def test_ivy_without_a_kind_measures_conversational_and_says_so(
    latency_bot: BotUnderTest, database_url: str
) -> None:
    rows = [("conversational", 1600, True, _ago(10 + i)) for i in range(20)]
    rows += [("rag", 100, True, _ago(10 + i)) for i in range(20)]
    await _table(
        database_url, "ai_router_events", "query_kind text, latency_ms integer, success boolean", rows
    )
    post = await _answer(latency_bot, "ivy-v2", "Measuring Ivy v2 latency (conversational) over 5m…")
    assert post.text.startswith("Ivy v2 latency (conversational), last 5m: BREACH (p95 1.60 s vs ≤ 1.5 s)")
    assert "other kinds: `/latency ivy-v2 5m rag`" in blocks_text(post.blocks)


async def test_ai_assistant_warning_band(latency_bot: BotUnderTest, database_url: str) -> None:
    """Response Time <5s normal, 5-10s warning, >10s critical; its source records no success column."""
    rows = [(7000 + i, _ago(5 + i)) for i in range(40)]
    await _table(database_url, "ai_messages", "response_time_ms integer", rows)
    post = await _answer(latency_bot, "assistant", "Measuring AI Assistant latency over 5m…")
    assert post.text.startswith("AI Assistant latency, last 5m: WARN (p95 7.04 s vs ≤ 10 s)")
    text = blocks_text(post.blocks)
    assert ":large_yellow_circle: *p95* WARN\n7.04 s\nwarn 5 s–10 s, breach above 10 s" in text
    assert (
        ":white_circle: *error rate* no data\nnot recorded (the latency source has no success column)" in text
    )


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("ivy 2h", ["window must be one of 5m, 1h, 24h, 7d, got `2h`.", "Did you mean `1h`?"]),
        ("mira 1d", ["window must be one of 5m, 1h, 24h, 7d", "Did you mean `24h`?"]),
        ("mira-copilt", ["I don't know a service called `mira-copilt`", "Did you mean `mira-copilot`?"]),
        (
            "ivy 5m rga",
            ["kind must be one of conversational, rag, all for Ivy v2, got `rga`.", "Did you mean `rag`?"],
        ),
        ("fa 5m rag", ["it is not a service, and FA AI System has no query kinds"]),
        ("mira ivy", ["`/latency` measures one service at a time."]),
        ("mira 5m 1h", ["Give one window, got `5m` and `1h`."]),
    ],
)
async def test_bad_input_gets_usage_and_did_you_mean_and_nothing_is_posted(
    latency_bot: BotUnderTest, text: str, fragments: list[str]
) -> None:
    response = await latency_bot.command("/latency", text)
    assert response.status_code == 200
    reply = response.json()
    assert reply["response_type"] == "ephemeral"
    for fragment in fragments:
        assert fragment in reply["text"]
    assert USAGE in reply["text"]
    await latency_bot.settle()
    assert latency_bot.slack.calls_to("chat.postMessage") == []
    assert latency_bot.slack.calls_to("files.getUploadURLExternal") == []


async def test_help_shows_the_usage(latency_bot: BotUnderTest) -> None:
    response = await latency_bot.command("/latency", "help")
    assert (
        response.json()["text"]
        == "`/latency [service] [5m|1h|24h|7d] [kind]` — p50/p95/p99 against the service's SLOs"
    )


def _with_mira_source(catalog: Catalog, **changes: Any) -> Catalog:
    """The bundled catalog with Mira's latency source changed, as an operator's BOT_CATALOG copy would."""
    services = []
    for service in catalog.services:
        if service.name == "mira-copilot":
            assert service.latency is not None
            service = service.model_copy(update={"latency": service.latency.model_copy(update=changes)})
        services.append(service)
    return catalog.model_copy(update={"services": services})


async def test_a_timeout_is_answered_in_words(
    latency_bot: BotUnderTest, database_url: str, catalog: Catalog
) -> None:
    await _mira_events(database_url, [("agent_response", 100, True, _ago(5))])
    await _execute(
        database_url,
        "CREATE VIEW slow_events AS SELECT e.* FROM mira_events e CROSS JOIN (SELECT pg_sleep(10)) s",
    )
    latency_bot.runtime.bot.catalog = _with_mira_source(catalog, table="slow_events", statement_timeout_s=0.5)
    post = await finishes(
        _answer(latency_bot, "mira", "Measuring Mira Co-Pilot latency over 5m…"),
        within=9,
        what="the 0.5 s query",
    )  # the view sleeps 10 s: only the statement timeout can answer before that
    assert post.text == (
        ":warning: Mira Co-Pilot latency over 5m: the query timed out after 0.5 s. On a large `slow_events` this "
        "usually means the index README → /latency describes is missing."
    )
    await latency_bot.settle()
    assert latency_bot.slack.calls_to("files.getUploadURLExternal") == []


async def test_a_missing_table_and_an_unreachable_database_are_one_line_without_the_dsn(
    latency_bot: BotUnderTest, catalog: Catalog
) -> None:
    post = await _answer(latency_bot, "fa")
    assert post.text == ':warning: FA AI System latency over 5m: relation "query_events" does not exist.'

    unreachable = f"postgresql://postgres:{SECRET}@127.0.0.1:{closed_port()}/mira"
    latency_bot.runtime.bot.catalog = _with_mira_source(catalog, dsn=unreachable)
    await latency_bot.command("/latency", "mira")
    _, post = await latency_bot.slack.wait_for("chat.postMessage", count=2, timeout=15)
    assert (
        post.text == ":warning: Mira Co-Pilot latency over 5m: cannot reach the database: connection refused."
    )
    await latency_bot.settle()
    assert all(SECRET not in str(call.body) for call in latency_bot.slack.calls)


async def test_an_unset_database_url_is_not_configured(latency_bot: BotUnderTest) -> None:
    latency_bot.runtime.bot.catalog = load_catalog(env={})
    response = await latency_bot.command("/latency", "mira-copilot 5m")
    assert response.json() == {
        "text": ":white_circle: Mira Co-Pilot latency is not configured (set MIRA_DATABASE_URL).",
        "response_type": "ephemeral",
    }
    await latency_bot.settle()
    assert latency_bot.slack.calls_to("chat.postMessage") == []
    assert latency_bot.slack.calls_to("response_url") == []


async def test_no_events_in_the_window_says_so_without_a_chart(
    latency_bot: BotUnderTest, database_url: str
) -> None:
    await _mira_events(database_url, [("agent_response", 100, True, _ago(3600))])
    post = await _answer(latency_bot, "")
    assert post.text == "Mira Co-Pilot latency, last 5m: no data — no events in the window"
    assert "No events in `mira_events` where event_type = agent_response in the last 5m." in blocks_text(
        post.blocks
    )
    await latency_bot.settle()
    assert latency_bot.slack.calls_to("files.getUploadURLExternal") == []
    assert len(latency_bot.slack.calls_to("chat.postMessage")) == 1


async def test_the_console_demo_table_shows_the_slowdown(
    latency_bot: BotUnderTest, database_url: str
) -> None:
    await seed_demo_mira_events(database_url)
    post = await _answer(latency_bot, "1h")
    assert post.text.startswith("Mira Co-Pilot latency, last 1h: BREACH (p95 ")
    [complete] = await latency_bot.slack.wait_for("files.completeUploadExternal", timeout=15)
    assert complete.body["thread_ts"] == post.response["ts"]


# --- parse (pure) ---------------------------------------------------------------------------------------------


@pytest.fixture
def bundled() -> Catalog:
    return load_catalog(env={"MIRA_DATABASE_URL": "postgresql://x/y", "IVY_DATABASE_URL": "postgresql://x/y"})


@pytest.mark.parametrize(
    ("text", "service", "window", "kind"),
    [
        ("", "mira-copilot", "5m", None),
        ("1h", "mira-copilot", "1h", None),
        ("mira 24H", "mira-copilot", "24h", None),
        ("7d copilot", "mira-copilot", "7d", None),
        ("ivy", "ivy-v2", "5m", "conversational"),
        ("ivy2 rag 1h", "ivy-v2", "1h", "rag"),
        ("RAG ivy-v2", "ivy-v2", "5m", "rag"),
        ("ivy all", "ivy-v2", "5m", None),
        ("fa 7d", "fa-ai-system", "7d", None),
    ],
)
def test_parse(bundled: Catalog, text: str, service: str, window: str, kind: str | None) -> None:
    request = parse(text, bundled)
    assert (request.service.name, request.window, request.kind) == (service, window, kind)


def test_parse_rejects_too_many_words_and_a_service_without_a_source(bundled: Catalog) -> None:
    with pytest.raises(UsageError, match="at most"):
        parse("ivy 5m rag extra", bundled)
    services = [
        s.model_copy(update={"latency": None}) if s.name == "fa-ai-system" else s for s in bundled.services
    ]
    with pytest.raises(UsageError, match="FA AI System has no latency source") as raised:
        parse("fa", bundled.model_copy(update={"services": services}))
    assert "mira-copilot, ivy-v2, ai-assistant" in raised.value.message


def test_acknowledge_names_the_kind_and_the_missing_variable(bundled: Catalog) -> None:
    assert (
        latency.acknowledge(parse("ivy 1h rag", bundled), bundled)
        == "Measuring Ivy v2 latency (rag) over 1h…"
    )
    assert (
        latency.acknowledge(parse("ivy all", bundled), bundled)
        == "Measuring Ivy v2 latency (all kinds) over 5m…"
    )
    assert latency.acknowledge(parse("fa", bundled), bundled) == (
        ":white_circle: FA AI System latency is not configured (set FA_DATABASE_URL)."
    )


def test_the_registration_matches_the_manifest_entry() -> None:
    assert COMMAND.usage_hint == "[service] [5m|1h|24h|7d] [kind]"
    assert len(COMMAND.description) <= 100
    assert COMMAND.available


# --- verdicts (pure) ------------------------------------------------------------------------------------------


def _stats(
    p50: float | None = None,
    p95: float | None = None,
    p99: float | None = None,
    error_rate: float | None = None,
) -> LatencyStats:
    now = datetime.now(UTC)
    return LatencyStats(
        p50=p50,
        p95=p95,
        p99=p99,
        count=1 if p95 is not None else 0,
        error_rate=error_rate,
        errors_recorded=error_rate is not None,
        since=now - timedelta(minutes=5),
        until=now,
        stride=timedelta(seconds=20),
        series=(),
    )


def _objectives(catalog: Catalog, service: str) -> list[Objective]:
    found = catalog.find(service)
    assert found is not None
    return found.objectives


@pytest.mark.parametrize(
    ("service", "kind", "metric", "value", "level"),
    [
        # Ivy RAG: P95 ≤ 2.2 s, P99 ≤ 4 s ("≤": the limit itself is within), WARN from 80 %.
        ("ivy-v2", "rag", "p95", 1759, Level.OK),
        ("ivy-v2", "rag", "p95", 1760, Level.WARN),
        ("ivy-v2", "rag", "p95", 2200, Level.WARN),
        ("ivy-v2", "rag", "p95", 2200.01, Level.BREACH),
        ("ivy-v2", "rag", "p99", 4000, Level.WARN),
        ("ivy-v2", "rag", "p99", 4001, Level.BREACH),
        # Ivy conversational: P95 ≤ 1.5 s, P99 ≤ 3 s.
        ("ivy-v2", "conversational", "p95", 1500, Level.WARN),
        ("ivy-v2", "conversational", "p95", 1501, Level.BREACH),
        ("ivy-v2", "conversational", "p99", 3000, Level.WARN),
        ("ivy-v2", "conversational", "p99", 3000.5, Level.BREACH),
        # FA: P50 < 1 s, P95 < 3 s, P99 < 5 s ("<": the limit itself breaches).
        ("fa-ai-system", None, "p50", 999.9, Level.WARN),
        ("fa-ai-system", None, "p50", 1000, Level.BREACH),
        ("fa-ai-system", None, "p95", 2399, Level.OK),
        ("fa-ai-system", None, "p95", 3000, Level.BREACH),
        ("fa-ai-system", None, "p99", 5000, Level.BREACH),
        ("fa-ai-system", None, "error_rate", 1.0, Level.BREACH),
        ("fa-ai-system", None, "error_rate", 0.5, Level.OK),
        # AI Assistant: <5 s normal, 5–10 s warning, >10 s critical.
        ("ai-assistant", None, "p95", 4999, Level.OK),
        ("ai-assistant", None, "p95", 5000, Level.WARN),
        ("ai-assistant", None, "p95", 10_000, Level.WARN),
        ("ai-assistant", None, "p95", 10_001, Level.BREACH),
        # Mira: > 3 s is high latency.
        ("mira-copilot", None, "p95", 2399, Level.OK),
        ("mira-copilot", None, "p95", 3000, Level.WARN),
        ("mira-copilot", None, "p95", 3001, Level.BREACH),
    ],
)
def test_verdict_boundaries(
    bundled: Catalog, service: str, kind: str | None, metric: str, value: float, level: Level
) -> None:
    found = verdicts(_stats(**{metric: value}), _objectives(bundled, service), kind)
    [verdict] = [v for v in found if v.metric == metric]
    assert verdict.level is level, (verdict.objective, value)


def test_verdicts_apply_kind_specific_objectives_only_to_their_kind(bundled: Catalog) -> None:
    objectives = _objectives(bundled, "ivy-v2")
    rag = verdicts(_stats(p95=1000, p99=1000, error_rate=0.1), objectives, "rag")
    everything = verdicts(_stats(p95=1000, p99=1000, error_rate=0.1), objectives, None)
    assert sorted((v.metric, v.objective.limit) for v in rag) == [
        ("error_rate", 1),
        ("p95", 2200),
        ("p99", 4000),
    ]
    assert [v.metric for v in everything] == ["error_rate"]
    assert judge(None, objectives[0]) is Level.NO_DATA


def test_sparkline() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([100, None, 300]) == "▁ █"
    assert sparkline([5, 5]) == "▄▄"
    assert sparkline([None, None]) == "  "
    assert sparkline([]) == ""


def test_without_matplotlib_the_chart_is_none_so_the_sparkline_is_used() -> None:
    """A fresh interpreter where `import matplotlib` fails, as on an install without it."""
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from datetime import datetime, UTC\n"
        "from integrations.charts import render_trend\n"
        "print(render_trend([datetime.now(UTC)], {'p95': [1.0]}, title='t'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "None"
