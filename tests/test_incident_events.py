"""Every PagerDuty V3 webhook sample (../shared/specs/pagerduty/, composed as its README says) through the real
route, signed, and what reached the recording Slack server: each incident event is one line in the incident's
thread in both channels, once, in its own words (issue 14: a new conference bridge, a role assigned, a workflow
started or completed; any other incident event a generic line, never silence)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from tests import pd_samples
from tests.harness import BotUnderTest

SECRET = "pd-webhook-secret-for-samples"
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
ALERTS, INCIDENTS = "#mira-copilot-alerts", "#incidents"
INCIDENT = "PSAMPLE1"
AGENT = "Tenex Engineer"  # the agent of PagerDuty's incident envelope

#: What each documented incident event type's sample says in the thread (the samples' own words and names).
EXPECTED = {
    "incident.acknowledged": f":eyes: Acknowledged by {AGENT}",
    "incident.annotated": f":memo: Note by {AGENT}: I sure am glad we are using PagerDuty!",
    "incident.conference_bridge.updated": (
        f":telephone_receiver: Conference bridge updated by {AGENT}: "
        "<https://example.com|https://example.com> · +1-555-555-5555"
    ),
    "incident.custom_field_values.updated": f":information_source: incident.custom_field_values.updated (by {AGENT})",
    "incident.delegated": f":arrows_counterclockwise: Delegated to Default by {AGENT}",
    "incident.escalated": ":arrow_up: Escalated to User 123",
    "incident.incident_type.changed": f":information_source: incident.incident_type.changed (by {AGENT})",
    "incident.priority_updated": f":arrow_up_down: Priority P1 → P1 (by {AGENT})",
    "incident.reassigned": f":arrows_counterclockwise: Reassigned to User 123 by {AGENT}",
    "incident.reopened": f":repeat: Reopened by {AGENT}",
    "incident.resolved": f":white_check_mark: Resolved by {AGENT}",
    "incident.responder.added": (
        f":sos: Maeve added as a responder by {AGENT}: Please help me make the tests pass"
    ),
    "incident.responder.replied": (
        ":speech_balloon: Maeve replied to the responder request: Please help me make the tests pass"
    ),
    "incident.role.assigned": f":bust_in_silhouette: Role Role Display Name assigned to User 1810194 (by {AGENT})",
    "incident.service_updated": f":information_source: incident.service_updated (by {AGENT})",
    "incident.status_update_published": (
        f":loudspeaker: Status update by {AGENT}: A fix for this incident is being developed"
    ),
    "incident.task.completed": f":clipboard: Task completed: A thing that needs to be done (todo) (by {AGENT})",
    "incident.task.created": f":clipboard: Task created: A thing that needs to be done (todo) (by {AGENT})",
    "incident.task.updated": f":clipboard: Task updated: A thing that needs to be done (todo) (by {AGENT})",
    "incident.unacknowledged": (
        ":warning: Unacknowledged: the acknowledgement timed out and the incident is open again"
    ),
    "incident.action_invocation.created": f":zap: Action A Helpful Action created (by {AGENT})",
    "incident.action_invocation.terminated": f":zap: Action A Helpful Action terminated (created) (by {AGENT})",
    "incident.action_invocation.updated": f":zap: Action A Helpful Action updated (created) (by {AGENT})",
    "incident.workflow.started": f":gear: Workflow A Workflow Name started (by {AGENT})",
    "incident.workflow.completed": ":gear: Workflow A Workflow Name completed",
}
#: An incident event type PagerDuty may add one day ("Additional event types may be added to this list over time").
FUTURE = "incident.summary_regenerated"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET)]})


async def send(bot: BotUnderTest, payload: dict[str, Any]) -> int:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    response = await bot.client.post(
        "/pagerduty/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Webhook-Id": payload["event"]["id"],
            **sign_pagerduty_webhook(SECRET, body),
        },
    )
    return response.status_code


def sample(event_type: str, minute: int, data_type: str | None = None) -> dict[str, Any]:
    """The sample about our incident, created at T0 (PagerDuty's is from 2020: every SLA timer would be due)."""
    payload = pd_samples.compose(
        event_type,
        event_id=f"sample-{minute:02d}-{event_type}",
        occurred_at=T0 + timedelta(minutes=minute),
        incident_id=INCIDENT,
        service_id="PSVC001",
        service_name="Mira Co-Pilot",
        data_type=data_type,
    )
    data = payload["event"]["data"]
    if data.get("type") == "incident":
        data["created_at"] = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
    return payload


async def drain(bot: BotUnderTest, now: datetime) -> None:
    worker = bot.runtime.delivery
    for _ in range(40):
        if await worker.run_once(now) == 0:
            break
    await worker.run_once(now + timedelta(seconds=10))
    await bot.settle()


def test_the_expected_lines_cover_pagerdutys_whole_table() -> None:
    """PagerDuty's table, not ours, says which incident events exist: each has its expected line here."""
    documented = {row["event_type"] for row in pd_samples.event_types()}
    assert {t for t in documented if t.startswith("incident.")} - {"incident.triggered"} == set(EXPECTED)


async def test_every_pagerduty_sample_reaches_both_threads_once_in_its_own_words(
    bot: BotUnderTest, database_url: str
) -> None:
    table = pd_samples.event_types()
    trigger = sample("incident.triggered", 0)
    assert await send(bot, trigger) == 202
    await drain(bot, T0 + timedelta(seconds=1))
    later = [
        row["event_type"]
        for row in table
        if row["event_type"].startswith("incident.") and row["event_type"] != "incident.triggered"
    ]
    # A minute apart, each delivered when it happens (PagerDuty sends them as they come).
    for minute, event_type in enumerate([*later, FUTURE], 1):
        payload = sample(event_type, minute, data_type="incident" if event_type == FUTURE else None)
        assert await send(bot, payload) == 202, event_type
        await drain(bot, T0 + timedelta(minutes=minute, seconds=1))

    wanted = [EXPECTED[t] for t in later]
    wanted.append(f":information_source: {FUTURE} (by {AGENT})")
    for channel in (ALERTS, INCIDENTS):
        posts = bot.slack.calls_to("chat.postMessage", channel=channel)
        [root] = [c for c in posts if not c.thread_ts]
        assert root.text == "Triggered: [#2] A little bump in the road (Mira Co-Pilot, high urgency)"
        thread = [c for c in posts if c.thread_ts]
        assert {c.thread_ts for c in thread} == {root.response["ts"]}
        lines = [c.text for c in thread if not c.text.startswith(("Post-mortem draft", ":memo: Post-mortem"))]
        for line in wanted:
            assert lines.count(line) == 1, f"{channel}: {line!r} reached the thread {lines.count(line)} times"
        assert len(lines) == len(wanted), f"{channel}: lines nobody expected: {set(lines) - set(wanted)}"

    # The root shows the new bridge from the bridge event on (until a later incident event carries another).
    edits = [str(c.body["attachments"]) for c in bot.slack.calls_to("chat.update")]
    assert any("https://example.com · +1-555-555-5555" in edit for edit in edits)

    # The service samples are no incident's: stored and answered 202 (PagerDuty would disable a subscription
    # that keeps getting 4xx), posted nowhere.
    before = len(bot.slack.calls_to("chat.postMessage"))
    service_types = [row["event_type"] for row in table if row["event_type"].startswith("service.")]
    for minute, event_type in enumerate(service_types, 100):
        assert await send(bot, sample(event_type, minute)) == 202
    await drain(bot, T0 + timedelta(minutes=120))
    assert len(bot.slack.calls_to("chat.postMessage")) == before
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (
            await conn.execute(
                "SELECT event_type, status FROM pd_webhooks WHERE event_type LIKE 'service.%%'"
            )
        ).fetchall()
    assert sorted(rows) == sorted((t, "ignored") for t in service_types), rows


async def test_a_bridge_url_that_could_break_out_of_a_link_is_shown_as_text(bot: BotUnderTest) -> None:
    assert await send(bot, sample("incident.triggered", 0)) == 202
    bridge = sample("incident.conference_bridge.updated", 1)
    bridge["event"]["data"]["conference_url"] = "https://evil.example/x|<!channel>"
    bridge["event"]["data"]["conference_numbers"] = [{"label": "US <@U0BOSS>", "number": "+1 555 & 0100"}]
    assert await send(bot, bridge) == 202
    await drain(bot, T0 + timedelta(minutes=2))
    [line] = [c.text for c in bot.slack.calls_to("chat.postMessage", channel=ALERTS) if c.thread_ts]
    assert line == (
        f":telephone_receiver: Conference bridge updated by {AGENT}: https://evil.example/x|&lt;!channel&gt; · "
        "US &lt;@U0BOSS&gt;: +1 555 &amp; 0100"
    )


def test_the_vendored_samples_are_pagerdutys_shared_ones() -> None:
    """tests/specs/pagerduty/ is a copy of ../shared/specs/pagerduty/ (so a clean checkout has the samples); when
    the shared folder is beside the repository, every vendored file must still be byte for byte the same."""
    shared = pd_samples.SHARED_SPECS / "pagerduty"
    if not shared.is_dir():
        pytest.skip("../shared/specs is not beside this checkout")
    vendored = sorted((pd_samples.VENDORED_SPECS / "pagerduty").iterdir())
    assert {path.name for path in vendored} >= {"event-types.json", "README.md"}
    for path in vendored:
        assert path.read_bytes() == (shared / path.name).read_bytes(), (
            f"{path.name} differs from the shared copy"
        )
    samples = {p.name for p in shared.iterdir() if p.name.startswith(("data.", "envelope.", "event-types"))}
    assert samples <= {path.name for path in vendored}, (
        "a shared sample is missing from tests/specs/pagerduty"
    )
