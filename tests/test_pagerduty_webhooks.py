"""integrations.pagerduty_webhooks: V3 payloads (built by tests.pd_payloads) parse into the right fields, unknown
shapes parse generically, non-envelopes raise MalformedWebhook, and nothing else is ever raised."""

from __future__ import annotations

import json
import random
import types
import typing
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from integrations.pagerduty_envelope import parse_envelope
from integrations.pagerduty_webhooks import (
    EVENT_DATA_TYPES,
    INCIDENT_OBJECT_EVENTS,
    IncidentSnapshot,
    MalformedWebhook,
    Person,
    WebhookEvent,
    parse_webhook,
)
from tests import pd_payloads as pd
from tests import pd_samples

try:  # not a declared test dependency: the seeded fuzz below runs either way
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    HAVE_HYPOTHESIS = False
else:
    HAVE_HYPOTHESIS = True

OCCURRED = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
CREATED = datetime(2026, 3, 4, 5, 0, 0, tzinfo=UTC)
AGENT = ("PAGENT1", "Carol Oncall", "carol@example.com")


def full_incident(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "id": "PABC123",
        "number": 42,
        "title": "Edge function 503s",
        "status": "acknowledged",
        "urgency": "high",
        "priority": "P1",
        "service_id": "PSVC001",
        "service_name": "Mira Co-Pilot",
        "assignees": (("PUSER01", "Alice Example", "alice@example.com"), ("PUSER02", "Bob Example")),
        "escalation_policy": "AI Squad",
        "conference_url": "https://meet.example.com/mira-war-room",
        "conference_number": "+1 555-0100,,123456#",
        "created_at": CREATED,
        "incident_key": "edge-503-eu-west",
        "incident_type": "major",
    }
    args.update(overrides)
    return pd.incident(**args)


def roundtrip(event_type: str, inc: dict[str, Any] | None = None, **kwargs: Any) -> WebhookEvent:
    kwargs.setdefault("event_id", "evt-0001")
    kwargs.setdefault("occurred_at", OCCURRED)
    kwargs.setdefault("agent", AGENT)
    return parse_webhook(pd.body(pd.event(event_type, inc or full_incident(), **kwargs)))


def mutate(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> bytes:
    """`payload` with the value at `path` replaced (or the key removed when `value` is ...)."""
    node = payload
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return pd.body(payload)


# --- the documented event types -------------------------------------------------------------------------------


def test_parser_and_builder_agree_on_the_documented_event_types() -> None:
    """The parser's table is PagerDuty's "Event Types" table (../shared/specs/pagerduty/event-types.json), whole."""
    assert set(pd.INCIDENT_OBJECT_EVENT_TYPES) == INCIDENT_OBJECT_EVENTS
    assert {row["event_type"]: row["data_type"] for row in pd_samples.event_types()} == EVENT_DATA_TYPES


@pytest.mark.parametrize("event_type", sorted(pd.DOCUMENTED_EVENT_TYPES))
def test_every_documented_event_type_round_trips(event_type: str) -> None:
    event = roundtrip(event_type)
    shape = pd.DOCUMENTED_EVENT_TYPES[event_type]

    assert event.event_id == "evt-0001"
    assert event.event_type == event_type
    assert event.resource_type == event_type.split(".")[0]
    assert event.occurred_at == OCCURRED
    assert event.agent == Person("PAGENT1", "Carol Oncall", None, f"{pd.WEB_URL}/users/PAGENT1")
    assert event.raw["event"]["data"]["type"] == shape
    assert (event.incident is not None) == (shape == "incident")
    if shape.startswith("service"):
        assert event.incident_id is None
        assert event.service_id == "PSVC001"  # the service object's own id, or its reference's
    else:
        assert event.incident_id == "PABC123"
    if shape in ("incident", "incident_workflow_instance"):
        assert event.service_id == "PSVC001"
    assert (event.note is not None) == (shape == "incident_note")
    assert (event.status_update is not None) == (shape == "incident_status_update")
    assert (event.responder is not None) == (shape == "incident_responder")


@pytest.mark.parametrize("event_type", pd.INCIDENT_OBJECT_EVENT_TYPES)
def test_incident_object_events_carry_a_full_snapshot(event_type: str) -> None:
    event = roundtrip(event_type)

    assert event.incident == IncidentSnapshot(
        id="PABC123",
        number=42,
        title="Edge function 503s",
        status="acknowledged",
        urgency="high",
        priority="P1",
        service_id="PSVC001",
        service_name="Mira Co-Pilot",
        assignees=(
            Person("PUSER01", "Alice Example", None, f"{pd.WEB_URL}/users/PUSER01"),
            Person("PUSER02", "Bob Example", None, f"{pd.WEB_URL}/users/PUSER02"),
        ),
        escalation_policy="AI Squad",
        conference_url="https://meet.example.com/mira-war-room",
        conference_number="+1 555-0100,,123456#",
        html_url=f"{pd.WEB_URL}/incidents/PABC123",
        created_at=CREATED,
        incident_key="edge-503-eu-west",
        incident_type="major",
    )
    assert event.incident_id == "PABC123"
    assert event.service_id == "PSVC001"
    assert (event.note, event.status_update, event.responder, event.responder_message) == (None,) * 4


def test_annotated_gives_the_note() -> None:
    event = roundtrip("incident.annotated", content="Rolled back to v1.41 — 错误率下降 ✅")

    assert event.note == "Rolled back to v1.41 — 错误率下降 ✅"
    assert event.incident is None
    assert event.incident_id == "PABC123"
    assert event.raw["event"]["data"]["trimmed"] is False


def test_status_update_published_gives_the_message() -> None:
    event = roundtrip("incident.status_update_published", message="Mitigated; monitoring.")

    assert event.status_update == "Mitigated; monitoring."
    assert event.incident is None and event.incident_id == "PABC123"


@pytest.mark.parametrize(
    ("event_type", "state"),
    [("incident.responder.added", "pending"), ("incident.responder.replied", "accepted")],
)
def test_responder_events_give_the_responder_message_and_state(event_type: str, state: str) -> None:
    event = roundtrip(
        event_type, responder=("PUSER09", "Dana Expert", "dana@example.com"), message="Need DB eyes"
    )

    assert event.responder == Person("PUSER09", "Dana Expert", None, f"{pd.WEB_URL}/users/PUSER09")
    assert event.responder_message == "Need DB eyes"
    assert event.responder_state == state
    assert event.agent is not None and event.agent.id == "PAGENT1"
    assert event.incident is None and event.incident_id == "PABC123"


def test_conference_bridge_updated_is_by_reference_and_keeps_the_numbers_in_raw() -> None:
    event = roundtrip(
        "incident.conference_bridge.updated",
        conference_url="https://meet.example.com/new-room",
        conference_numbers=[("US", "+1 555-0199")],
    )

    assert event.incident is None and event.incident_id == "PABC123"
    data = event.raw["event"]["data"]
    assert data["conference_url"] == "https://meet.example.com/new-room"
    assert data["conference_numbers"] == [{"label": "US", "number": "+1 555-0199"}]


def test_custom_field_values_updated_gives_the_incident_id() -> None:
    event = roundtrip("incident.custom_field_values.updated", custom_fields={"region": "eu-west"})

    assert event.incident is None and event.incident_id == "PABC123"
    assert event.raw["event"]["data"]["changed_custom_fields"][0]["name"] == "region"


@pytest.mark.parametrize("event_type", ["incident.workflow.started", "incident.workflow.completed"])
def test_workflow_events_give_incident_and_service_ids(event_type: str) -> None:
    event = roundtrip(event_type, workflow="Major incident kickoff")

    assert event.incident is None
    assert (event.incident_id, event.service_id) == ("PABC123", "PSVC001")


@pytest.mark.parametrize("event_type", ["service.created", "service.updated", "service.deleted"])
def test_service_events_have_no_incident(event_type: str) -> None:
    event = roundtrip(event_type, agent=None)

    assert event.resource_type == "service"
    assert event.incident is None and event.incident_id is None
    assert event.service_id == "PSVC001"
    assert event.agent is None


def test_priority_change_and_no_priority() -> None:
    assert (
        roundtrip("incident.priority_updated", full_incident(priority="SEV-1")).incident.priority == "SEV-1"
    )  # type: ignore[union-attr]
    assert roundtrip("incident.priority_updated", full_incident(priority=None)).incident.priority is None  # type: ignore[union-attr]


def test_reassigned_to_nobody_and_no_bridge() -> None:
    snapshot = roundtrip(
        "incident.reassigned", full_incident(assignees=(), conference_url=None, conference_number=None)
    ).incident
    assert snapshot is not None
    assert snapshot.assignees == ()
    assert (snapshot.conference_url, snapshot.conference_number) == (None, None)


def test_a_hand_written_payload_in_pagerdutys_documented_shape() -> None:
    """Independent of the builder: the structure of PD's `incident.priority_updated` sample, our values."""
    payload = {
        "event": {
            "id": "01HV3Q2ZC5Y8Z9XW0NVK1S2T3U",
            "event_type": "incident.priority_updated",
            "resource_type": "incident",
            "occurred_at": "2026-01-15T09:30:12.456Z",
            "agent": {
                "html_url": "https://example.pagerduty.com/users/PXYZ001",
                "id": "PXYZ001",
                "self": "https://api.pagerduty.com/users/PXYZ001",
                "summary": "Erin Engineer",
                "type": "user_reference",
            },
            "client": {"name": "PagerDuty"},
            "data": {
                "id": "Q1W2E3R4",
                "type": "incident",
                "self": "https://api.pagerduty.com/incidents/Q1W2E3R4",
                "html_url": "https://example.pagerduty.com/incidents/Q1W2E3R4",
                "number": 7,
                "status": "triggered",
                "incident_key": "0f1e2d3c4b5a",
                "created_at": "2026-01-15T09:00:00Z",
                "title": "Ivy v2 queue backlog",
                "service": {"id": "PIVY002", "summary": "Ivy v2", "type": "service_reference"},
                "assignees": [{"id": "PXYZ002", "summary": "Frank Fixer", "type": "user_reference"}],
                "escalation_policy": {
                    "id": "PEP0001",
                    "summary": "Ivy Primary",
                    "type": "escalation_policy_reference",
                },
                "teams": [],
                "priority": {"id": "PPRI001", "summary": "P2", "type": "priority_reference"},
                "urgency": "low",
                "conference_bridge": {"conference_number": None, "conference_url": None},
                "resolve_reason": None,
            },
        }
    }
    event = parse_webhook(json.dumps(payload).encode())

    assert event.occurred_at == datetime(2026, 1, 15, 9, 30, 12, 456000, tzinfo=UTC)
    assert event.agent == Person(
        "PXYZ001", "Erin Engineer", None, "https://example.pagerduty.com/users/PXYZ001"
    )
    snapshot = event.incident
    assert snapshot is not None
    assert (snapshot.id, snapshot.number, snapshot.title, snapshot.priority) == (
        "Q1W2E3R4",
        7,
        "Ivy v2 queue backlog",
        "P2",
    )
    assert (snapshot.service_id, snapshot.service_name, snapshot.escalation_policy) == (
        "PIVY002",
        "Ivy v2",
        "Ivy Primary",
    )
    assert snapshot.assignees == (Person("PXYZ002", "Frank Fixer"),)
    assert (snapshot.conference_url, snapshot.conference_number, snapshot.incident_type) == (None, None, None)
    assert snapshot.created_at == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert event.raw == payload


# --- generic parsing and tolerance -----------------------------------------------------------------------------


def test_unknown_event_type_with_an_incident_reference() -> None:
    """Early-access shapes (incident.task.*, incident.action_invocation.*) carry `data.incident`."""
    data = {
        "id": "PTASK01",
        "type": "incident_task",
        "name": "Page the DB owner",
        "incident": pd.incident_reference(full_incident()),
        "service": {"id": "PSVC009", "type": "service_reference"},
    }
    event = roundtrip("incident.task.created", data=data)

    assert (event.event_type, event.resource_type) == ("incident.task.created", "incident")
    assert (event.incident_id, event.service_id) == ("PABC123", "PSVC009")
    assert event.incident is None and event.note is None and event.responder is None


def test_unknown_event_type_carrying_an_incident_object_gets_a_snapshot() -> None:
    event = roundtrip("incident.title_updated", full_incident(title="Edge function 503s (EU only)"))

    assert event.incident is not None and event.incident.title == "Edge function 503s (EU only)"
    assert event.incident_id == "PABC123"


def test_unknown_event_type_with_nothing_recognisable() -> None:
    event = roundtrip("pagey.ping", data={"message": "hello"}, agent=None)

    assert (event.event_type, event.resource_type) == ("pagey.ping", "pagey")
    assert (event.incident_id, event.service_id, event.incident, event.agent) == (None, None, None, None)


def test_data_type_wins_over_the_event_type_and_the_event_type_fills_in_a_missing_one() -> None:
    payload = pd.event("incident.annotated", full_incident(), content="a note")
    del payload["event"]["data"]["type"]
    assert parse_webhook(pd.body(payload)).note == "a note"

    payload = pd.event("incident.triggered", full_incident())
    del payload["event"]["data"]["type"]
    assert parse_webhook(pd.body(payload)).incident is not None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("event", "agent"), None),
        (("event", "agent"), "PAGENT1"),
        (("event", "agent"), {}),
        (("event", "client"), ...),
        (("event", "resource_type"), ...),
        (("event", "resource_type"), 7),
        (("event", "data"), None),
        (("event", "data"), ...),
        (("event", "data"), []),
        (("event", "data", "priority"), None),
        (("event", "data", "priority"), "P1"),
        (("event", "data", "service"), None),
        (("event", "data", "service"), ["PSVC001"]),
        (("event", "data", "assignees"), None),
        (("event", "data", "assignees"), [None, 3, "x", {}, {"id": None, "summary": 5}]),
        (("event", "data", "escalation_policy"), ...),
        (("event", "data", "conference_bridge"), "https://meet.example.com"),
        (("event", "data", "number"), "42"),
        (("event", "data", "number"), True),
        (("event", "data", "created_at"), "yesterday"),
        (("event", "data", "created_at"), 1767225600),
        (("event", "data", "title"), {"text": "nested"}),
        (("event", "data", "id"), None),
        (("event", "data", "incident_type"), []),
    ],
)
def test_optional_fields_missing_null_or_mistyped_read_as_none(path: tuple[str, ...], value: Any) -> None:
    payload = pd.event(
        "incident.triggered", full_incident(), event_id="evt-9", occurred_at=OCCURRED, agent=AGENT
    )

    event = parse_webhook(mutate(payload, path, value))

    assert (event.event_id, event.event_type, event.occurred_at) == ("evt-9", "incident.triggered", OCCURRED)
    assert_well_typed(event)


def test_nulls_everywhere_in_an_incident() -> None:
    data = {key: None for key in full_incident()} | {"id": "PABC123", "type": "incident"}
    event = roundtrip("incident.resolved", data=data)

    assert event.incident == IncidentSnapshot(
        "PABC123", None, None, None, None, None, None, None, (), None, None, None, None, None, None
    )
    assert event.service_id is None


def test_rest_api_assignments_are_read_when_assignees_is_absent() -> None:
    inc = full_incident()
    people = inc.pop("assignees")
    inc["assignments"] = [{"at": "2026-03-04T05:00:00Z", "assignee": p} for p in people]

    snapshot = roundtrip("incident.triggered", inc).incident
    assert snapshot is not None and [p.id for p in snapshot.assignees] == ["PUSER01", "PUSER02"]


def test_an_email_on_a_full_user_object_is_read() -> None:
    payload = pd.event("incident.triggered", full_incident(), agent=AGENT)
    payload["event"]["agent"]["email"] = "carol@example.com"
    assert parse_webhook(pd.body(payload)).agent == Person(
        "PAGENT1", "Carol Oncall", "carol@example.com", f"{pd.WEB_URL}/users/PAGENT1"
    )


def test_huge_strings_and_unicode_pass_through() -> None:
    title = "🔥 Ivy v2 — ошибка 503 — 障害 " + "x" * 1_000_000
    event = roundtrip("incident.triggered", full_incident(title=title), event_id="évt-ü-🙂")

    assert event.event_id == "évt-ü-🙂"
    assert event.incident is not None and event.incident.title == title


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-04T05:06:07.891Z", OCCURRED),
        ("2026-03-04T05:06:07.891000+00:00", OCCURRED),
        ("2026-03-04T05:06:07.891", OCCURRED),  # naive -> UTC
        ("2026-03-04T07:06:07.891+02:00", OCCURRED),  # converted to UTC
        ("2026-03-04T05:06:07.891123456Z", OCCURRED + timedelta(microseconds=123)),  # nanoseconds truncated
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    event = roundtrip("incident.triggered", occurred_at=text)

    assert event.occurred_at == expected
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_a_timestamp_beyond_utc_keeps_its_offset() -> None:
    event = roundtrip("incident.triggered", occurred_at="0001-01-01T00:00:00+01:00")
    assert event.occurred_at.tzinfo == timezone(timedelta(hours=1))


def test_events_compare_without_raw_and_are_hashable() -> None:
    one = roundtrip("incident.triggered")
    two = roundtrip("incident.triggered", client="PagerDuty")

    assert one.raw != two.raw
    assert one == two
    assert hash(one) == hash(two)


# --- not an envelope ---------------------------------------------------------------------------------------------

VALID = pd.event("incident.triggered", pd.incident(), event_id="evt-1", occurred_at=OCCURRED)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"{",
        b"\xff\xfe\xfa",  # not UTF-8
        b'{"event": {"id": "e"}',  # truncated
        b"[]",
        b'[{"event": {}}]',
        b'"event"',
        b"42",
        b"null",
        b"true",
        b"{}",
        b'{"events": {}}',
        b'{"event": null}',
        b'{"event": []}',
        b'{"event": "incident.triggered"}',
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError inside json
        b'{"event": {"id": 1' + b"0" * 5000 + b"}}",  # int beyond Python's str->int digit limit
    ],
)
def test_non_envelopes_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        parse_webhook(raw)


@pytest.mark.parametrize("key", ["id", "event_type", "occurred_at"])
@pytest.mark.parametrize("value", [..., None, "", "   ", 17, 1.5, True, [], {}, ["x"], {"id": "x"}])
def test_required_event_fields_missing_or_mistyped_are_malformed(key: str, value: Any) -> None:
    payload = json.loads(json.dumps(VALID))
    with pytest.raises(MalformedWebhook):
        parse_webhook(mutate(payload, ("event", key), value))


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", "2026-03-04T25:00:00Z", "2" * 10_000])
def test_an_unparseable_occurred_at_is_malformed(text: str) -> None:
    payload = json.loads(json.dumps(VALID))
    with pytest.raises(MalformedWebhook, match="occurred_at"):
        parse_webhook(mutate(payload, ("event", "occurred_at"), text))


@pytest.mark.parametrize("raw", [None, "text", 42, {"event": {}}])
def test_a_body_of_the_wrong_python_type_is_malformed(raw: Any) -> None:
    with pytest.raises(MalformedWebhook):
        parse_webhook(raw)


def test_malformed_webhook_is_a_value_error() -> None:
    assert issubclass(MalformedWebhook, ValueError)


# --- fuzz: arbitrary JSON anywhere -> a well-typed event or MalformedWebhook ------------------------------------


def assert_well_typed(value: Any) -> None:
    """Every field of a parsed event (and of its nested dataclasses) has its declared type."""
    if isinstance(value, tuple):
        for item in value:
            assert_well_typed(item)
        return
    hints = typing.get_type_hints(type(value))
    for f in fields(value):
        item = getattr(value, f.name)
        hint = hints[f.name]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        allowed = tuple(typing.get_origin(a) or a for a in (typing.get_args(hint) if union else (hint,)))
        assert isinstance(item, allowed), (f.name, item)
        if isinstance(item, str):
            assert item.strip(), f.name
        if isinstance(item, datetime):
            assert item.tzinfo is not None, f.name
        if isinstance(item, Person | IncidentSnapshot | tuple):
            assert_well_typed(item)


def check(raw: bytes) -> None:
    try:
        event = parse_webhook(raw)
    except MalformedWebhook:
        with pytest.raises(MalformedWebhook):
            parse_envelope(raw)
        return
    assert isinstance(event, WebhookEvent)
    assert_well_typed(event)
    assert_envelope_agrees(raw, event)


def assert_envelope_agrees(raw: bytes, event: WebhookEvent) -> None:
    """The route files a webhook by its envelope (bot/pagerduty_ingest.py); the worker acts on the full parse:
    the two must read every filed field the same way, whatever the body holds."""
    envelope = parse_envelope(raw)
    assert envelope == (
        event.event_id,
        event.event_type,
        event.occurred_at,
        envelope.shape,
        event.incident_id,
        event.service_id,
        event.service_name,
        event.incident.incident_key if event.incident else None,
    )


SAMPLES = [
    pd.event(t, full_incident(), event_id=f"evt-{t}", occurred_at=OCCURRED, agent=AGENT)
    for t in pd.DOCUMENTED_EVENT_TYPES
]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside `node`."""
    found: list[tuple[Any, ...]] = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def replace_at(payload: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of `payload` with `path` set to `value` (deleted when `value` is ...)."""
    payload = json.loads(json.dumps(payload))
    node = payload
    for key in path[:-1]:
        node = node[key]
    if value is ... and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = None if value is ... else value
    return payload


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["none", "bool", "int", "float", "str", "bigstr", "ts"] + (
        ["list", "dict"] * 2 if depth < 4 else []
    )
    kind = rng.choice(kinds)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 1, 2**31, -(2**63), 10**30, rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.0, -0.5, 1e308, 3.14, rng.random()])
    if kind == "str":
        return rng.choice(
            ["", " ", "x", "PABC123", "incident", "null", "\u0000", "é🙂\u200f", "\ud7ff", "P1"]
        )
    if kind == "bigstr":
        return rng.choice("ab🙂") * rng.randint(1_000, 50_000)
    if kind == "ts":
        return rng.choice(
            ["2026-03-04T05:06:07Z", "2026-03-04", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00Z"]
        )
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["id", "type", "summary", "name", "incident", "service", "user", "data", "event", "x", "content"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def test_the_envelope_reads_every_documented_shape_as_the_full_parse_does() -> None:
    """Our payloads of every documented event type, and PagerDuty's own samples composed into each."""
    for sample in SAMPLES:
        check(pd.body(sample))
    for row in pd_samples.event_types():
        composed = pd_samples.compose(
            row["event_type"],
            event_id=f"evt-{row['event_type']}",
            occurred_at=OCCURRED,
            incident_id="PABC123",
            service_id="PSVC001",
            service_name="Mira Co-Pilot",
        )
        check(json.dumps(composed).encode())
        assert parse_envelope(json.dumps(composed).encode()).shape == row["data_type"]


def test_seeded_fuzz_every_field_of_every_documented_shape() -> None:
    """Dependency-free: 4000 seeded cases, each replacing 1-3 fields of a real payload with arbitrary JSON."""
    rng = random.Random(20260304)
    bases = SAMPLES
    base_paths = [paths(base) for base in bases]
    for _ in range(4000):
        index = rng.randrange(len(bases))
        payload = bases[index]
        for path in rng.sample(base_paths[index], k=rng.randint(1, 3)):
            try:
                payload = replace_at(payload, path, ... if rng.random() < 0.15 else random_json(rng))
            except (KeyError, IndexError, TypeError):  # an earlier replacement removed this path
                continue
        check(pd.body(payload))


def test_seeded_fuzz_arbitrary_documents_and_bytes() -> None:
    rng = random.Random(4242)
    for _ in range(2000):
        check(json.dumps(random_json(rng)).encode())
        check(json.dumps({"event": random_json(rng)}).encode())
        check(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))


if HAVE_HYPOTHESIS:
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text()
        | st.sampled_from(["2026-03-04T05:06:07Z", "2026-03-04T05:06:07.1+05:30", "PABC123", "incident"]),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=20,
    )

    @settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_hypothesis_any_json_in_any_field(data: st.DataObject) -> None:
        base = data.draw(st.sampled_from(SAMPLES))
        payload = base
        for path in data.draw(st.lists(st.sampled_from(paths(base)), min_size=1, max_size=3)):
            try:
                payload = replace_at(payload, path, data.draw(json_values))
            except (KeyError, IndexError, TypeError):
                continue
        check(json.dumps(payload).encode())

    @settings(max_examples=500, deadline=None)
    @given(json_values)
    def test_hypothesis_any_json_document(value: Any) -> None:
        check(json.dumps(value).encode())
        check(json.dumps({"event": value}).encode())

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=256))
    def test_hypothesis_any_bytes(raw: bytes) -> None:
        check(raw)

    @settings(max_examples=300, deadline=None)
    @given(
        title=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(str.strip),
        note=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(str.strip),
    )
    def test_hypothesis_text_round_trips_exactly(title: str, note: str) -> None:
        inc = pd.incident(title=title)
        assert parse_webhook(pd.body(pd.event("incident.triggered", inc))).incident.title == title  # type: ignore[union-attr]
        assert parse_webhook(pd.body(pd.event("incident.annotated", inc, content=note))).note == note
