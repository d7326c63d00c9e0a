"""PagerDuty's own V3 webhook samples (../shared/specs/pagerduty/), composed into whole webhooks the way its README
says PagerDuty composes them: the envelope of `envelope.incident.priority_updated.json` (or the service one) with
`event.event_type`, a fresh `event.id`, an increasing `occurred_at`, and `event.data` = the sample of that event
type's `data.type` from `event-types.json`. The samples' ids and service are PagerDuty's (`PGR0VU2`, `PBAZLIU`,
"API Service"); `compose` moves them onto an incident and a service of the test's own catalog."""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: PagerDuty's published samples, vendored from ../shared/specs/pagerduty/ so a clean checkout has them
#: (tests/test_incident_events.py checks the copy still matches the shared one when that is beside the repository);
#: MIRA_SPECS_DIR points elsewhere.
VENDORED_SPECS = Path(__file__).resolve().parent / "specs"
SHARED_SPECS = ROOT.parent / "shared" / "specs"
SPECS = Path(os.environ.get("MIRA_SPECS_DIR", VENDORED_SPECS)) / "pagerduty"


def _load(name: str) -> Any:
    path = SPECS / name
    assert path.is_file(), (
        f"PagerDuty's samples are missing: {path} (vendored in tests/specs/pagerduty; MIRA_SPECS_DIR overrides)"
    )
    return json.loads(path.read_text(encoding="utf-8"))


def event_types() -> list[dict[str, str]]:
    """PagerDuty's "Event Types" table: `event_type`, `data_type`, `description`."""
    table: list[dict[str, str]] = _load("event-types.json")
    return table


def data_sample(data_type: str) -> dict[str, Any]:
    sample: dict[str, Any] = _load(f"data.{data_type}.json")
    return sample


def _retarget(node: Any, incident_ids: set[str], incident_id: str, service: dict[str, Any]) -> Any:
    """Every incident reference of the sample onto `incident_id`, every service reference onto `service`."""
    if isinstance(node, list):
        return [_retarget(item, incident_ids, incident_id, service) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "service_reference":
        return dict(service)
    moved = {key: _retarget(value, incident_ids, incident_id, service) for key, value in node.items()}
    if node.get("type") in ("incident", "incident_reference") and node.get("id") in incident_ids:
        moved["id"] = incident_id
        for key in ("self", "html_url"):
            if isinstance(moved.get(key), str):
                moved[key] = moved[key].rsplit("/", 1)[0] + "/" + incident_id
    return moved


#: The incident ids PagerDuty's samples use (they are not one incident).
SAMPLE_INCIDENT_IDS = {"PGR0VU2", "PBAZLIU", "Q0SDD3HB6SGFTI"}


def compose(
    event_type: str,
    *,
    event_id: str,
    occurred_at: datetime,
    incident_id: str,
    service_id: str,
    service_name: str,
    data_type: str | None = None,
) -> dict[str, Any]:
    """One webhook of `event_type`, composed from PagerDuty's envelope and data samples, about our incident."""
    table = {row["event_type"]: row["data_type"] for row in event_types()}
    shape = data_type or table.get(event_type, "incident")
    resource = event_type.split(".", 1)[0]
    envelope = copy.deepcopy(
        _load(
            "envelope.service.updated.json"
            if resource == "service"
            else "envelope.incident.priority_updated.json"
        )
    )
    service = {
        "html_url": f"https://acme.pagerduty.com/services/{service_id}",
        "id": service_id,
        "self": f"https://api.pagerduty.com/services/{service_id}",
        "summary": service_name,
        "type": "service_reference",
    }
    data = _retarget(data_sample(shape), SAMPLE_INCIDENT_IDS, incident_id, service)
    if shape == "service":
        data.update({"id": service_id, "summary": service_name})
    event = envelope["event"]
    event.update(
        {
            "id": event_id,
            "event_type": event_type,
            "resource_type": resource,
            "occurred_at": occurred_at.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{occurred_at.microsecond // 1000:03d}Z",
            "data": data,
        }
    )
    return envelope
