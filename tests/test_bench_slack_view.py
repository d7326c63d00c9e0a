"""bench/slack_view.py reads Slack as an on-call does; these check its definitions on messages posted to the
recording Slack server, so a benchmark's "posted twice" or "represented" is the product's, not the view's."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bench.slack_view import SlackView
from stand_ins.recording_slack import RecordingSlackServer

CHANNEL = "#bench-incidents"


def _client(slack: RecordingSlackServer) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


async def test_the_storms_first_digest_and_the_incidents_later_root_are_one_root(
    slack: RecordingSlackServer,
) -> None:
    """A digest opened for one incident (the storm's first) lists it; its promotion is its one root."""
    client = _client(slack)
    await client.chat_postMessage(
        channel=CHANNEL,
        text=":rotating_light: Incident storm: 1 incidents (Bench Service)\n• [#7] Upstream down EV7K0 · triggered",
        metadata={"event_type": "mira_storm_digest", "event_payload": {"digest_id": "1"}},
    )
    root = await client.chat_postMessage(
        channel=CHANNEL,
        text="Acknowledged: [#7] Upstream down EV7K0",
        metadata={"event_type": "mira_incident_root", "event_payload": {"incident_id": "P7"}},
    )
    await client.chat_postMessage(channel=CHANNEL, thread_ts=root["ts"], text=":eyes: Acknowledged by EV7K1")
    view = SlackView(slack, {7: (CHANNEL,)})
    view.update()
    assert view.posted_twice(2) == 0
    assert view.count_represented(2) == 2


async def test_two_roots_of_one_incident_are_posted_twice(slack: RecordingSlackServer) -> None:
    client = _client(slack)
    for _ in range(2):
        await client.chat_postMessage(
            channel=CHANNEL,
            text="Triggered: [#7] Upstream down EV7K0",
            metadata={"event_type": "mira_incident_root", "event_payload": {"incident_id": "P7"}},
        )
    view = SlackView(slack, {7: (CHANNEL,)})
    view.update()
    assert view.posted_twice(1) == 1
