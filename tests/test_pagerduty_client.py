"""PagerDutyClient and send_event against the recording PagerDuty server, over real HTTP.

The official ``pagerduty`` client runs unchanged in a worker thread; what is asserted is what reached the server
(method, path, body, ``From``, ``Authorization``) and how PagerDuty's answers come back to the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from integrations.pagerduty import NO_FROM_MESSAGE, PagerDutyClient, PagerDutyError, retry_delay, send_event
from stand_ins.recording_pagerduty import NO_ANSWER, RecordingPagerDutyServer, oncall_entry
from tests.harness import closed_port, finishes

TOKEN = "u+pdTESTtoken0123456789"
ALICE = ("PUALICE", "Alice Example", "alice@example.com")
INCIDENT = "PABC123"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, like an integration key


@pytest.fixture
async def pd() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(token=TOKEN, page_size=2) as server:
        server.add_incident(INCIDENT, 42, "Mira Co-Pilot error rate above SLO", "PSVC001", assignees=[ALICE])
        yield server


@pytest.fixture
async def client(pd: RecordingPagerDutyServer) -> AsyncIterator[PagerDutyClient]:
    async with PagerDutyClient(TOKEN, pd.base_url, timeout=2.0, max_attempts=3, max_wait=0.01) as pd_client:
        yield pd_client


# ------------------------------------------------------------------------------------------- incident actions


async def test_acknowledge_sends_one_put_with_the_users_from_and_the_token(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    incident = await client.acknowledge(INCIDENT, from_email="alice@example.com")

    assert incident["id"] == INCIDENT
    assert incident["status"] == "acknowledged"
    [call] = pd.calls
    assert (call.method, call.path, call.status) == ("PUT", f"/incidents/{INCIDENT}", 200)
    assert call.body == {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    assert call.headers["from"] == "alice@example.com"
    assert call.headers["authorization"] == f"Token token={TOKEN}"
    assert call.headers["content-type"] == "application/json"
    assert call.headers["accept"] == "application/vnd.pagerduty+json;version=2"
    assert pd.incident(INCIDENT)["status"] == "acknowledged"  # type: ignore[index]


async def test_resolve_sends_the_resolution(client: PagerDutyClient, pd: RecordingPagerDutyServer) -> None:
    incident = await client.resolve(INCIDENT, from_email="alice@example.com", resolution="Rolled back v2.3.1")

    assert incident["status"] == "resolved"
    [call] = pd.calls_to("PUT", f"/incidents/{INCIDENT}")
    assert call.body == {
        "incident": {"type": "incident_reference", "status": "resolved", "resolution": "Rolled back v2.3.1"}
    }
    assert call.from_email == "alice@example.com"
    assert pd.resolution(INCIDENT) == "Rolled back v2.3.1"


async def test_resolve_without_a_resolution_sends_none(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    await client.resolve(INCIDENT, from_email="alice@example.com")

    [call] = pd.calls
    assert call.body == {"incident": {"type": "incident_reference", "status": "resolved"}}


async def test_add_note_posts_the_note(client: PagerDutyClient, pd: RecordingPagerDutyServer) -> None:
    note = await client.add_note(INCIDENT, from_email="alice@example.com", content="Rolling back the canary")

    assert note["content"] == "Rolling back the canary"
    assert note["user"]["id"] == "PUALICE"
    [call] = pd.calls
    assert (call.method, call.path, call.status) == ("POST", f"/incidents/{INCIDENT}/notes", 200)
    assert call.body == {"note": {"content": "Rolling back the canary"}}
    assert call.from_email == "alice@example.com"
    assert [n["content"] for n in pd.notes(INCIDENT)] == ["Rolling back the canary"]


async def test_default_from_is_used_when_the_user_has_no_email(pd: RecordingPagerDutyServer) -> None:
    async with PagerDutyClient(TOKEN, pd.base_url, default_from="oncall-bot@example.com") as client:
        await client.acknowledge(INCIDENT, from_email=None)
        await client.add_note(INCIDENT, from_email="alice@example.com", content="mine")

    first, second = pd.calls
    assert first.from_email == "oncall-bot@example.com"
    assert second.from_email == "alice@example.com"  # the user's own email wins over the default


@pytest.mark.parametrize("from_email", [None, "", "   "])
async def test_no_from_email_fails_without_calling_pagerduty(
    client: PagerDutyClient, pd: RecordingPagerDutyServer, from_email: str | None
) -> None:
    with pytest.raises(PagerDutyError) as caught:
        await client.acknowledge(INCIDENT, from_email=from_email)
    assert str(caught.value) == NO_FROM_MESSAGE
    with pytest.raises(PagerDutyError, match="no From email"):
        await client.add_note(INCIDENT, from_email=from_email, content="x")
    assert pd.calls == []


async def test_a_malformed_incident_id_is_refused_without_a_call(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    with pytest.raises(PagerDutyError, match="not a PagerDuty incident ID"):
        await client.acknowledge("../users/PUALICE", from_email="alice@example.com")
    assert pd.calls == []


# --------------------------------------------------------------------------------------- PagerDuty's answers


async def test_already_resolved_comes_back_in_pagerdutys_words(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    pd.add_incident("PDONE01", 7, "Old incident", "PSVC001", status="resolved")

    with pytest.raises(PagerDutyError) as caught:
        await client.resolve("PDONE01", from_email="alice@example.com")

    assert str(caught.value) == "PagerDuty answered 400: Invalid Input Provided (Incident Already Resolved)"
    assert caught.value.status == 400
    assert len(pd.calls) == 1  # a 400 is not retried


async def test_unknown_incident_is_a_404_in_pagerdutys_words(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    with pytest.raises(PagerDutyError) as caught:
        await client.acknowledge("PNOPE00", from_email="alice@example.com")
    assert str(caught.value) == "PagerDuty answered 404: Not Found (Incident Not Found)"
    assert caught.value.status == 404


async def test_a_wrong_token_is_a_401_without_the_token_in_the_message(pd: RecordingPagerDutyServer) -> None:
    wrong = "u+WRONGtoken9876543210"
    async with PagerDutyClient(wrong, pd.base_url) as client:
        with pytest.raises(PagerDutyError) as caught:
            await client.acknowledge(INCIDENT, from_email="alice@example.com")
        assert wrong not in repr(client)

    assert str(caught.value) == "PagerDuty answered 401: Authentication failed"
    assert caught.value.status == 401
    assert wrong not in str(caught.value)
    assert wrong[-4:] not in str(caught.value)  # not even the library's truncated form
    [call] = pd.calls
    assert call.status == 401


async def test_rate_limited_forever_gives_up_after_max_attempts(pd: RecordingPagerDutyServer) -> None:
    pd.fail_next("PUT", 429, retry_after=0, count=50)
    async with PagerDutyClient(TOKEN, pd.base_url, max_attempts=4, max_wait=0.01) as client:
        with pytest.raises(PagerDutyError) as caught:
            await finishes(
                client.acknowledge(INCIDENT, from_email="alice@example.com"),
                within=30,
                what="an acknowledge PagerDuty rate-limits forever",
            )

    assert str(caught.value) == "PagerDuty answered 429: Rate Limit Exceeded (gave up after 4 attempts)"
    assert caught.value.status == 429
    assert caught.value.attempts == 4
    assert [c.status for c in pd.calls_to("PUT")] == [429, 429, 429, 429]
    assert pd.incident(INCIDENT)["status"] == "triggered"  # type: ignore[index]


async def test_a_429_is_retried_after_retry_after_then_succeeds(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    pd.fail_next("PUT", 429, retry_after=0)

    incident = await client.acknowledge(INCIDENT, from_email="alice@example.com")

    assert incident["status"] == "acknowledged"
    assert [c.status for c in pd.calls_to("PUT")] == [429, 200]


async def test_server_errors_are_retried_then_reported(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    pd.fail_next("POST", 503, retry_after=0, count=10)

    with pytest.raises(PagerDutyError) as caught:
        await client.add_note(INCIDENT, from_email="alice@example.com", content="hello")

    assert str(caught.value) == "PagerDuty answered 503: Service Unavailable (gave up after 3 attempts)"
    assert len(pd.calls_to("POST")) == 3
    assert pd.notes(INCIDENT) == []


async def test_a_hung_request_is_cut_by_the_timeout(pd: RecordingPagerDutyServer) -> None:
    pd.hang_next("PUT")
    async with PagerDutyClient(TOKEN, pd.base_url, timeout=0.5, max_wait=0.01) as client:
        with pytest.raises(PagerDutyError) as caught:
            await finishes(
                client.acknowledge(INCIDENT, from_email="alice@example.com"),
                within=15,
                what="an acknowledge PagerDuty never answers",
            )

    assert str(caught.value) == "PagerDuty did not answer within 0.5 s"
    assert caught.value.status is None
    # A write that may have landed is not sent again.
    assert [c.status for c in pd.calls_to("PUT")] == [NO_ANSWER]


async def test_the_event_loop_stays_free_while_a_call_is_in_flight(pd: RecordingPagerDutyServer) -> None:
    ticks = 0
    target: int | None = None
    ticked = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if target is not None and ticks >= target:
                ticked.set()
            await asyncio.sleep(0)

    pd.hang_next("PUT")
    async with PagerDutyClient(TOKEN, pd.base_url, timeout=0.5, max_wait=0.01) as client:
        ticking = asyncio.create_task(ticker())
        call = asyncio.create_task(client.acknowledge(INCIDENT, from_email="alice@example.com"))
        try:
            # The recording server runs in this same loop: it can only receive the request if the client's
            # blocking HTTP happens off the loop.
            await pd.wait_for("PUT", status=NO_ANSWER)
            target = ticks + 50
            await finishes(ticked.wait(), within=10, what="a task ticking beside the call")
            assert not call.done()  # the call is still in flight, and the other task kept running
            with pytest.raises(PagerDutyError, match="did not answer"):
                await finishes(call, within=15, what="the hung acknowledge")
        finally:
            ticking.cancel()
            call.cancel()


async def test_connection_failures_are_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with PagerDutyClient(TOKEN, url, max_attempts=3, max_wait=0.01) as client:
        with pytest.raises(PagerDutyError) as caught:
            await finishes(
                client.acknowledge(INCIDENT, from_email="alice@example.com"),
                within=30,
                what="an acknowledge to a closed port",
            )

    assert str(caught.value) == "could not reach PagerDuty (connection refused) after 3 attempts"
    assert caught.value.attempts == 3
    assert caught.value.status is None


# ------------------------------------------------------------------------------------------------- on-calls


async def test_oncalls_reads_every_page(client: PagerDutyClient, pd: RecordingPagerDutyServer) -> None:
    entries = [
        oncall_entry(
            (f"PU{n}", f"Person {n}"), schedule=("PSCHED1", "Mira Co-Pilot primary"), escalation_level=n
        )
        for n in range(1, 6)
    ]
    other = oncall_entry(("PUOTHER", "Someone Else"), schedule=("PSCHED9", "Another team"))
    pd.set_oncalls([*entries[:2], other, *entries[2:]])

    oncalls = await client.oncalls(schedule_ids=["PSCHED1"])

    assert [o["user"]["id"] for o in oncalls] == ["PU1", "PU2", "PU3", "PU4", "PU5"]
    pages = pd.calls_to("GET", "/oncalls")
    assert len(pages) == 3  # page_size=2 on the server: 2 + 2 + 1
    assert [p.query["offset"] for p in pages] == [["0"], ["2"], ["4"]]
    assert all(p.query["schedule_ids[]"] == ["PSCHED1"] for p in pages)
    assert all(p.headers["authorization"] == f"Token token={TOKEN}" for p in pages)


async def test_oncalls_passes_policies_and_the_time_window(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    pd.set_oncalls(
        [
            oncall_entry(("PU1", "One"), escalation_policy=("PEPA", "A")),
            oncall_entry(("PU2", "Two"), escalation_policy=("PEPB", "B")),
        ]
    )

    oncalls = await client.oncalls(
        escalation_policy_ids=["PEPB"], since="2025-01-01T00:00:00Z", until="2025-01-02T00:00:00Z"
    )

    assert [o["user"]["id"] for o in oncalls] == ["PU2"]
    [call] = pd.calls
    assert call.query["escalation_policy_ids[]"] == ["PEPB"]
    assert call.query["since"] == ["2025-01-01T00:00:00Z"]
    assert call.query["until"] == ["2025-01-02T00:00:00Z"]


async def test_oncalls_errors_come_back_in_pagerdutys_words(
    client: PagerDutyClient, pd: RecordingPagerDutyServer
) -> None:
    pd.fail_next("GET", 403, path_prefix="/oncalls")

    with pytest.raises(PagerDutyError) as caught:
        await client.oncalls()
    assert str(caught.value) == "PagerDuty answered 403: Access Denied"


# ---------------------------------------------------------------------------------------------- Events API


async def test_send_event_triggers_then_resolves_an_incident(pd: RecordingPagerDutyServer) -> None:
    pd.add_routing_key(ROUTING_KEY, "PSVC002", "Ivy v2")

    result = await send_event(
        pd.base_url,
        routing_key=ROUTING_KEY,
        action="trigger",
        dedup_key="mira-health-ivy",
        summary="Ivy v2 health check failing",
        severity="critical",
        custom_details={"probe": "ivy-api"},
    )

    assert result == {"status": "success", "message": "Event processed", "dedup_key": "mira-health-ivy"}
    [call] = pd.calls
    assert (call.method, call.path, call.status) == ("POST", "/v2/enqueue", 202)
    assert call.body == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "mira-health-ivy",
        "payload": {
            "summary": "Ivy v2 health check failing",
            "source": "mira-bot",
            "severity": "critical",
            "custom_details": {"probe": "ivy-api"},
        },
    }
    [opened] = [i for i in pd.incidents() if i["incident_key"] == "mira-health-ivy"]
    assert (opened["status"], opened["service"]["id"], opened["title"]) == (
        "triggered",
        "PSVC002",
        "Ivy v2 health check failing",
    )

    resolved = await send_event(
        pd.base_url, routing_key=ROUTING_KEY, action="resolve", dedup_key="mira-health-ivy"
    )

    assert resolved["dedup_key"] == "mira-health-ivy"
    assert pd.calls[-1].body == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "mira-health-ivy",
    }
    assert pd.incident(opened["id"])["status"] == "resolved"  # type: ignore[index]


async def test_send_event_without_dedup_key_gets_one_from_pagerduty(pd: RecordingPagerDutyServer) -> None:
    result = await send_event(pd.base_url, routing_key=ROUTING_KEY, action="trigger", summary="boom")
    assert result["dedup_key"]
    assert "dedup_key" not in pd.calls[0].body


async def test_send_event_errors_are_pagerdutys_words_without_the_routing_key(
    pd: RecordingPagerDutyServer,
) -> None:
    short_key = "tooShortKey123"

    with pytest.raises(PagerDutyError) as caught:
        await send_event(pd.base_url, routing_key=short_key, action="trigger", summary="boom")

    assert str(caught.value) == (
        "PagerDuty answered 400: Event object is invalid "
        "(Length of 'routing_key' is incorrect (should be 32 characters))"
    )
    assert short_key not in str(caught.value)
    assert len(pd.calls) == 1


async def test_send_event_retries_a_throttled_event(pd: RecordingPagerDutyServer) -> None:
    pd.fail_next("POST", 429, retry_after=0, path_prefix="/v2/enqueue")

    result = await send_event(
        pd.base_url, routing_key=ROUTING_KEY, action="trigger", summary="boom", max_wait=0.01
    )

    assert result["status"] == "success"
    assert [c.status for c in pd.calls_to("POST", "/v2/enqueue")] == [429, 202]


async def test_send_event_checks_its_arguments_before_sending(pd: RecordingPagerDutyServer) -> None:
    with pytest.raises(ValueError, match="dedup_key"):
        await send_event(pd.base_url, routing_key=ROUTING_KEY, action="resolve")
    with pytest.raises(ValueError, match="action"):
        await send_event(pd.base_url, routing_key=ROUTING_KEY, action="snooze", dedup_key="x")
    assert pd.calls == []


# ------------------------------------------------------------------------------------------------ the client


def test_the_api_url_must_be_https_or_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        PagerDutyClient(TOKEN, "http://pagerduty.internal.example.com")
    client = PagerDutyClient(TOKEN, "https://api.pagerduty.com/", default_from="bot@example.com")
    assert client.base_url == "https://api.pagerduty.com"
    assert TOKEN not in repr(client)
    assert (
        repr(client)
        == "PagerDutyClient(base_url='https://api.pagerduty.com', default_from='bot@example.com')"
    )


def test_retry_delay_honours_retry_after_and_ratelimit_reset_within_the_cap() -> None:
    assert retry_delay(httpx.Headers({"Retry-After": "2"}), attempt=1) == 2.0
    assert (
        retry_delay(httpx.Headers({"ratelimit-reset": "3"}), attempt=1) == 3.0
    )  # what PagerDuty's REST API sends
    assert retry_delay(httpx.Headers({"Retry-After": "60"}), attempt=1) == 5.0  # never more than 5 s
    assert retry_delay(httpx.Headers({"ratelimit-reset": "20"}), attempt=1) == 5.0
    assert retry_delay(httpx.Headers({}), attempt=1) == 0.5  # nothing asked: backoff
    assert retry_delay(httpx.Headers({}), attempt=2) == 1.0
    assert retry_delay(httpx.Headers({}), attempt=10) == 5.0
