"""The recording PagerDuty server: its webhook echo (signed V3 webhooks to a real receiver) and its REST shapes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from bot.signing import verify_pagerduty_signature
from integrations.pagerduty import PagerDutyClient, PagerDutyError, send_event
from stand_ins.recording_pagerduty import NO_ANSWER, RecordingPagerDutyServer, oncall_entry
from tests.harness import closed_port, fake_service

TOKEN = "u+pdTESTtoken0123456789"
SECRETS = ["old-webhook-secret", "new-webhook-secret"]
ALICE = ("PUALICE", "Alice Example", "alice@example.com")
INCIDENT = "PABC123"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"

INCIDENT_DATA_FIELDS = [
    "id",
    "type",
    "self",
    "html_url",
    "number",
    "status",
    "incident_key",
    "created_at",
    "title",
    "service",
    "assignees",
    "escalation_policy",
    "teams",
    "priority",
    "urgency",
    "conference_bridge",
    "resolve_reason",
]


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """A tiny webhook receiver on loopback: keeps what arrives, answers ``status``."""

    url: str = ""
    status: int = 202
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        self.received.append(
            Received(await request.body(), {k.lower(): v for k, v in request.headers.items()})
        )
        self.arrived.set()
        return Response(status_code=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box = Receiver()
    async with fake_service({"/pagerduty/webhook": box.handle}) as url:
        box.url = url + "/pagerduty/webhook"
        yield box


@pytest.fixture
async def pd() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(token=TOKEN, page_size=2) as server:
        server.add_incident(
            INCIDENT,
            42,
            "Mira Co-Pilot error rate above SLO",
            "PSVC001",
            assignees=[ALICE],
            service_name="Mira Co-Pilot",
            incident_key="mira-copilot-errors",
            escalation_policy=("PEPMIRA", "Mira on-call"),
            teams=[("PTEAM01", "AI Platform")],
            priority=("PPRIO01", "P1"),
        )
        yield server


@pytest.fixture
async def client(pd: RecordingPagerDutyServer) -> AsyncIterator[PagerDutyClient]:
    async with PagerDutyClient(TOKEN, pd.base_url, max_wait=0.01) as pd_client:
        yield pd_client


# --------------------------------------------------------------------------------------------- webhook echo


async def test_acknowledge_echoes_a_signed_v3_webhook(
    pd: RecordingPagerDutyServer, client: PagerDutyClient, receiver: Receiver
) -> None:
    pd.send_webhooks_to(receiver.url, SECRETS)

    await client.acknowledge(INCIDENT, from_email="alice@example.com")
    [delivery] = await pd.wait_for_webhooks(1)

    [got] = receiver.received
    assert got.body == delivery.body
    # Signed like PagerDuty: one v1= per secret, so both sides of a rotation verify.
    signature = got.headers["x-pagerduty-signature"]
    assert signature.count("v1=") == 2
    assert verify_pagerduty_signature(["new-webhook-secret"], got.body, signature)
    assert verify_pagerduty_signature(["old-webhook-secret"], got.body, signature)
    assert not verify_pagerduty_signature(["some-other-secret"], got.body, signature)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-webhook-id"] == delivery.webhook_id
    assert got.headers["user-agent"] == "PagerDuty-Webhook/V3.0"

    envelope = json.loads(got.body)
    assert list(envelope) == ["event"]
    event = envelope["event"]
    assert list(event) == ["id", "event_type", "resource_type", "occurred_at", "agent", "client", "data"]
    assert event["event_type"] == "incident.acknowledged"
    assert event["resource_type"] == "incident"
    assert event["id"] == delivery.event_id
    assert event["occurred_at"].endswith("Z")
    assert event["client"] is None
    agent = event["agent"]
    assert (agent["id"], agent["type"], agent["summary"]) == ("PUALICE", "user_reference", "Alice Example")
    assert agent["html_url"] == "https://mira.pagerduty.com/users/PUALICE"

    data = event["data"]
    assert list(data) == INCIDENT_DATA_FIELDS
    assert (data["id"], data["type"], data["number"], data["status"]) == (
        INCIDENT,
        "incident",
        42,
        "acknowledged",
    )
    assert data["title"] == "Mira Co-Pilot error rate above SLO"
    assert data["incident_key"] == "mira-copilot-errors"
    assert data["html_url"] == f"https://mira.pagerduty.com/incidents/{INCIDENT}"
    assert (data["service"]["id"], data["service"]["summary"], data["service"]["type"]) == (
        "PSVC001",
        "Mira Co-Pilot",
        "service_reference",
    )
    assert [a["id"] for a in data["assignees"]] == ["PUALICE"]
    assert data["escalation_policy"]["id"] == "PEPMIRA"
    assert [t["summary"] for t in data["teams"]] == ["AI Platform"]
    assert data["priority"]["summary"] == "P1"
    assert data["urgency"] == "high"
    assert data["resolve_reason"] is None

    assert delivery.status == 202
    assert delivery.event_type == "incident.acknowledged"
    assert delivery.incident_id == INCIDENT


async def test_a_note_echoes_incident_annotated(
    pd: RecordingPagerDutyServer, client: PagerDutyClient, receiver: Receiver
) -> None:
    pd.send_webhooks_to(receiver.url, SECRETS[:1])

    note = await client.add_note(INCIDENT, from_email="alice@example.com", content="Rolling back the canary")
    [delivery] = await pd.wait_for_webhooks(1)

    event = delivery.event
    assert event["event_type"] == "incident.annotated"
    assert event["agent"]["id"] == "PUALICE"
    assert event["data"] == {
        "incident": {
            "html_url": f"https://mira.pagerduty.com/incidents/{INCIDENT}",
            "id": INCIDENT,
            "self": f"{pd.base_url}/incidents/{INCIDENT}",
            "summary": "Mira Co-Pilot error rate above SLO",
            "type": "incident_reference",
        },
        "id": note["id"],
        "content": "Rolling back the canary",
        "trimmed": False,
        "type": "incident_note",
    }
    assert verify_pagerduty_signature(SECRETS[:1], delivery.body, delivery.headers["X-PagerDuty-Signature"])


async def test_resolve_echoes_incident_resolved_after_acknowledged_in_order(
    pd: RecordingPagerDutyServer, client: PagerDutyClient, receiver: Receiver
) -> None:
    pd.send_webhooks_to(receiver.url, SECRETS)

    await client.acknowledge(INCIDENT, from_email="alice@example.com")
    await client.resolve(INCIDENT, from_email="alice@example.com", resolution="Rolled back")
    deliveries = await pd.wait_for_webhooks(2)

    assert [d.event_type for d in deliveries] == ["incident.acknowledged", "incident.resolved"]
    assert [json.loads(r.body)["event"]["event_type"] for r in receiver.received] == [
        "incident.acknowledged",
        "incident.resolved",
    ]
    resolved = deliveries[1].event["data"]
    assert resolved["status"] == "resolved"
    assert resolved["assignees"] == []  # PagerDuty clears assignments on resolve
    # Each body is a snapshot of its moment: the acknowledged one still says acknowledged.
    assert deliveries[0].event["data"]["status"] == "acknowledged"


async def test_an_unknown_from_email_gets_a_synthesized_agent(
    pd: RecordingPagerDutyServer, client: PagerDutyClient, receiver: Receiver
) -> None:
    pd.send_webhooks_to(receiver.url, SECRETS)

    await client.acknowledge(INCIDENT, from_email="bob.builder@example.com")
    [delivery] = await pd.wait_for_webhooks(1)

    agent = delivery.event["agent"]
    assert agent["type"] == "user_reference"
    assert agent["summary"] == "Bob Builder"
    assert agent["id"].startswith("P") and agent["id"] != "PUALICE"
    # The same address is the same user next time.
    await client.add_note(INCIDENT, from_email="bob.builder@example.com", content="on it")
    _, note = await pd.wait_for_webhooks(2)
    assert note.event["agent"]["id"] == agent["id"]


async def test_events_api_trigger_and_resolve_echo_webhooks(
    pd: RecordingPagerDutyServer, receiver: Receiver
) -> None:
    pd.add_routing_key(
        ROUTING_KEY, "PSVC002", "Ivy v2", assignees=[("PUBOB01", "Bob Example", "bob@example.com")]
    )
    pd.send_webhooks_to(receiver.url, SECRETS)

    await send_event(
        pd.base_url,
        routing_key=ROUTING_KEY,
        action="trigger",
        dedup_key="ivy-health",
        summary="Ivy v2 health check failing",
        severity="critical",
    )
    # A second trigger for the open alert adds to it: no new incident, no webhook.
    await send_event(
        pd.base_url,
        routing_key=ROUTING_KEY,
        action="trigger",
        dedup_key="ivy-health",
        summary="again",
    )
    await send_event(pd.base_url, routing_key=ROUTING_KEY, action="resolve", dedup_key="ivy-health")
    triggered, resolved = await pd.wait_for_webhooks(2)

    assert [triggered.event_type, resolved.event_type] == ["incident.triggered", "incident.resolved"]
    data = triggered.event["data"]
    assert list(data) == INCIDENT_DATA_FIELDS
    assert data["status"] == "triggered"
    assert data["number"] == 43  # the next number after the existing #42
    assert data["id"] != INCIDENT
    assert (data["title"], data["incident_key"], data["urgency"]) == (
        "Ivy v2 health check failing",
        "ivy-health",
        "high",
    )
    assert data["service"]["id"] == "PSVC002"
    assert [a["summary"] for a in data["assignees"]] == ["Bob Example"]
    assert triggered.event["agent"]["type"] == "service_reference"
    assert resolved.event["data"]["id"] == data["id"]
    assert len(pd.incidents()) == 2
    assert len(receiver.received) == 2


async def test_no_webhook_without_a_target_or_for_a_refused_change(
    pd: RecordingPagerDutyServer, client: PagerDutyClient, receiver: Receiver
) -> None:
    await client.acknowledge(INCIDENT, from_email="alice@example.com")  # no target yet
    pd.send_webhooks_to(receiver.url, SECRETS)
    pd.add_incident("PDONE01", 7, "Old", "PSVC001", status="resolved")
    with pytest.raises(PagerDutyError):
        await client.resolve("PDONE01", from_email="alice@example.com")
    pd.fail_next("POST", 500, count=3)
    with pytest.raises(PagerDutyError):
        await client.add_note(INCIDENT, from_email="alice@example.com", content="x")  # 500 x3, never stored

    await client.add_note(INCIDENT, from_email="alice@example.com", content="the one that counts")
    [delivery] = await pd.wait_for_webhooks(1)
    assert delivery.event["event_type"] == "incident.annotated"
    assert delivery.event["data"]["content"] == "the one that counts"
    assert len(receiver.received) == 1


async def test_the_receivers_answer_is_recorded(
    pd: RecordingPagerDutyServer, client: PagerDutyClient, receiver: Receiver
) -> None:
    receiver.status = 503
    pd.send_webhooks_to(receiver.url, SECRETS)
    await client.acknowledge(INCIDENT, from_email="alice@example.com")
    [refused] = await pd.wait_for_webhooks(1)
    assert (refused.status, refused.error) == (503, None)

    pd.send_webhooks_to(f"http://127.0.0.1:{closed_port()}/pagerduty/webhook", SECRETS)
    await client.add_note(INCIDENT, from_email="alice@example.com", content="x")
    _, unreachable = await pd.wait_for_webhooks(2)
    assert unreachable.status is None
    assert unreachable.error and "ConnectError" in unreachable.error


# ---------------------------------------------------------------------------------------------- REST shapes


async def test_a_wrong_token_is_answered_401_in_pagerdutys_shape(pd: RecordingPagerDutyServer) -> None:
    async with httpx.AsyncClient(base_url=pd.base_url, trust_env=False) as http:
        response = await http.put(
            f"/incidents/{INCIDENT}",
            json={"incident": {"type": "incident_reference", "status": "acknowledged"}},
            headers={"Authorization": "Token token=wrong", "From": "alice@example.com"},
        )
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "Authentication failed", "code": 2006}}
    assert pd.incident(INCIDENT)["status"] == "triggered"  # type: ignore[index]


async def test_writes_need_a_from_header(pd: RecordingPagerDutyServer) -> None:
    async with httpx.AsyncClient(base_url=pd.base_url, trust_env=False) as http:
        response = await http.post(
            f"/incidents/{INCIDENT}/notes",
            json={"note": {"content": "x"}},
            headers={"Authorization": f"Token token={TOKEN}"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid Input Provided"
    assert pd.notes(INCIDENT) == []


async def test_oncalls_answers_with_classic_pagination_fields(pd: RecordingPagerDutyServer) -> None:
    pd.set_oncalls(
        [oncall_entry((f"PU{n}", f"Person {n}"), schedule=("PSCHED1", "Primary")) for n in range(3)]
    )
    async with httpx.AsyncClient(base_url=pd.base_url, trust_env=False) as http:
        first = await http.get(
            "/oncalls",
            params={"limit": 100, "total": "true"},
            headers={"Authorization": f"Token token={TOKEN}"},
        )
        last = await http.get(
            "/oncalls", params={"limit": 2, "offset": 2}, headers={"Authorization": f"Token token={TOKEN}"}
        )
    page = first.json()
    assert (page["limit"], page["offset"], page["more"], page["total"]) == (2, 0, True, 3)
    assert [o["user"]["id"] for o in page["oncalls"]] == ["PU0", "PU1"]
    assert set(page["oncalls"][0]) == {
        "user",
        "schedule",
        "escalation_policy",
        "escalation_level",
        "start",
        "end",
    }
    tail = last.json()
    assert (tail["more"], tail["total"], [o["user"]["id"] for o in tail["oncalls"]]) == (False, None, ["PU2"])


async def test_faults_and_hangs_are_recorded(pd: RecordingPagerDutyServer) -> None:
    pd.fail_next("GET", 429, retry_after=3, path_prefix="/oncalls")
    pd.hang_next("PUT")
    headers = {"Authorization": f"Token token={TOKEN}", "From": "alice@example.com"}
    async with httpx.AsyncClient(base_url=pd.base_url, trust_env=False, timeout=0.5) as http:
        limited = await http.get("/oncalls", headers=headers)
        with pytest.raises(httpx.ReadTimeout):
            await http.put(f"/incidents/{INCIDENT}", json={"incident": {"type": "incident"}}, headers=headers)

    assert limited.status_code == 429
    assert limited.json() == {"error": {"message": "Rate Limit Exceeded", "code": 2020}}
    assert (limited.headers["retry-after"], limited.headers["ratelimit-reset"]) == ("3", "3")
    assert [c.status for c in pd.calls] == [429, NO_ANSWER]
    [hung] = await pd.wait_for("PUT", status=NO_ANSWER)
    assert hung.path == f"/incidents/{INCIDENT}"
