"""The diagnostics tour, `docs/console-diagnostics.txt`: `/diag`, `/diag SERVICE` and every bundled query of the
four runbooks, played by the real `mira-bot console --demo --script` process on embedded servers against the demo's
seeded database (stand_ins/demo_diagnostics.py), as the runbook tours are (tests/test_console_runbooks.py).

Each script line is one step; the test checks, step by step and in order, what that step put in Slack: the rows,
the thresholds crossed with their next-step buttons, a pressed button doing what the runbook says, the large
result going to a CSV in the thread, the answer when pg_stat_statements is not there, and the two FA checks the
scheduler posts when the clock passes their slots (whatever the weekday the test starts on: Sunday 06:00 first, then
the 09:00 after it). No durations or times are
matched: the seed is relative to the demo database's `now()`, so the rows are the same whenever it runs.
"""

from __future__ import annotations

from pathlib import Path

from tests.console_tours import play_tour
from tests.test_cli import ROOT

SCRIPT = ROOT / "docs" / "console-diagnostics.txt"
PROMPT = "U0CONSOLE in #ops> "

#: (the script line, what its output must show, what it must not). In the script's order.
STEPS: list[tuple[str, list[str], list[str]]] = [
    (
        "/diag",
        [
            "Mira Co-Pilot (`mira-copilot`)",
            "• `low-confidence` — Intents classified with confidence < 0.5 (misclassification candidates) "
            "(runbook: Issue 1: Intent Misclassification)",
            "Ivy v2 (`ivy-v2`)",
            "AI Assistant (`ai-assistant`)",
            "FA AI System (`fa-ai-system`)",
            "• `unused-indexes` — Indexes never scanned",
        ],
        [],
    ),
    (
        "/diag mira-copilot",
        ["• `slow-queries` — Queries averaging over 1 s (runbook: Get Slow Queries)"],
        ["Ivy v2"],
    ),
    (
        "/diag mira-copilot low-confidence",
        [
            "7 rows · ",
            "window 1h · limit 20 · runbook: § Issue 1: Intent Misclassification",
            "🔴 ",
            "look up lead by phone 91234567",
            "🔴 confidence < 0.3 (critical): 1 row",
            "§ Procedure: Debug Classification Issues",
        ],
        [],
    ),
    (
        "/diag mira low-confidence 2h module=customer",
        ["4 rows · ", "window 2h · limit 20 · module customer", "find Kim's husband"],
        ["remind me to follow up friday"],
    ),
    (
        "/diag mira-copilot action-failures",
        [
            "Route /customer/leads/undefined not fou…  7",
            "🟡 failure_count > 5 (warn): 1 row",
            "[1.1] Disable auto-execution",
        ],
        [],
    ),
    ("press 1.1", ["`/flag off MIRA_AUTO_EXECUTE_ENABLED`", "MIRA_AUTO_EXECUTE_ENABLED true → false"], []),
    ("/diag mira-copilot tool-errors", ["2 rows · ", "permission denied for table leads (RLS"], []),
    ("/diag mira-copilot circuit-breaker", ["1 row · ", "openai: 5 failures in 30s, breaker open"], []),
    (
        "/diag mira-copilot recent-errors",
        [
            "21 rows · ",
            "LLM_TIMEOUT",
            "21 rows — full result in the CSV in the thread (first 10 shown)",
            "uploaded 📎 Error events, newest first (21 rows)",
        ],
        [],
    ),
    (
        "/diag mira-copilot error-breakdown",
        [
            "LLM_TIMEOUT   12",
            "🟡 count > 10 (warn): 1 row",
            "Apply preset provider-failover",
            "Roll back (standard)",
        ],
        [],
    ),
    ("/diag mira-copilot active-conversations", ["6 rows · ", "conv-7f3a"], ["conv-7e98", "conv-7f20"]),
    (
        "/diag mira-copilot slow-queries",
        ["3 rows · ", "🔴 avg_time > 3000 (critical): 1 row", "§ Issue 3: High Latency"],
        ["SELECT id, name FROM customers"],
    ),
    ("/diag ivy-v2", ["• `error-rate` — ", "• `eval-success` — "], ["Mira Co-Pilot"]),
    (
        "/diag ivy-v2 error-rate",
        [
            "window 1h · limit 10 · runbook: § Error Rate > 1%",
            "🔴 all ",
            "🔴 rag ",
            "🔴 error_pct > 1 (critical): 2 rows",
            "[3.1] Restart services  [3.2] Roll back (immediate)",
        ],
        [],
    ),
    # The failures were half an hour ago: the last 5 minutes are clean, nothing marked.
    ("/diag ivy-v2 error-rate 5m", ["window 5m · limit 10", "0.00"], ["🔴", "🟡"]),
    (
        "/diag ivy-v2 eval-success",
        ["7 rows · ", "76.0", "🔴 success_pct < 80 (critical): 1 row", "§ Service Level Objectives (SLOs)"],
        [],
    ),
    ("/diag ai-assistant", ["• `knowledge-documents` — The latest knowledge documents"], []),
    (
        "/diag ai-assistant errors",
        ["🟡 openai_timeout", "🟡 error_pct > 1 (warn): 1 row", "Restart (SOP-001)"],
        ["(critical)"],
    ),
    ("/diag ai-assistant knowledge-count", ["1 row · ", "Documents  Languages  Latest upload"], ["🔴"]),
    ("/diag ai-assistant knowledge-documents", ["10 rows · ", "kd-0013", "kd-0004"], ["kd-0003"]),
    (
        "/diag ai-assistant slow-statements contains=ai_",
        [
            "(needs the pg_stat_statements extension)",
            "contains ai_",
            "⚠️ ",
            "CREATE EXTENSION pg_stat_statements",
        ],
        ["Traceback"],
    ),
    ("/diag fa-ai-system", ["• `last-batch` — The last batch run against the acceptable ranges"], []),
    (
        "/diag fa-ai-system last-batch",
        [
            "Stocks  Succeeded  Failed  Success %  $/stock  Hours",
            "1000    930        70      93.0       0.372    3.60",
            "🔴 success_pct < 95 (critical): 1 row",
            "[5.1] Raise batch concurrency to 150  [5.2] Enable Haiku routing",
        ],
        ["cost_per_stock >", "duration_hours >"],
    ),
    ("press 5.1", ["`/flag set BATCH_MAX_CONCURRENCY 150`", "BATCH_MAX_CONCURRENCY 100 → 150"], []),
    ("/diag fa-ai-system failed-fact-checks", ["10 rows · ", "NVDA    failed"], ["PFE", "GOOGL"]),
    (
        "/diag fa-ai-system slow-statements",
        ["⚠️ ", "pg_stat_statements is not enabled", "FA_DATABASE_URL"],
        [],
    ),
    (
        "/diag fa-ai-system unused-indexes table=stock_summaries",
        ["table stock_summaries", "stock_summaries_ticker_idx"],
        ["mira_events"],
    ),
    ("/diag fa-ai-system last-bach", ["Did you mean `/diag fa-ai-system last-batch`?"], []),
    (
        "clock sunday 06:00",
        [
            "#fa-ai-system-alerts · Mira Bot",
            "FA weekly batch verification — ❌ 1 of 1 checks failed (FA AI System)",
            "❌ Last batch run — success_pct 93.0, cost_per_stock 0.372, duration_hours 3.60, hours_ago ",
            "Raise batch concurrency to 150",
            "§ Weekly Batch Processing (Sunday 2 AM)",
            "#fa-ai-system-alerts · thread · Mira Bot",
            "Summaries rejected by the fact check",
            "NVDA",
        ],
        ["FA morning health check", "#mira-copilot-alerts · Mira Bot"],
    ),
    ("break fa", ["health checks now answer 503"], []),
    (
        "clock 09:00",
        [
            "#fa-ai-system-alerts · Mira Bot",
            "FA morning health check — ❌",
            "❌ Health — health down: HTTP 503",
            "Roll back (blue-green)",
            "Error rate (24h)",
            "P95 latency (24h)",
            "❌ Yesterday's batch — success_pct 93.0",
            "Action if failed: See Incident Response",
            "§ Morning Health Check (Daily 9 AM)",
        ],
        ["FA weekly batch verification", "#mira-copilot-alerts · Mira Bot"],
    ),
    ("mend fa", ["healthy again"], []),
]


def _steps(out: str) -> list[tuple[str, str]]:
    """(script line, its output) for each prompt in the transcript."""
    chunks = out.split(PROMPT)[1:]
    return [(chunk.split("\n", 1)[0], chunk.split("\n", 1)[1] if "\n" in chunk else "") for chunk in chunks]


def test_the_script_is_the_steps_checked() -> None:
    """Every line of the script is a step this test checks, in order (so neither drifts from the other)."""
    lines = [
        line.strip() for line in SCRIPT.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert lines == [command for command, _, _ in STEPS]


def test_the_diagnostics_tour_runs_every_bundled_query(tmp_path: Path) -> None:
    out = play_tour(SCRIPT, tmp_path)
    steps = _steps(out)
    assert [command for command, _ in steps] == [command for command, _, _ in STEPS]
    for (command, output), (_, shown, absent) in zip(steps, STEPS, strict=True):
        position = 0
        for expected in shown:
            found = output.find(expected, position)
            assert found >= 0, f"{command}: not shown (in order): {expected!r}\n{output}"
            position = found
        for unexpected in absent:
            assert unexpected not in output, f"{command}: shows {unexpected!r}\n{output}"
