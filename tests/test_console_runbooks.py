"""Each runbook's two most common incidents, played end to end in the demo console as an on-call would: the
alert arrives, `/health` or `/latency` investigates, a next-step button or command mitigates (preset, flag,
restart, rollback), and the incident is followed to its resolution. Runs `docs/console-<service>.txt` with the
real `mira-bot console --demo --script` process on embedded servers, as the README's tour is run, and checks
what each step put in Slack.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.console_tours import play_tour
from tests.test_cli import ROOT

# What each tour must show, in order: the investigation, the mitigation, the plan done, the recovery.
EXPECTED: dict[str, list[str]] = {
    "mira-copilot": [
        "🔴 p95 BREACH",
        "[3.1] Apply preset provider-failover",
        "⚠️ Risky change 1 on Mira Co-Pilot (provider-failover)",
        "@U0CONSOLE applied preset provider-failover on Mira Co-Pilot",
        "🟢 Mira Co-Pilot latency — last 5m: within its SLOs",
        "🔴 `edge-function` down",
        "(modal opened) Confirm rollback",
        "✋ Step 4/12 waits for DBA: Roll back the last database migration.",
        "watched 30 min: healthy",
        "⏪ Rollback #1 of Mira Co-Pilot (plan `standard`) finished in 1 h 3",
        ": 12/12 steps done.",
        "Mira Co-Pilot: ok (2 probes: 2 ok)",
    ],
    "ivy-v2": [
        "🔴 p95 BREACH",
        "[3.1] Apply preset emergency",
        "#ivy-v2-alerts · Mira Bot\n    @U0CONSOLE applied preset emergency on Ivy v2",
        "🟢 Ivy v2 latency (conversational) — last 5m: within its SLOs",
        "Ivy v2: down (2 probes: 2 down)",
        "◻️ 2/4 Switch to the v1 endpoint — pending",
        ": @U0DANA signed off",
        "⏪ Rollback #1 of Ivy v2 (plan `immediate`) finished",
        "Ivy v2: ok (2 probes: 2 ok)",
    ],
    "ai-assistant": [
        "🔴 `health` down",
        "[3.1] Restart (SOP-001)",
        "Level-1 restart: one Confirm by an owner or the primary on-call.",
        "#ai-assistant-alerts · thread · Mira Bot\n    │ 🔄 @U0CONSOLE is restarting AI Assistant (restart #1",
        "✅ Step 2/3 done in 1 min",  # the 30-second wait, passed by `clock +1m`
        "🔄 Restart #1 of AI Assistant (plan `restart`) finished",
        "🔴 p95 BREACH",
        "Did you mean `/flag set ai-assistant:OPENAI_MODEL gpt-3.5-turbo`?",
        "AI Assistant needs a restart to apply: `/restart ai-assistant`",
        "[10.1] Restart ai-assistant",
        "🔄 Restart #2 of AI Assistant (plan `restart`) finished",
        "🟢 AI Assistant latency — last 5m: within its SLOs",
        "AI Assistant: ok (4 probes: 4 ok)",
    ],
    "fa-ai-system": [
        "answered `status: unhealthy, healthy_targets: 0",
        "[3.1] Roll back (blue-green)  [3.2] Restart tasks",
        "⏪ Rollback #1 of FA AI System (plan `blue-green`) finished",
        "FA AI System: ok (3 probes: 3 ok)",
        "🔴 p95 BREACH",
        "Nothing to change on FA AI System: `ENABLE_HAIKU_ROUTING` is already true (default).",
        "🔄 Restart #2 of FA AI System (plan `restart`) finished",
        "not acknowledged 5 minutes after it triggered",
        "[11.1] Acknowledge  [11.2] Escalate",
        "🟢 FA AI System latency — last 5m: within its SLOs",
        "FA AI System — Primary @U0BOB",
    ],
}


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_the_runbook_tour_plays_two_incidents_to_resolution(tmp_path: Path, service: str) -> None:
    script = ROOT / "docs" / f"console-{service}.txt"
    out = play_tour(script, tmp_path)
    position = 0
    for expected in EXPECTED[service]:
        found = out.find(expected, position)
        assert found >= 0, f"{service}: not shown after the previous step: {expected!r}"
        position = found
    # Both incidents resolved in both channels, each with one post-mortem draft and no step failing.
    for number in (1, 2):
        assert out.count(f"✅ [#{number}] ") >= 2, f"incident #{number} not resolved in both channels"
        assert out.count(f"Post-mortem draft: [#{number}] ") == 1
    assert not re.search(r"Step \d+/\d+ failed", out)
    assert "steps done" in out and "failed in" not in out
