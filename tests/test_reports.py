"""Scheduled checks end to end: the bundled FA morning check and weekly batch verification run by the scheduler
(clock injected, never slept) against FA's tables seeded in the test's own schema, stand-in probes, and what
reached the recording Slack server — one message per slot across replicas, restarts and lease take-overs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.catalog import Catalog
from bot.settings import Settings
from stand_ins.recording_slack import RecordingSlackServer, SlackCall
from tests.harness import BotUnderTest, blocks_text, fake_service, running_bot
from tests.oncall.world import at, one_row

FA_ALERTS = "#fa-alerts"
#: A Tuesday (no weekly handoff at 09:00) and the Sunday before it: the bundled crons "0 9 * * *" and "0 6 * * 0".
MORNING = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SUNDAY = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
MORNING_JOB = "report.fa-ai-system.morning-check"
WEEKLY_JOB = "report.fa-ai-system.weekly-batch"

FA_TABLES = """
CREATE TABLE query_events (created_at timestamptz NOT NULL, latency_ms double precision, success boolean);
CREATE TABLE batch_runs (id serial PRIMARY KEY, started_at timestamptz, finished_at timestamptz,
                         total_stocks integer, successful integer, failed integer, total_cost numeric);
CREATE TABLE stock_summaries (ticker text, fact_check_status text, fact_check_details jsonb,
                              updated_at timestamptz);
"""


class FaHealth:
    """FA's ALB health check, answering what the test sets."""

    def __init__(self) -> None:
        self.status = 200

    async def handle(self, request: Request) -> Response:
        body = {"status": "healthy"} if self.status == 200 else {"status": "unhealthy", "healthy_targets": 0}
        return JSONResponse(body, status_code=self.status)


@pytest.fixture
def fa_health() -> FaHealth:
    return FaHealth()


@pytest.fixture
async def fa_service(fa_health: FaHealth) -> AsyncIterator[str]:
    async with fake_service({"/fa/health": fa_health.handle}) as url:
        yield url


@pytest.fixture
def catalog_env(fa_service: str, database_url: str, redis_url: str) -> dict[str, str]:
    """FA's probes at the stand-in (HTTP) and the test's own Postgres schema and Redis; its metrics and batch
    tables in that schema."""
    return {
        "FA_BASE_URL": f"{fa_service}/fa",
        "FA_DATABASE_URL": database_url,
        "FA_REDIS_URL": redis_url,
        "FA_ALERTS_CHANNEL": FA_ALERTS,
    }


@pytest.fixture
async def fa_db(database_url: str) -> str:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(FA_TABLES)
    return database_url


@pytest.fixture
async def replica(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> AsyncIterator[BotUnderTest]:
    """A second bot process's runtime on the same Postgres schema and Redis database as `bot`."""
    async with running_bot(settings, catalog, slack) as other:
        yield other


async def seed(
    database_url: str,
    *,
    events: int = 200,
    errors: int = 0,
    latency_ms: float = 900.0,
    batch: tuple[int, int, float, float] | None = (1000, 1000, 385.0, 3.5),
    failed_checks: list[tuple[str, str]] | None = None,
    batch_started_hours_ago: float = 8.0,
) -> None:
    """FA's last day in the database's own time (its now(), as the runbook's queries read it): `events` queries
    with `errors` failed, the last batch (`total`, `succeeded`, `cost`, `hours`), rejected summaries."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            """INSERT INTO query_events (created_at, latency_ms, success)
               SELECT now() - i * interval '1 minute', %s, i > %s FROM generate_series(1, %s) AS i""",
            (latency_ms, errors, events),
        )
        if batch is not None:
            total, succeeded, cost, hours = batch
            await conn.execute(
                """INSERT INTO batch_runs (started_at, finished_at, total_stocks, successful, failed, total_cost)
                   VALUES (now() - %s * interval '1 hour', now() - %s * interval '1 hour' + %s * interval '1 hour',
                           %s, %s, %s, %s)""",
                (
                    batch_started_hours_ago,
                    batch_started_hours_ago,
                    hours,
                    total,
                    succeeded,
                    total - succeeded,
                    cost,
                ),
            )
        for ticker, details in failed_checks or []:
            await conn.execute(
                """INSERT INTO stock_summaries (ticker, fact_check_status, fact_check_details, updated_at)
                   VALUES (%s, 'failed', jsonb_build_object('claim', %s::text), now())""",
                (ticker, details),
            )


def reports(slack: RecordingSlackServer) -> list[SlackCall]:
    """The scheduled checks' messages: top-level posts in FA's alerts channel."""
    return [c for c in slack.calls_to("chat.postMessage", channel=FA_ALERTS) if not c.thread_ts]


def thread(slack: RecordingSlackServer, root: SlackCall) -> list[SlackCall]:
    assert root.response is not None
    return [c for c in slack.calls_to("chat.postMessage") if c.thread_ts == root.response["ts"]]


def buttons(blocks: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    """(label, command or url) of every button."""
    found = []
    for block in blocks or []:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                found.append((element["text"]["text"], element.get("value") or element.get("url", "")))
    return found


def lines(blocks: list[dict[str, Any]] | None) -> list[str]:
    """The ✅ / ❌ lines of a report."""
    return [
        b["text"]["text"]
        for b in blocks or []
        if b.get("type") == "section" and b["text"]["text"].startswith((":white_check_mark:", ":x:"))
    ]


async def run_at(bot: BotUnderTest, moment: datetime) -> list[str]:
    at(bot, moment)
    return await bot.runtime.scheduler.run_due()


# --- the morning check ----------------------------------------------------------------------------------------


async def test_the_morning_check_posts_once_at_nine_with_a_line_per_check_and_the_failing_parts_buttons(
    bot: BotUnderTest, fa_db: str, fa_health: FaHealth, database_url: str
) -> None:
    fa_health.status = 503  # the ALB has no healthy target
    await seed(fa_db, events=200, errors=1, latency_ms=4200.0)  # 0.5 % errors, P95 4.2 s
    assert MORNING_JOB in await run_at(bot, MORNING + timedelta(seconds=5))

    [post] = reports(bot.slack)
    assert post.text.startswith(
        ":x: FA morning health check: 2 of 4 checks failed (Health, P95 latency (24h))"
    )
    assert "(late" not in post.text
    health, error_rate, p95, batch = lines(post.blocks)
    assert health.startswith(":x: *Health* — health down: HTTP 503")
    assert health.endswith("(limit: every probe ok)")
    assert error_rate == ":white_check_mark: *Error rate (24h)* — 0.50 % over 200 events (limit: &lt; 1.00 %)"
    assert p95 == ":x: *P95 latency (24h)* — 4.20 s over 200 events (limit: &lt; 3.00 s)"
    assert batch.startswith(":white_check_mark: *Yesterday's batch* — success_pct 100.0, started_at ")
    assert batch.endswith(" UTC (limit: success_pct ≥ 100)")
    # Under the failing health line FA's `next_steps.down`, under P95 its `latency_breach` for p95; then the
    # runbook's "Action if Failed" (its runbook URL unset: named in a context line, not a link).
    assert buttons(post.blocks) == [
        ("Roll back (blue-green)", "/rollback fa-ai-system blue-green"),
        ("Restart tasks", "/restart fa-ai-system"),
        ("Enable Haiku routing", "/flag on ENABLE_HAIKU_ROUTING"),
    ]
    text = blocks_text(post.blocks)
    assert "*Action if failed:* See Incident Response" in text
    assert "`fa-ai-system-operations-runbook.md` § Incident Response" in text
    assert "`morning-check` due Tue 24 Nov 09:00 UTC" in text
    assert await one_row(database_url, "SELECT failed FROM report_posts") == (
        ["Health", "P95 latency (24h)"],
    )

    # Ticking again (a minute later, and the next tick after that): never a second message for the slot.
    assert MORNING_JOB not in await run_at(bot, MORNING + timedelta(minutes=1))
    assert MORNING_JOB not in await run_at(bot, MORNING + timedelta(minutes=2))
    assert len(reports(bot.slack)) == 1
    assert thread(bot.slack, post) == []  # the morning check names no thread diagnostics


async def test_a_quiet_morning_is_one_short_line(bot: BotUnderTest, fa_db: str) -> None:
    await seed(fa_db, events=200, errors=0, latency_ms=900.0)
    await run_at(bot, MORNING + timedelta(seconds=5))
    [post] = reports(bot.slack)
    assert post.text == (
        ":white_check_mark: *FA morning health check*: all 4 checks passed · health ok · Error 0.00 % · "
        "P95 900 ms · success_pct 100.0, started_at " + post.text.rsplit("started_at ", 1)[1]
    )
    assert "\n" not in post.text
    assert not post.body.get("blocks")


async def test_a_check_that_cannot_be_evaluated_is_a_failing_line_that_says_why(
    bot: BotUnderTest, settings: Settings, catalog_env: dict[str, str], slack: RecordingSlackServer
) -> None:
    """FA's database refuses connections: the probe, the SLOs and the batch query each say so; one message."""
    from bot.catalog import load_catalog

    env = {**catalog_env, "FA_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/fa"}
    async with running_bot(settings, load_catalog(env=env), slack) as unreachable:
        assert MORNING_JOB in await run_at(unreachable, MORNING + timedelta(seconds=5))
    [post] = reports(slack)
    health, error_rate, p95, batch = lines(post.blocks)
    assert health.startswith(":x: *Health* — database down:")
    assert error_rate.startswith(":x: *Error rate (24h)* — cannot measure: cannot reach the database")
    assert p95.startswith(":x: *P95 latency (24h)* — cannot measure: cannot reach the database")
    assert batch.startswith(":x: *Yesterday's batch* — cannot run: ")
    assert post.text.startswith(":x: FA morning health check: 4 of 4 checks failed")


# --- the weekly batch verification ----------------------------------------------------------------------------


async def test_a_weekly_batch_miss_opens_the_thread_with_the_failed_fact_checks(
    bot: BotUnderTest, fa_db: str, database_url: str
) -> None:
    await seed(
        fa_db,
        batch=(1000, 900, 450.0, 4.5),  # 90 % success, $0.45 per stock, 4.5 hours: all three ranges missed
        failed_checks=[("AAPL", "revenue not in the 10-K"), ("EVIL", "<!channel> *bold* `code`")],
    )
    assert WEEKLY_JOB in await run_at(bot, SUNDAY + timedelta(seconds=5))

    [post] = reports(bot.slack)
    assert post.text.startswith(":x: FA weekly batch verification: 1 of 1 checks failed (Last batch run)")
    [line] = lines(post.blocks)
    assert line.startswith(
        ":x: *Last batch run* — success_pct 90.0, cost_per_stock 0.450, duration_hours 4.50, hours_ago 8.0, started_at "
    )
    assert line.endswith(
        " UTC, total 1000 (limit: success_pct ≥ 95, cost_per_stock ≤ 0.4, duration_hours ≤ 4, hours_ago ≤ 24)"
    )
    # The last-batch query's own next steps (FA Common Issues) under the failing line.
    assert ("Raise batch concurrency to 150", "/flag set BATCH_MAX_CONCURRENCY 150") in buttons(post.blocks)
    assert "diagnostics in the thread" in blocks_text(post.blocks)

    [reply] = thread(bot.slack, post)
    assert reply.channel == post.response["channel"]  # type: ignore[index]
    text = blocks_text(reply.blocks)
    assert "Summaries rejected by the fact check" in text
    assert "AAPL" in text and "EVIL" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert await one_row(
        database_url, "SELECT count(*), min(query) FROM report_replies WHERE ts IS NOT NULL"
    ) == (
        1,
        "failed-fact-checks",
    )

    # The scheduler again: neither the message nor its thread reply twice.
    await run_at(bot, SUNDAY + timedelta(minutes=1))
    assert len(reports(bot.slack)) == 1
    assert len(thread(bot.slack, post)) == 1


async def test_a_weekly_batch_within_the_ranges_is_one_line_and_no_thread(
    bot: BotUnderTest, fa_db: str
) -> None:
    await seed(fa_db, batch=(1000, 990, 385.0, 3.5), failed_checks=[("AAPL", "revenue not in the 10-K")])
    await run_at(bot, SUNDAY + timedelta(seconds=5))
    [post] = reports(bot.slack)
    assert post.text.startswith(":white_check_mark: *FA weekly batch verification*: all 1 checks passed · ")
    assert "success_pct 99.0, cost_per_stock 0.385, duration_hours 3.50" in post.text
    assert thread(bot.slack, post) == []


async def test_last_weeks_run_fails_the_weekly_check(bot: BotUnderTest, fa_db: str) -> None:
    """Figures within the ranges, but from a run that started a week ago: this Sunday's batch did not start."""
    await seed(fa_db, batch=(1000, 990, 385.0, 3.5), batch_started_hours_ago=7 * 24 + 4)
    await run_at(bot, SUNDAY + timedelta(seconds=5))
    [post] = reports(bot.slack)
    [line] = lines(post.blocks)
    assert line.startswith(
        ":x: *Last batch run* — success_pct 99.0, cost_per_stock 0.385, duration_hours 3.50, hours_ago 172.0, "
    ), line
    assert line.endswith("hours_ago ≤ 24)"), line


async def test_no_batch_at_all_fails_the_weekly_check(bot: BotUnderTest, fa_db: str) -> None:
    await seed(fa_db, batch=None)
    await run_at(bot, SUNDAY + timedelta(seconds=5))
    [post] = reports(bot.slack)
    [line] = lines(post.blocks)
    assert line.startswith(":x: *Last batch run* — no rows")


# --- once per slot: replicas, restarts, take-overs ------------------------------------------------------------


async def test_two_replicas_ticking_the_same_slot_post_once(
    bot: BotUnderTest, replica: BotUnderTest, fa_db: str, database_url: str
) -> None:
    await seed(fa_db)
    for runtime in (bot, replica):
        at(runtime, MORNING + timedelta(seconds=2))
    ran = await asyncio.gather(bot.runtime.scheduler.run_due(), replica.runtime.scheduler.run_due())
    assert sum(MORNING_JOB in names for names in ran) == 1
    assert len(reports(bot.slack)) == 1
    assert await one_row(database_url, "SELECT count(*) FROM report_posts WHERE ts IS NOT NULL") == (1,)
    assert await one_row(database_url, f"SELECT count(*) FROM job_runs WHERE job = '{MORNING_JOB}'") == (1,)


async def test_a_bot_down_at_nine_and_started_at_nine_forty_posts_once_marked_late(
    bot: BotUnderTest, replica: BotUnderTest, fa_db: str
) -> None:
    await seed(fa_db)
    assert MORNING_JOB in await run_at(bot, MORNING + timedelta(minutes=40))
    [post] = reports(bot.slack)
    assert post.text.startswith(
        ":white_check_mark: *FA morning health check* (late: due Tue 24 Nov 09:00 UTC): all 4 checks passed"
    )
    # Restarted again (a new process) at 09:55: nothing new.
    assert MORNING_JOB not in await run_at(replica, MORNING + timedelta(minutes=55))
    assert len(reports(bot.slack)) == 1


async def test_a_bot_started_after_the_grace_posts_nothing_and_logs_the_skip(
    bot: BotUnderTest, fa_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(fa_db)
    with caplog.at_level(logging.WARNING, logger="handlers.reports.schedule"):
        await run_at(bot, MORNING + timedelta(hours=3, minutes=1))  # grace_minutes: 180
        await run_at(bot, MORNING + timedelta(hours=3, minutes=2))
    assert reports(bot.slack) == []
    skipped = sorted(
        (r.service, r.report, r.slot)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage().startswith("scheduled check skipped")
    )
    assert skipped == [
        ("fa-ai-system", "morning-check", MORNING.isoformat()),
        ("fa-ai-system", "weekly-batch", SUNDAY.isoformat()),
    ]


async def test_a_replica_that_died_mid_run_is_taken_over_after_the_lease_and_posts_once(
    bot: BotUnderTest, fa_db: str, database_url: str
) -> None:
    """A replica claimed the slot and the message at 09:00 and died before posting: nobody posts while it might
    still be working; once the scheduler's lease and the message's stale window pass, one post, on time's slot."""
    await seed(fa_db)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO job_runs (job, slot, claimed_by, claimed_at) VALUES (%s, %s, 'dead', %s)",
            (MORNING_JOB, MORNING, MORNING),
        )
        await conn.execute(
            """INSERT INTO report_posts (service, report, slot, channel, claimed_by, claimed_at)
               VALUES ('fa-ai-system', 'morning-check', %s, %s, 'dead', %s)""",
            (MORNING, FA_ALERTS, MORNING),
        )
    assert MORNING_JOB not in await run_at(bot, MORNING + timedelta(minutes=5))
    assert MORNING_JOB in await run_at(bot, MORNING + timedelta(minutes=11))  # past the 10-minute lease
    [post] = reports(bot.slack)
    assert "(late: due Tue 24 Nov 09:00 UTC)" in post.text
    assert await one_row(database_url, "SELECT count(*), min(claimed_by) FROM report_posts") == (
        1,
        bot.runtime.bot.replica,
    )
    assert MORNING_JOB not in await run_at(bot, MORNING + timedelta(minutes=30))
    assert len(reports(bot.slack)) == 1


async def test_a_report_slack_stored_but_answered_5xx_is_found_by_its_metadata_not_posted_again(
    bot: BotUnderTest, fa_db: str, database_url: str
) -> None:
    await seed(fa_db)
    bot.slack.fail_after_accept("chat.postMessage", status=500)
    await run_at(bot, MORNING + timedelta(seconds=5))  # the job fails (logged); the claim stays, uncertain
    assert len(bot.slack.messages(FA_ALERTS)) == 1
    assert await one_row(database_url, "SELECT ts FROM report_posts") == (None,)

    await run_at(bot, MORNING + timedelta(minutes=10))  # the sweep looks it up once it is stale
    [stored] = bot.slack.messages(FA_ALERTS)
    assert await one_row(database_url, "SELECT ts FROM report_posts") == (stored.ts,)
    await run_at(bot, MORNING + timedelta(minutes=20))
    assert len(bot.slack.messages(FA_ALERTS)) == 1


async def test_a_report_slack_never_stored_is_posted_late_by_the_sweep_once(
    bot: BotUnderTest, replica: BotUnderTest, fa_db: str
) -> None:
    await seed(fa_db)
    bot.slack.fail_next("chat.postMessage", status=503)
    await run_at(bot, MORNING + timedelta(seconds=5))
    assert bot.slack.messages(FA_ALERTS) == []

    for runtime in (bot, replica):
        at(runtime, MORNING + timedelta(minutes=10))
    await asyncio.gather(bot.runtime.scheduler.run_due(), replica.runtime.scheduler.run_due())
    [stored] = bot.slack.messages(FA_ALERTS)
    assert str(stored.text).startswith(":white_check_mark: *FA morning health check* (late: due Tue 24 Nov")
    await run_at(bot, MORNING + timedelta(minutes=20))
    assert len(bot.slack.messages(FA_ALERTS)) == 1
