"""The recording Slack server refuses what Slack refuses, with Slack's own error codes: one row per limit of the
Block Kit reference (bot/slack_limits.py), each checked just over the limit (refused, nothing stored) and at the
limit (accepted), through the real slack_sdk client and a response_url."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import slack_limits as L
from stand_ins.recording_slack import RecordingSlackServer


@pytest.fixture
def client(slack: RecordingSlackServer) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def section(text: str = "ok") -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}


def button(text: str = "Go", *, action_id: str = "go", value: str = "v", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": plain(text), "action_id": action_id, "value": value, **extra}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def option(text: str = "item", value: str = "v") -> dict[str, Any]:
    return {"text": mrkdwn(text), "value": value}


def checkboxes(options: list[dict[str, Any]]) -> dict[str, Any]:
    return actions({"type": "checkboxes", "action_id": "tick", "options": options})


def confirm(title: str = "Sure?", text: str = "Really?") -> dict[str, Any]:
    return {"title": plain(title), "text": plain(text), "confirm": plain("Yes"), "deny": plain("No")}


#: (limit, over it: the message's blocks, the json-pointer Slack names). Each builder takes how far over (0: at it).
BLOCK_LIMITS: list[tuple[str, Callable[[int], list[dict[str, Any]]], str]] = [
    ("50 blocks", lambda n: [section() for _ in range(L.MESSAGE_BLOCKS + n)], "/blocks"),
    ("section text 3000", lambda n: [section("x" * (L.SECTION_TEXT + n))], "/blocks/0/text/text"),
    (
        "10 fields",
        lambda n: [{"type": "section", "fields": [mrkdwn("f")] * (L.SECTION_FIELDS + n)}],
        "/blocks/0/fields",
    ),
    (
        "field text 2000",
        lambda n: [{"type": "section", "fields": [mrkdwn("f"), mrkdwn("y" * (L.FIELD_TEXT + n))]}],
        "/blocks/0/fields/1/text",
    ),
    (
        "header 150",
        lambda n: [section(), {"type": "header", "text": plain("h" * (L.HEADER_TEXT + n))}],
        "/blocks/1/text/text",
    ),
    (
        "button text 75",
        lambda n: [actions(button("b" * (L.BUTTON_TEXT + n)))],
        "/blocks/0/elements/0/text/text",
    ),
    (
        "action_id 255",
        lambda n: [actions(button(action_id="a" * (L.ACTION_ID + n)))],
        "/blocks/0/elements/0/action_id",
    ),
    ("block_id 255", lambda n: [{**section(), "block_id": "b" * (L.BLOCK_ID + n)}], "/blocks/0/block_id"),
    (
        "button value 2000",
        lambda n: [actions(button(value="v" * (L.BUTTON_VALUE + n)))],
        "/blocks/0/elements/0/value",
    ),
    (
        "context 10 elements",
        lambda n: [{"type": "context", "elements": [mrkdwn("c")] * (L.CONTEXT_ELEMENTS + n)}],
        "/blocks/0/elements",
    ),
    (
        "actions 25 elements",
        lambda n: [actions(*[button()] * (L.ACTIONS_ELEMENTS + n))],
        "/blocks/0/elements",
    ),
    (
        "checkbox 10 options",
        lambda n: [checkboxes([option()] * (L.CHECKBOX_OPTIONS + n))],
        "/blocks/0/elements/0/options",
    ),
    (
        "checkbox option text 75",
        lambda n: [checkboxes([option("o" * (L.OPTION_TEXT + n))])],
        "/blocks/0/elements/0/options/0/text/text",
    ),
    (
        "confirm title 100",
        lambda n: [actions(button(confirm=confirm(title="t" * (L.CONFIRM_TITLE + n))))],
        "/blocks/0/elements/0/confirm/title/text",
    ),
    (
        "confirm text 300",
        lambda n: [actions(button(confirm=confirm(text="t" * (L.CONFIRM_TEXT + n))))],
        "/blocks/0/elements/0/confirm/text/text",
    ),
]


def _pointer_of(exc: SlackApiError) -> list[str]:
    return list(exc.response["response_metadata"]["messages"])


@pytest.mark.parametrize(("limit", "build", "pointer"), BLOCK_LIMITS, ids=[row[0] for row in BLOCK_LIMITS])
async def test_each_block_kit_limit_is_refused_with_invalid_blocks_and_accepted_at_the_limit(
    client: AsyncWebClient,
    slack: RecordingSlackServer,
    limit: str,
    build: Callable[[int], list[dict[str, Any]]],
    pointer: str,
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="#ops", text="fallback", blocks=build(1))
    assert refused.value.response.status_code == 200  # Slack refuses with HTTP 200, ok: false
    assert refused.value.response["error"] == "invalid_blocks"
    [message] = _pointer_of(refused.value)
    assert message.startswith("[ERROR] must ") and message.endswith(f"[json-pointer:{pointer}]")
    assert slack.messages() == []  # nothing was stored

    posted = await client.chat_postMessage(channel="#ops", text="fallback", blocks=build(0))
    assert posted["ok"]
    # The same rule holds for an edit, an ephemeral and blocks inside an attachment.
    with pytest.raises(SlackApiError) as edit:
        await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="x", blocks=build(1))
    assert edit.value.response["error"] == "invalid_blocks"
    assert slack.message("#ops", posted["ts"]).updated == 0  # type: ignore[union-attr]
    with pytest.raises(SlackApiError) as ephemeral:
        await client.chat_postEphemeral(channel="#ops", user="U0ALICE01", text="x", blocks=build(1))
    assert ephemeral.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as attached:
        await client.chat_postMessage(channel="#ops", text="x", attachments=[{"blocks": build(1)}])
    assert attached.value.response["error"] == "invalid_attachments"
    assert _pointer_of(attached.value)[0].endswith(f"[json-pointer:/attachments/0{pointer}]")


async def test_text_over_40000_characters_is_msg_too_long(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="#ops", text="x" * (L.MESSAGE_TEXT + 1))
    assert refused.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as attachment:
        await client.chat_postMessage(
            channel="#ops", text="x", attachments=[{"text": "x" * (L.MESSAGE_TEXT + 1)}]
        )
    assert attachment.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as too_many:
        await client.chat_postMessage(
            channel="#ops",
            text="x",
            attachments=[{"text": "a", "fallback": "a"}] * (L.MESSAGE_ATTACHMENTS + 1),
        )
    assert too_many.value.response["error"] == "too_many_attachments"
    assert slack.messages() == []
    posted = await client.chat_postMessage(channel="#ops", text="x" * L.MESSAGE_TEXT)
    with pytest.raises(SlackApiError) as update:
        await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="y" * (L.MESSAGE_TEXT + 1))
    assert update.value.response["error"] == "msg_too_long"


async def test_a_response_url_refuses_what_chat_post_message_refuses(slack: RecordingSlackServer) -> None:
    url = slack.response_url("cmd-1")
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
        too_long = await http.post(url, json={"text": "x" * (L.MESSAGE_TEXT + 1)})
        bad_blocks = await http.post(url, json={"text": "x", "blocks": [section("x" * (L.SECTION_TEXT + 1))]})
        fine = await http.post(url, json={"text": "x", "blocks": [section("x" * L.SECTION_TEXT)]})
    assert (too_long.status_code, too_long.text) == (400, "msg_too_long")
    assert (bad_blocks.status_code, bad_blocks.text) == (400, "invalid_blocks")
    assert (fine.status_code, fine.text) == (200, "ok")


def modal(**changes: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "note",
        "title": plain("Add a note"),
        "submit": plain("Add"),
        "close": plain("Cancel"),
        "private_metadata": "PABC123",
        "blocks": [section()],
    }
    view.update(changes)
    return view


#: (limit, the view's changes just over it, the json-pointer).
VIEW_LIMITS: list[tuple[str, Callable[[int], dict[str, Any]], str]] = [
    ("100 blocks", lambda n: {"blocks": [section()] * (L.MODAL_BLOCKS + n)}, "/view/blocks"),
    ("title 24", lambda n: {"title": plain("t" * (L.MODAL_TITLE + n))}, "/view/title/text"),
    ("submit 24", lambda n: {"submit": plain("s" * (L.MODAL_SUBMIT + n))}, "/view/submit/text"),
    ("close 24", lambda n: {"close": plain("c" * (L.MODAL_CLOSE + n))}, "/view/close/text"),
    (
        "private_metadata 3000",
        lambda n: {"private_metadata": "m" * (L.PRIVATE_METADATA + n)},
        "/view/private_metadata",
    ),
    (
        "section text in a modal",
        lambda n: {"blocks": [section("x" * (L.SECTION_TEXT + n))]},
        "/view/blocks/0/text/text",
    ),
]


@pytest.mark.parametrize(("limit", "change", "pointer"), VIEW_LIMITS, ids=[row[0] for row in VIEW_LIMITS])
async def test_each_view_limit_is_refused_with_invalid_arguments(
    client: AsyncWebClient,
    slack: RecordingSlackServer,
    limit: str,
    change: Callable[[int], dict[str, Any]],
    pointer: str,
) -> None:
    for method in (client.views_open, client.views_push):
        with pytest.raises(SlackApiError) as refused:
            await method(trigger_id="1.2", view=modal(**change(1)))
        assert refused.value.response["error"] == "invalid_arguments"
        [message] = _pointer_of(refused.value)
        assert message.endswith(f"[json-pointer:{pointer}]")
    assert slack.views == {}
    opened = await client.views_open(trigger_id="1.2", view=modal(**change(0)))
    with pytest.raises(SlackApiError) as update:
        await client.views_update(view_id=opened["view"]["id"], view=modal(**change(1)))
    assert update.value.response["error"] == "invalid_arguments"
