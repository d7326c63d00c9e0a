"""The catalog's `reports:`: the bundled ones as the runbooks schedule them, what load refuses (naming the file
and the path to fix), and the opt-in daily summaries, which validate while off and run once switched on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from bot.catalog import BUNDLED_CATALOG, CatalogError, load_catalog
from bot.catalog.reports import DiagnosticCheck, HealthCheck, SloCheck
from bot.settings import Settings
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import answer, fake_service, running_bot
from tests.oncall.world import at

MORNING = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday


def _bundled() -> dict[str, Any]:
    return yaml.safe_load(BUNDLED_CATALOG.read_text())


def _service(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["services"] if s["name"] == name)


def _report(data: dict[str, Any], service: str, name: str) -> dict[str, Any]:
    return next(r for r in _service(data, service)["reports"] if r["name"] == name)


def test_the_bundled_fa_reports_are_the_runbooks_daily_and_weekly_checks() -> None:
    fa = load_catalog(env={}).find("fa")
    assert fa is not None
    morning, weekly = fa.reports
    assert (morning.name, morning.cron, morning.timezone, morning.enabled) == (
        "morning-check",
        "0 9 * * *",
        "UTC",
        True,
    )
    assert morning.runbook.section == "Morning Health Check (Daily 9 AM)"
    health, error_rate, p95, batch = morning.checks
    assert isinstance(health, HealthCheck) and not health.probes
    assert isinstance(error_rate, SloCheck) and (error_rate.metric, error_rate.below) == ("error_rate", 1)
    assert isinstance(p95, SloCheck) and (p95.metric, p95.below, p95.window) == ("p95", 3000, "24h")
    assert isinstance(batch, DiagnosticCheck) and batch.query == "last-batch"
    assert [(t.column, t.below) for t in batch.thresholds or []] == [("success_pct", 100)]
    assert morning.action is not None and morning.action.runbook is not None
    assert morning.action.runbook.section == "Incident Response"

    assert (weekly.name, weekly.cron, weekly.enabled) == ("weekly-batch", "0 6 * * 0", True)
    assert weekly.runbook.section == "Weekly Batch Processing (Sunday 2 AM)"
    [last_batch] = weekly.checks
    # The runbook's Acceptable Ranges (the query's own thresholds), and the run must be this week's.
    assert isinstance(last_batch, DiagnosticCheck) and last_batch.thresholds is not None
    assert [(t.column, t.above, t.below) for t in last_batch.thresholds] == [
        ("success_pct", None, 95),
        ("cost_per_stock", 0.40, None),
        ("duration_hours", 4, None),
        ("hours_ago", 24, None),
    ]
    assert weekly.on_failure_thread == ["failed-fact-checks"]


def test_the_other_services_summaries_are_bundled_off() -> None:
    catalog = load_catalog(env={})
    assert {s.name: [(r.name, r.enabled) for r in s.reports] for s in catalog.services} == {
        "mira-copilot": [("daily-summary", False)],
        "ivy-v2": [("daily-summary", False)],
        "ai-assistant": [("daily-summary", False)],
        "fa-ai-system": [("morning-check", True), ("weekly-batch", True)],
    }


Mutation = Callable[[dict[str, Any]], None]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: _report(d, "fa-ai-system", "morning-check").update(cron="daily at nine"),
            "services[fa-ai-system].reports[morning-check]: not a cron expression",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "morning-check").update(timezone="Mars/Olympus"),
            "services[fa-ai-system].reports[morning-check]: unknown time zone 'Mars/Olympus'",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "morning-check").update(channel="alerts channel"),
            "services[fa-ai-system].reports[morning-check].channel: channel is alerts, incidents, #name",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "morning-check")["checks"][1].update(window="1 day"),
            "services[fa-ai-system].reports[morning-check].checks[1].window: a window is a number and m, h or d",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "morning-check")["checks"][1].update(metric="p90"),
            "services[fa-ai-system].reports[morning-check].checks[1].metric",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "morning-check")["checks"][0].update(probes=["alb"]),
            "services[fa-ai-system]: report morning-check: health check names unknown probe alb",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "morning-check")["checks"][3].update(query="last-batches"),
            "services[fa-ai-system]: report morning-check: names unknown diagnostic query last-batches (the "
            "service has: last-batch, failed-fact-checks, slow-statements, unused-indexes)",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "morning-check")["checks"][3]["thresholds"][0].update(
                column="success_rate"
            ),
            "report morning-check: last-batch has no column success_rate (its columns: started_at,",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "morning-check")["checks"][3].update(args={"window": "1d"}),
            "report morning-check: last-batch takes no parameter window (it takes: none)",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "weekly-batch").update(on_failure_thread=["rejected"]),
            "report weekly-batch: on_failure_thread: names unknown diagnostic query rejected",
        ),
        (
            lambda d: _report(d, "fa-ai-system", "weekly-batch").update(name="morning-check"),
            "services[fa-ai-system]: report names must be unique within a service",
        ),
        (
            lambda d: _service(d, "fa-ai-system").pop("latency"),
            "services[fa-ai-system]",  # the diagnostics lose their dsn default first, or the slo check its source
        ),
        (
            lambda d: _report(d, "ai-assistant", "daily-summary")["checks"].append(
                {"kind": "slo", "metric": "error_rate"}
            ),
            "services[ai-assistant]: report daily-summary: error_rate needs `latency.success_column`",
        ),
        (
            lambda d: _report(d, "mira-copilot", "daily-summary")["checks"].append(
                {"kind": "slo", "metric": "p99"}
            ),
            "services[mira-copilot]: report daily-summary: no objective for p99 to judge against; give `below`",
        ),
        (
            lambda d: _report(d, "ivy-v2", "daily-summary").update(
                runbook={"section": "X", "file": "nope.md"}
            ),
            "services[ivy-v2]: report daily-summary names runbook nope.md, which the service lacks",
        ),
    ],
)
def test_a_bad_report_is_refused_at_load_naming_the_path(
    tmp_path: Path, mutate: Mutation, expected: str
) -> None:
    data = _bundled()
    mutate(data)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(CatalogError) as raised:
        load_catalog(path, env={})
    assert str(raised.value).startswith(f"{path}: ")
    assert expected in str(raised.value)


# --- opting in ------------------------------------------------------------------------------------------------


def opted_in(tmp_path: Path) -> Path:
    """The bundled catalog with every `enabled: false` switched on, as an operator's copy would be."""
    text = BUNDLED_CATALOG.read_text()
    switch = "\n        enabled: false\n"
    assert text.count(switch) == 3
    path = tmp_path / "catalog.yaml"
    path.write_text(text.replace(switch, "\n        enabled: true\n"))
    return path


@pytest.fixture
async def ivy_service() -> AsyncIterator[str]:
    async with fake_service(
        {"/ivy/ai/router/health": answer({"status": "ok"}), "/ivy/health": answer({"status": "ok"})}
    ) as url:
        yield url


async def test_an_opted_in_daily_summary_is_scheduled_and_posts_from_the_objectives(
    tmp_path: Path, settings: Settings, slack: RecordingSlackServer, database_url: str, ivy_service: str
) -> None:
    """Ivy switched on: its health, P95 per query kind against the release runbook's SLOs, the error rate and
    the last night's eval, read from its tables in the test's schema."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            """CREATE TABLE ai_router_events (created_at timestamptz, query_kind text, latency_ms double precision,
                                              success boolean);
               CREATE TABLE eval_reports (run_at timestamptz, suite text, total integer, passed integer,
                                          failed integer);
               INSERT INTO ai_router_events
                   SELECT now() - i * interval '1 minute', CASE WHEN i % 2 = 0 THEN 'rag' ELSE 'conversational' END,
                          CASE WHEN i % 2 = 0 THEN 2500 ELSE 800 END, i > 1
                   FROM generate_series(1, 400) AS i;
               INSERT INTO eval_reports VALUES (now() - interval '6 hours', 'nightly', 100, 86, 14);"""
        )
    env = {
        "IVY_BASE_URL": f"{ivy_service}/ivy",
        "IVY_DATABASE_URL": database_url,
        "IVY_ALERTS_CHANNEL": "#ivy",
    }
    catalog = load_catalog(opted_in(tmp_path), env=env)
    async with running_bot(settings, catalog, slack) as bot:
        names = [job.name for job in bot.runtime.scheduler.jobs if job.name.startswith("report.")]
        assert names == [
            "report.mira-copilot.daily-summary",
            "report.ivy-v2.daily-summary",
            "report.ai-assistant.daily-summary",
            "report.fa-ai-system.morning-check",
            "report.fa-ai-system.weekly-batch",
        ]
        at(bot, MORNING + timedelta(seconds=5))
        assert "report.ivy-v2.daily-summary" in await bot.runtime.scheduler.run_due()
    [post] = [c for c in slack.calls_to("chat.postMessage", channel="#ivy") if not c.thread_ts]
    assert post.text == (":x: Ivy v2 daily summary: 1 of 5 checks failed (P95 latency rag (24h))")
    found = [b["text"]["text"] for b in post.blocks or [] if b["type"] == "section"][1:]
    assert found[0].startswith(":white_check_mark: *Health* — 2/2 probes ok")
    assert found[1] == (
        ":white_check_mark: *P95 latency conversational (24h)* — 800 ms over 200 events (limit: ≤ 1.50 s)"
    )
    assert found[2] == ":x: *P95 latency rag (24h)* — 2.50 s over 200 events (limit: ≤ 2.20 s)"
    assert found[3] == ":white_check_mark: *Error rate (24h)* — 0.25 % over 400 events (limit: &lt; 1.00 %)"
    assert found[4] == ":white_check_mark: *Nightly eval* — success_pct 86.0 (limit: success_pct ≥ 80)"
