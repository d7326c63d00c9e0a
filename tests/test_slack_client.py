"""The bot's Slack Web API client (integrations/slack.py) against the recording Slack server over HTTP.

Connection reuse is what the ack benchmark measured (docs/PERFORMANCE.md): slack_sdk without a session opens and
closes a connection per call, which to slack.com is a TLS handshake per message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from integrations.slack import (
    SlackInvalidPayload,
    SlackNotInChannel,
    SlackRateLimited,
    SlackTokenError,
    SlackUncertain,
    build_slack_client,
    close_slack_client,
    slack_error,
)
from stand_ins.recording_slack import RecordingSlackServer


@pytest.fixture
async def slack() -> AsyncIterator[RecordingSlackServer]:
    async with RecordingSlackServer() as server:
        yield server


async def test_the_bots_client_sends_its_calls_over_one_kept_alive_connection(
    slack: RecordingSlackServer,
) -> None:
    client = build_slack_client("xoxb-test-token", slack.api_url)
    try:
        for n in range(3):
            await client.chat_postMessage(channel="#ops", text=f"message {n}")
        await client.chat_update(channel="#ops", ts=slack.calls[0].response["ts"], text="edited")  # type: ignore[index]
    finally:
        await close_slack_client(client)
    ports = {call.client_port for call in slack.calls}
    assert len(slack.calls) == 4 and len(ports) == 1
    assert client.session is not None and client.session.closed


async def test_a_client_without_a_session_opens_a_connection_per_call(slack: RecordingSlackServer) -> None:
    """What the bot did before: the control that shows the test above can fail."""
    client = AsyncWebClient(token="xoxb-test-token", base_url=slack.api_url)
    for n in range(3):
        await client.chat_postMessage(channel="#ops", text=f"message {n}")
    assert len({call.client_port for call in slack.calls}) == 3


async def test_slack_failures_are_raised_as_typed_errors(slack: RecordingSlackServer) -> None:
    """Callers catch a type, not an `error` string (STYLE.md "Typed errors from the platform's clients"); each
    typed error is still a SlackApiError with Slack's answer."""
    client = build_slack_client("xoxb-test-token", slack.api_url, blind_retries=False)
    cases: list[tuple[int, str | None, type[Exception]]] = [
        (429, None, SlackRateLimited),
        (500, None, SlackUncertain),
        (200, "not_in_channel", SlackNotInChannel),
        (200, "msg_too_long", SlackInvalidPayload),
        (200, "invalid_auth", SlackTokenError),
    ]
    try:
        for status, error, kind in cases:
            slack.fail_next("chat.postMessage", status=status, retry_after=7, error=error)
            with pytest.raises(kind) as raised:
                await client.chat_postMessage(channel="#ops", text="x")
            assert isinstance(raised.value, SlackApiError)
            assert slack_error(raised.value) is raised.value
            if isinstance(raised.value, SlackRateLimited):
                assert raised.value.retry_after == 7
            assert raised.value.refused is (status < 500)
    finally:
        await close_slack_client(client)
    plain = SlackApiError("x", raised.value.response)
    assert isinstance(slack_error(plain), SlackTokenError)
    assert slack_error(TimeoutError()) is None
