"""The service catalogs the benchmarks give the bot (through BOT_CATALOG, as an operator would).

Each benchmark gets the smallest catalog that exercises what it measures, so that a figure is not moved by work
the benchmark is not about. They are written to the run's directory and validated by the bot's own loader first,
so a catalog mistake fails here with the loader's message instead of as a bot that will not start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.catalog import load_catalog

SERVICE = "bench-svc"
DISPLAY_NAME = "Bench Service"
PAGERDUTY_SERVICE_ID = "PBENCH1"
ALERTS_CHANNEL = "#bench-alerts"
INCIDENTS_CHANNEL = "#bench-incidents"
HUNG_PROBE = "hung"


def _service(**parts: Any) -> dict[str, Any]:
    return {
        "name": SERVICE,
        "display_name": DISPLAY_NAME,
        "aliases": ["bench"],
        "production": False,
        "channels": {"alerts": ALERTS_CHANNEL, "incidents": INCIDENTS_CHANNEL},
        "escalation": {"levels": [{"name": "Bench on-call", "after_minutes": 0}]},
        "pagerduty": {"service_ids": [PAGERDUTY_SERVICE_ID]},
        **parts,
    }


def ack_catalog(upstream_url: str) -> dict[str, Any]:
    """/health with one front-door HTTP probe that answers at once: the least post-ack work a /health does
    (one probe, one INSERT of the run, one chat.postMessage, one UPDATE) without skipping any of its steps."""
    probe = {"name": "front-door", "kind": "http", "url": f"{upstream_url}/ok", "json_field": "status"}
    return {"services": [_service(probes=[probe])]}


def health_catalog(upstream_url: str, hung_port: int, probes: int, hung_timeout: float) -> dict[str, Any]:
    """`probes` HTTP probes on the 200 ms endpoint, and one on a port that never answers, cut at
    `hung_timeout` seconds (the catalog's per-probe `timeout`)."""
    answering = [
        {"name": f"probe-{n:02d}", "kind": "http", "url": f"{upstream_url}/probe/{n}", "json_field": "status"}
        for n in range(1, probes + 1)
    ]
    hung = {
        "name": HUNG_PROBE,
        "kind": "http",
        "url": f"http://127.0.0.1:{hung_port}/health",
        "timeout": hung_timeout,
    }
    return {"services": [_service(probes=[*answering, hung])]}


def incidents_catalog() -> dict[str, Any]:
    """PagerDuty's service PBENCH1 is ours: its incidents go to #bench-alerts and #bench-incidents."""
    return {"services": [_service()]}


def latency_catalog(dsn: str, table: str) -> dict[str, Any]:
    """Mira's latency source (README → Latency) on the bench's events table."""
    latency = {
        "dsn": dsn,
        "table": table,
        "latency_column": "latency_ms",
        "time_column": "created_at",
        "filters": {"event_type": "agent_response"},
        "success_column": "success",
    }
    objectives = [{"metric": "p95", "limit": 3000}]
    return {"services": [_service(latency=latency, objectives=objectives)]}


def write_catalog(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    load_catalog(path, env={})  # raises CatalogError naming the problem
    return path


def spread_catalog(services: int) -> dict[str, Any]:
    """`services` services (`spread_services`), each with its own two channels and PagerDuty service: load spread
    over 2 × `services` channels, so that Slack's per-channel rate is not what bounds delivery."""
    return {
        "services": [
            _service(
                name=f"{SERVICE}-{n:02d}",
                display_name=f"{DISPLAY_NAME} {n:02d}",
                aliases=[f"bench{n:02d}"],
                channels={"alerts": f"{ALERTS_CHANNEL}-{n:02d}", "incidents": f"{INCIDENTS_CHANNEL}-{n:02d}"},
                pagerduty={"service_ids": [f"PBENCH{n:02d}"]},
            )
            for n in range(1, services + 1)
        ]
    }


def spread_services(services: int) -> list[tuple[str, str, tuple[str, str]]]:
    """(PagerDuty service id, display name, its channels) of `spread_catalog(services)`'s services."""
    return [
        (
            f"PBENCH{n:02d}",
            f"{DISPLAY_NAME} {n:02d}",
            (f"{ALERTS_CHANNEL}-{n:02d}", f"{INCIDENTS_CHANNEL}-{n:02d}"),
        )
        for n in range(1, services + 1)
    ]
