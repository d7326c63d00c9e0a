"""The bundled catalog encodes the runbooks; a bad catalog is refused with file, path and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.catalog import BUNDLED_CATALOG, CatalogError, HttpProbe, load_catalog, missing_env


def test_bundled_catalog_describes_the_four_runbooks() -> None:
    catalog = load_catalog(env={})
    assert catalog.names() == ["mira-copilot", "ivy-v2", "ai-assistant", "fa-ai-system"]
    mira = catalog.find("Mira")
    assert mira is not None and mira.name == "mira-copilot"
    # Mira Appendix B: POST {"mode": "health"} → {"status": "ok"} or "degraded".
    edge = mira.probes[0]
    assert isinstance(edge, HttpProbe)
    assert (edge.method, edge.json_body, edge.json_field) == ("POST", {"mode": "health"}, "status")
    assert edge.ok_values == ["ok"] and edge.degraded_values == ["degraded"]
    # Mira §5 flag table: seven flags with their defaults.
    defaults = {
        f.name: f.default for f in mira.flags if f.name.startswith("MIRA_") and f.name.endswith("ENABLED")
    }
    assert defaults == {
        "MIRA_COPILOT_ENABLED": False,
        "MIRA_MODE_COMMAND_ENABLED": True,
        "MIRA_MODE_COPILOT_ENABLED": False,
        "MIRA_MODE_INSIGHT_ENABLED": False,
        "MIRA_CUSTOMER_AGENT_ENABLED": False,
        "MIRA_ANALYTICS_AGENT_ENABLED": False,
        "MIRA_AUTO_EXECUTE_ENABLED": True,
    }
    assert mira.flag("mira_copilot_enabled").risk == "high"  # type: ignore[union-attr]
    assert [level.name for level in mira.escalation.levels] == [
        "AI Squad (primary on-call)",
        "Backend Team (secondary on-call)",
        "Engineering Manager",
    ]
    assert (mira.escalation.ack_within_minutes, mira.escalation.resolve_within_minutes) == (15, 60)
    # Ivy release runbook SLOs.
    ivy = catalog.find("ivy-v2")
    assert ivy is not None
    slos = {(o.kind, o.metric): o.limit for o in ivy.objectives}
    assert slos[("conversational", "p95")] == 1500 and slos[("conversational", "p99")] == 3000
    assert slos[("rag", "p95")] == 2200 and slos[("rag", "p99")] == 4000
    assert {p.name: p.values for p in ivy.presets}["emergency"] == {
        "IVY_MODAL_HEURISTICS": False,
        "AI_RATE_LIMIT_PER_MIN": 30,
        "AI_BURST_LIMIT": 5,
    }
    # FA escalation path and SLA.
    fa = catalog.find("fa")
    assert fa is not None
    assert [(lvl.name, lvl.after_minutes) for lvl in fa.escalation.levels] == [
        ("Primary on-call", 15),
        ("Secondary on-call", 30),
        ("Engineering Manager", 60),
        ("VP Engineering", 120),
    ]
    assert [(o.metric, o.limit, o.strict) for o in fa.objectives if o.metric != "error_rate"] == [
        ("p50", 1000, True),
        ("p95", 3000, True),
        ("p99", 5000, True),
    ]
    assert catalog.handoff is not None and len(catalog.handoff.checklist) == 5
    # No owners in the bundled catalog: dangerous commands fail closed until configured.
    assert not any(service.owners.configured for service in catalog.services)


def test_environment_references_resolve_or_stay_not_configured() -> None:
    catalog = load_catalog(env={"MIRA_BASE_URL": "https://abc.supabase.co"})
    mira = catalog.find("mira-copilot")
    assert mira is not None
    edge, database = mira.probes
    assert isinstance(edge, HttpProbe) and edge.url == "https://abc.supabase.co/functions/v1/agent-chat"
    assert missing_env(edge) == []
    assert missing_env(database) == ["MIRA_DATABASE_URL"]


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _bundled() -> dict:
    return yaml.safe_load(BUNDLED_CATALOG.read_text())


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["services"][0]["probes"][0].update(url="not a url"),
            "services[mira-copilot].probes[edge-function].url: expected an http(s) URL",
        ),
        (
            lambda d: d["services"][1]["flags"][2].update(default=0),
            "services[ivy-v2].flags[AI_RATE_LIMIT_PER_MIN]: default 0: expected a whole number from 1 to 600",
        ),
        (
            lambda d: d["services"][0]["owners"].update(users=["alice"]),
            "services[mira-copilot].owners.users: expected a Slack user ID like U0123ABCD, got 'alice'",
        ),
        (
            lambda d: d["services"][1]["presets"][0]["values"].update(NOPE=1),
            "services[ivy-v2]: preset emergency names unknown flag NOPE",
        ),
        (
            lambda d: d["services"][2].update(aliases=["mira"]),
            "'mira' names both mira-copilot and ai-assistant",
        ),
        (
            lambda d: d["services"][0]["probes"][0].update(kind="smtp"),
            "services[mira-copilot].probes[edge-function]",
        ),
        (lambda d: d["services"][3].pop("escalation"), "services[fa-ai-system].escalation: Field required"),
        (lambda d: d["handoff"].update(cron="every monday"), "handoff: not a cron expression"),
        (
            lambda d: d["handoff"].update(timezone="Europe/Atlantis"),
            "handoff: unknown time zone 'Europe/Atlantis' (expected an IANA name like Europe/Berlin)",
        ),
        (
            lambda d: d["handoff"].update(reminders=["+4h", "5pm"]),
            "handoff.reminders: a reminder is +Nh, +NhMm, +Nm or HH:MM (local time), got '5pm'",
        ),
        (
            lambda d: d["handoff"].update(service="mira-copilt"),
            "handoff.service names unknown service mira-copilt",
        ),
        (
            lambda d: d["handoff"]["checklist"][1].update(evidence="dashboards"),
            "handoff.checklist[1].evidence: Input should be 'incidents', 'health', 'alerts', 'pagerduty_test' or "
            "'runbook'",
        ),
    ],
)
def test_bad_catalog_names_file_path_and_expectation(tmp_path: Path, mutate, expected: str) -> None:
    data = _bundled()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(CatalogError) as raised:
        load_catalog(path, env={})
    assert str(raised.value).startswith(f"{path}: ")
    assert expected in str(raised.value)


def test_the_handoff_is_the_mira_runbook_checklist_with_its_evidence(tmp_path: Path) -> None:
    catalog = load_catalog(env={})
    handoff = catalog.handoff
    assert handoff is not None
    # Mira §1: "rotate weekly, Monday 9 AM"; the Handoff Checklist, item by item.
    assert (handoff.cron, handoff.timezone, handoff.grace_minutes) == ("0 9 * * 1", "UTC", 120)
    assert [(item.text, item.evidence) for item in handoff.checklist] == [
        ("Review open incidents from previous week", "incidents"),
        ("Check system health dashboards", "health"),
        ("Verify all alerts are functioning", "alerts"),
        ("Test PagerDuty integration", "pagerduty_test"),
        ("Review this runbook for updates", "runbook"),
    ]
    assert handoff.reminders == ["+4h", "17:00"]
    service = catalog.handoff_service()
    assert service is not None and service.name == "mira-copilot"
    # A catalog that lists the runbook's plain markdown items, without `service`: items without evidence, and
    # the service whose runbook it is.
    data = _bundled()
    data["handoff"]["checklist"] = ["Review open incidents from previous week", "Say hello"]
    data["handoff"].pop("service")
    plain = load_catalog(_write(tmp_path, data), env={})
    assert plain.handoff is not None and [i.evidence for i in plain.handoff.checklist] == [None, None]
    assert plain.handoff_service() == service


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "services:\n  - name: x\n    aliases: [unclosed\n")
    with pytest.raises(CatalogError, match=r"not valid YAML at line \d+, column \d+"):
        load_catalog(path, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the catalog"):
        load_catalog(tmp_path / "absent.yaml", env={})
