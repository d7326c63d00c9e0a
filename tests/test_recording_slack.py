"""Tests for the recording Slack Web API server, driven by the real slack_sdk clients.

Everything talks to 127.0.0.1 only: the proxy variables are removed because
slack_sdk's clients pick them up (and ignore NO_PROXY), which would send loopback
traffic to a proxy.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from stand_ins.recording_slack import BOT_ID, BOT_USER_ID, RecordingSlackServer

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Deploy* finished"}}]
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(32))


@pytest.fixture
def client(slack: RecordingSlackServer) -> AsyncWebClient:
    # No retry handlers beyond the default (connection errors): a 429 surfaces as an error.
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


def http(**kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=5.0, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- basics


async def test_serves_on_loopback_ephemeral_port(slack: RecordingSlackServer) -> None:
    assert slack.base_url.startswith("http://127.0.0.1:")
    assert slack.port > 0
    assert slack.api_url == slack.base_url + "/api/"
    assert slack.response_url("k1") == slack.base_url + "/response/k1"


async def test_two_servers_get_different_ports(slack: RecordingSlackServer) -> None:
    async with RecordingSlackServer() as other:
        assert other.port != slack.port
    with pytest.raises(RuntimeError):
        _ = other.base_url  # stopped: no port any more


async def test_auth_test(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    resp = await client.auth_test()
    assert resp["user_id"] == BOT_USER_ID
    assert resp["bot_id"] == BOT_ID
    assert resp["team_id"] == "T0CONSOLE"
    [call] = slack.calls_to("auth.test")
    assert call.token == "xoxb-test"
    assert call.headers["authorization"] == "Bearer xoxb-test"


async def test_channel_ids_are_stable_and_round_trip(slack: RecordingSlackServer) -> None:
    cid = slack.channel_id("#incidents")
    assert cid == slack.channel_id("incidents")
    assert cid.startswith("C") and len(cid) == 9 and cid[1:] == cid[1:].upper()
    assert slack.channel_name(cid) == "#incidents"
    assert slack.channel_id("C0123ABCD") == "C0123ABCD"
    assert slack.channel_id("G0PRIVATE1") == "G0PRIVATE1"
    assert slack.channel_id("#other") != cid
    async with RecordingSlackServer() as other:
        assert other.channel_id("#incidents") == cid


# --------------------------------------------------------------------------- messages


async def test_post_update_and_thread_reply(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    posted = await client.chat_postMessage(channel="#incidents", text="Deploy started", blocks=BLOCKS)
    cid = slack.channel_id("#incidents")
    assert posted["ok"] is True
    assert posted["channel"] == cid
    assert posted["message"]["text"] == "Deploy started"
    assert posted["message"]["blocks"] == BLOCKS
    assert posted["message"]["user"] == BOT_USER_ID
    assert posted["message"]["bot_id"] == BOT_ID
    assert "thread_ts" not in posted["message"]
    parent_ts = posted["ts"]

    updated = await client.chat_update(channel=posted["channel"], ts=parent_ts, text="Deploy finished")
    assert (updated["ok"], updated["channel"], updated["ts"], updated["text"]) == (
        True,
        cid,
        parent_ts,
        "Deploy finished",
    )

    reply = await client.chat_postMessage(channel=cid, thread_ts=parent_ts, text="logs attached")
    assert reply["message"]["thread_ts"] == parent_ts
    assert reply["ts"] > parent_ts

    # What was recorded, as sent.
    [first, second] = slack.calls_to("chat.postMessage")
    assert first.channel == "#incidents" and first.blocks == BLOCKS and first.thread_ts is None
    assert second.channel == cid and second.thread_ts == parent_ts and second.text == "logs attached"
    assert first.status == second.status == 200
    assert first.at <= second.at
    [upd] = slack.calls_to("chat.update")
    assert upd.ts == parent_ts and upd.text == "Deploy finished"
    assert [c.method for c in slack.calls] == ["chat.postMessage", "chat.update", "chat.postMessage"]
    # Matching on channel works with either the name or the ID.
    assert len(slack.calls_to("chat.postMessage", channel=cid)) == 2
    assert len(slack.calls_to("chat.postMessage", channel="#incidents", thread_ts=parent_ts)) == 1

    # The store reflects Slack's state after the update.
    parent, child = slack.messages("#incidents")
    assert parent.ts == parent_ts and parent.text == "Deploy finished" and parent.updated == 1
    assert parent.blocks == BLOCKS  # not sent in the update, so kept
    assert parent.thread_ts is None and not parent.deleted and parent.ephemeral_to is None
    assert child.thread_ts == parent_ts and child.user == BOT_USER_ID
    assert slack.thread(cid, parent_ts) == [child]
    assert slack.messages() == [parent, child]
    assert slack.messages("#elsewhere") == []


async def test_ts_values_are_post_times_and_strictly_increase(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    before = time.time()
    tss = [(await client.chat_postMessage(channel="#a", text=str(i)))["ts"] for i in range(5)]
    after = time.time()
    assert all(re.fullmatch(r"\d{10}\.\d{6}", ts) for ts in tss)
    assert before - 0.001 <= float(tss[0]) and float(tss[-1]) <= after + 0.001  # the Unix time of the post
    assert sorted(tss, key=lambda ts: tuple(map(int, ts.split(".")))) == tss and len(set(tss)) == 5
    assert [m.ts for m in slack.messages("#a")] == tss


async def test_post_message_errors(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    with pytest.raises(SlackApiError) as missing_channel:
        await client.api_call("chat.postMessage", json={"text": "hi"})
    assert missing_channel.value.response["error"] == "channel_not_found"

    with pytest.raises(SlackApiError) as no_text:
        await client.api_call("chat.postMessage", json={"channel": "#ops"})
    assert no_text.value.response["error"] == "no_text"

    with pytest.raises(SlackApiError) as not_found:
        await client.chat_update(channel="#ops", ts="1600000000.000100", text="x")
    assert not_found.value.response["error"] == "message_not_found"

    assert [c.status for c in slack.calls] == [200, 200, 200]  # Slack errors are HTTP 200
    assert slack.messages() == []


async def test_update_needs_ts_in_that_channel(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="#one", text="hi")
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="#two", ts=posted["ts"], text="moved?")
    assert err.value.response["error"] == "message_not_found"


async def test_post_ephemeral(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    resp = await client.chat_postEphemeral(channel="#ops", user="U0ALICE01", text="only you can see this")
    assert resp["ok"] is True
    [msg] = slack.messages("#ops")
    assert msg.ts == resp["message_ts"]
    assert msg.ephemeral_to == "U0ALICE01"
    assert msg.text == "only you can see this"
    [call] = slack.calls_to("chat.postEphemeral", user="U0ALICE01")
    assert call.channel == "#ops"

    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.postEphemeral", json={"channel": "#ops", "text": "x"})
    assert err.value.response["error"] == "user_not_found"


async def test_delete_and_reactions(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    posted = await client.chat_postMessage(channel="#ops", text="oops")
    assert (await client.reactions_add(channel=posted["channel"], timestamp=posted["ts"], name="eyes"))["ok"]
    assert (await client.chat_delete(channel=posted["channel"], ts=posted["ts"]))["ok"]
    [msg] = slack.messages("#ops")
    assert msg.deleted is True
    assert msg.reactions == ["eyes"]
    # reactions.add / chat.delete are sent as query parameters by slack_sdk.
    [react] = slack.calls_to("reactions.add")
    assert react.body == {"channel": posted["channel"], "timestamp": posted["ts"], "name": "eyes"}


async def test_seeded_human_message_threads(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    question = slack.add_message("#help", "is prod down?", user="U0ALICE01")
    await client.chat_postMessage(channel="#help", thread_ts=question.ts, text="looking")
    assert [m.text for m in slack.thread("#help", question.ts)] == ["looking"]
    assert slack.calls_to("chat.postMessage")  # the seeded message was not a call
    assert len(slack.calls) == 1


# --------------------------------------------------------------------------- users, conversations, views


async def test_users_info_and_lookup_by_email_round_trip(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    info = await client.users_info(user="U0ALICE01")
    user = info["user"]
    assert user["id"] == "U0ALICE01"
    assert user["name"] == "u0alice01"
    assert user["real_name"] == "User U0ALICE01"
    assert user["tz"] == "UTC"
    assert user["profile"]["email"] == "u0alice01@example.com"

    looked_up = await client.users_lookupByEmail(email=user["profile"]["email"])
    assert looked_up["user"]["id"] == "U0ALICE01"
    assert looked_up["user"] == user

    # users.info is a GET with query parameters.
    [call] = slack.calls_to("users.info")
    assert call.body == {"user": "U0ALICE01"}
    assert call.token == "xoxb-test"


async def test_add_user_overrides_both_directions(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    slack.add_user("U0BOB0001", "bob.smith@corp.example", name="Bob Smith")
    by_email = await client.users_lookupByEmail(email="Bob.Smith@corp.example")
    assert by_email["user"]["id"] == "U0BOB0001"
    info = await client.users_info(user="U0BOB0001")
    assert info["user"]["profile"]["email"] == "bob.smith@corp.example"
    assert info["user"]["real_name"] == "Bob Smith"
    assert info["user"]["profile"]["display_name"] == "Bob Smith"


async def test_conversations_info(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    resp = await client.conversations_info(channel="#mira-oncall")
    assert resp["channel"] == {
        "id": slack.channel_id("#mira-oncall"),
        "name": "mira-oncall",
        "is_member": True,
        "is_im": False,
    }
    by_id = await client.conversations_info(channel=resp["channel"]["id"])
    assert by_id["channel"]["name"] == "mira-oncall"


async def test_views(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Ack"}, "blocks": BLOCKS}
    opened = await client.views_open(trigger_id="123.456", view=view)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["title"] == view["title"]
    updated = await client.views_update(view_id=opened["view"]["id"], view={**view, "blocks": []})
    assert updated["view"]["id"] == opened["view"]["id"]
    assert slack.views[opened["view"]["id"]]["blocks"] == []
    pushed = await client.views_push(trigger_id="123.789", view=view)
    assert pushed["view"]["id"] != opened["view"]["id"]


async def test_unknown_method_is_recorded(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.api_call("pins.add", params={"channel": "C0123ABCD", "timestamp": "1.2"})
    assert err.value.response["error"] == "unknown_method"
    [call] = slack.calls_to("pins.add")
    assert call.body == {"channel": "C0123ABCD", "timestamp": "1.2"}


# --------------------------------------------------------------------------- encodings


async def test_form_encoded_call_with_blocks(slack: RecordingSlackServer) -> None:
    async with http() as h:
        resp = await h.post(
            slack.api_url + "chat.postMessage",
            data={
                "token": "xoxb-form",
                "channel": "#ops",
                "text": "fallback",
                "blocks": json.dumps(BLOCKS),
                "unfurl_links": "false",
            },
        )
    assert resp.status_code == 200
    payload = resp.json()
    assert payload["ok"] is True and payload["message"]["blocks"] == BLOCKS
    [call] = slack.calls_to("chat.postMessage")
    assert call.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert call.token == "xoxb-form"
    assert "token" not in call.body
    assert call.blocks == BLOCKS  # decoded from the JSON string in the form
    assert call.body["unfurl_links"] == "false"  # plain strings stay strings
    [msg] = slack.messages("#ops")
    assert msg.blocks == BLOCKS


async def test_get_with_query_string_and_bad_json(slack: RecordingSlackServer) -> None:
    async with http() as h:
        got = await h.get(slack.api_url + "users.info", params={"user": "U0CAROL01", "token": "xoxb-q"})
        bad = await h.post(
            slack.api_url + "chat.postMessage",
            content=b"{not json",
            headers={"Content-Type": "application/json", "Authorization": "Bearer xoxb-test"},
        )
    assert got.json()["user"]["id"] == "U0CAROL01"
    assert slack.calls_to("users.info")[0].token == "xoxb-q"
    assert bad.status_code == 200 and bad.json() == {"ok": False, "error": "invalid_json"}
    assert len(slack.calls_to("chat.postMessage")) == 1


# --------------------------------------------------------------------------- faults and rate limits


async def test_fail_next_429_without_retry_surfaces_retry_after(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    slack.fail_next("chat.postMessage")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="#ops", text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert err.value.response["error"] == "ratelimited"
    [call] = slack.calls_to("chat.postMessage")
    assert call.status == 429
    assert slack.messages() == []
    # Only the next call failed.
    assert (await client.chat_postMessage(channel="#ops", text="hi"))["ok"]


async def test_fail_next_429_then_success_with_rate_limit_retry_handler(slack: RecordingSlackServer) -> None:
    client = AsyncWebClient(
        token="xoxb-test",
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    # Retry-After 0 keeps the handler's sleep short (it sleeps Retry-After + random()).
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    resp = await client.chat_postMessage(channel="#ops", text="eventually")
    assert resp["ok"] is True
    first, second = slack.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert first.body == second.body == {"channel": "#ops", "text": "eventually"}
    assert [m.text for m in slack.messages("#ops")] == ["eventually"]


async def test_fail_next_500_then_success_with_server_error_retry_handler(
    slack: RecordingSlackServer,
) -> None:
    client = AsyncWebClient(
        token="xoxb-test",
        base_url=slack.api_url,
        retry_handlers=[
            AsyncServerErrorRetryHandler(
                max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
            )
        ],
    )
    slack.fail_next("chat.update", status=500)
    posted = await client.chat_postMessage(channel="#ops", text="v1")
    resp = await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="v2")
    assert resp["ok"] is True
    assert [c.status for c in slack.calls_to("chat.update")] == [500, 200]
    [msg] = slack.messages("#ops")
    assert msg.text == "v2" and msg.updated == 1


async def test_fail_next_count_and_custom_error(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    slack.fail_next("users.info", status=503, count=2, error="service_unavailable")
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.users_info(user="U0ALICE01")
        assert err.value.response.status_code == 503
        assert err.value.response["error"] == "service_unavailable"
    assert (await client.users_info(user="U0ALICE01"))["ok"]
    assert [c.status for c in slack.calls_to("users.info")] == [503, 503, 200]


async def test_enforce_rate_limit_per_channel(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    slack.enforce_rate_limit("chat.postMessage", per_channel_per_second=0.5)
    assert (await client.chat_postMessage(channel="#alerts", text="1"))["ok"]
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="#alerts", text="2")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    # Another channel has its own budget; the ID form of the same channel does not.
    assert (await client.chat_postMessage(channel="#deploys", text="3"))["ok"]
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel=slack.channel_id("#alerts"), text="4")

    assert slack.rate_limited_count == 2
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [200, 429, 200, 429]
    assert [m.text for m in slack.messages()] == ["1", "3"]
    # Other methods are not limited.
    posted = slack.messages("#alerts")[0]
    assert (await client.chat_update(channel="#alerts", ts=posted.ts, text="1b"))["ok"]


async def test_enforce_rate_limit_allows_after_interval(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    slack.enforce_rate_limit(per_channel_per_second=20.0)  # one call per 50 ms
    assert (await client.chat_postMessage(channel="#alerts", text="1"))["ok"]
    await asyncio.sleep(0.08)
    assert (await client.chat_postMessage(channel="#alerts", text="2"))["ok"]
    assert slack.rate_limited_count == 0


# --------------------------------------------------------------------------- files


async def test_files_upload_v2_into_thread(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    parent = await client.chat_postMessage(channel="#incidents", text="graph incoming")
    resp = await client.files_upload_v2(
        channel=parent["channel"],
        thread_ts=parent["ts"],
        content=PNG_BYTES,
        filename="latency.png",
        title="p99 latency",
        initial_comment="last hour",
    )
    assert resp["ok"] is True
    file_id = resp["file"]["id"]
    assert file_id.startswith("F")
    assert resp["files"] == [resp["file"]]
    assert resp["file"]["title"] == "p99 latency"
    assert slack.uploaded_files[file_id] == PNG_BYTES

    [get_url] = slack.calls_to("files.getUploadURLExternal")
    assert get_url.body["filename"] == "latency.png"
    assert get_url.body["length"] == str(len(PNG_BYTES))
    [upload] = slack.calls_to("files.upload_bytes")
    assert upload.body == {"file_id": file_id, "size": len(PNG_BYTES)}
    [complete] = slack.calls_to("files.completeUploadExternal")
    assert complete.body["files"] == [{"id": file_id, "title": "p99 latency"}]  # decoded JSON
    assert complete.body["channel_id"] == parent["channel"]
    assert complete.thread_ts == parent["ts"]

    [share] = slack.file_shares
    assert (share.file_id, share.channel, share.thread_ts) == (file_id, parent["channel"], parent["ts"])
    assert share.initial_comment == "last hour" and share.size == len(PNG_BYTES)
    [in_thread] = slack.thread("#incidents", parent["ts"])
    assert in_thread.text == "last hour"
    assert [f["id"] for f in in_thread.files] == [file_id]


async def test_upload_to_unknown_file_id_is_404(slack: RecordingSlackServer) -> None:
    async with http() as h:
        resp = await h.post(slack.base_url + "/upload/F0NOPE", content=b"abc")
    assert resp.status_code == 404
    [call] = slack.calls_to("files.upload_bytes")
    assert call.status == 404 and call.body == {"file_id": "F0NOPE", "size": 3}


# --------------------------------------------------------------------------- response_url


async def test_response_url_is_recorded(slack: RecordingSlackServer) -> None:
    url = slack.response_url("cmd-42")
    webhook = AsyncWebhookClient(url)
    resp = await webhook.send(text="Working on it", response_type="ephemeral", replace_original=False)
    assert resp.status_code == 200 and resp.body == "ok"

    async with http() as h:
        raw = await h.post(url, json={"text": "done", "blocks": BLOCKS})
    assert raw.status_code == 200 and raw.text == "ok"

    first, second = slack.calls_to("response_url", key="cmd-42")
    assert first.body == {
        "text": "Working on it",
        "response_type": "ephemeral",
        "replace_original": False,
        "key": "cmd-42",
    }
    assert second.blocks == BLOCKS
    assert first.token is None


# --------------------------------------------------------------------------- waiting and reset


async def test_wait_for_wakes_on_a_later_call(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    waiter = asyncio.create_task(slack.wait_for("chat.postMessage", count=2, channel="#ops"))
    await asyncio.sleep(0)
    assert not waiter.done()
    await client.chat_postMessage(channel="#ops", text="1")
    await client.chat_postMessage(channel="#elsewhere", text="x")
    await client.chat_postMessage(channel=slack.channel_id("#ops"), text="2")
    calls = await asyncio.wait_for(waiter, 2)
    assert [c.text for c in calls] == ["1", "2"]
    # Already satisfied: returns at once.
    assert len(await slack.wait_for("chat.postMessage", count=3, timeout=0.01)) == 3


async def test_wait_for_times_out_with_what_was_received(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    await client.chat_postMessage(channel="#ops", text="hello there")
    with pytest.raises(TimeoutError) as err:
        await slack.wait_for("chat.postMessage", timeout=0.1, channel="#nowhere")
    message = str(err.value)
    assert "waiting for 1 call(s) to 'chat.postMessage'" in message
    assert "#nowhere" in message
    assert "0 matched" in message
    assert "hello there" in message  # lists what did arrive

    with pytest.raises(TimeoutError) as none_err:
        slack.reset()
        await slack.wait_for("views.open", timeout=0.05)
    assert "(none)" in str(none_err.value)


async def test_reset_forgets_state_and_faults(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    slack.enforce_rate_limit()
    await client.chat_postMessage(channel="#ops", text="1")
    slack.fail_next("auth.test", status=500)
    slack.reset()
    assert slack.calls == [] and slack.messages() == [] and slack.rate_limited_count == 0
    assert (await client.auth_test())["ok"]
    await client.chat_postMessage(channel="#ops", text="2")
    await client.chat_postMessage(channel="#ops", text="3")
    assert [c.status for c in slack.calls] == [200, 200, 200]
    assert slack.channel_name(slack.channel_id("#ops")) == "#ops"


async def test_multipart_upload_and_form_fields(slack: RecordingSlackServer) -> None:
    async with http() as h:
        url_resp = await h.post(
            slack.api_url + "files.getUploadURLExternal",
            files={"filename": (None, "a.png"), "length": (None, str(len(PNG_BYTES)))},
            headers={"Authorization": "Bearer xoxb-test"},
        )
        upload_url = url_resp.json()["upload_url"]
        up = await h.post(upload_url, files={"file": ("a.png", PNG_BYTES, "image/png")})
    assert up.status_code == 200 and up.text == f"OK - {len(PNG_BYTES)}"
    assert slack.calls_to("files.getUploadURLExternal")[0].body == {
        "filename": "a.png",
        "length": str(len(PNG_BYTES)),
    }
    assert slack.uploaded_files[url_resp.json()["file_id"]] == PNG_BYTES


async def test_stop_is_idempotent() -> None:
    server = RecordingSlackServer()
    await server.start()
    await server.stop()
    await server.stop()
    with pytest.raises(RuntimeError):
        _ = server.api_url


async def test_get_permalink_links_a_message_and_a_reply_in_its_thread(
    slack: RecordingSlackServer, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel="#alerts", text="checklist")
    reply = await client.chat_postMessage(channel="#alerts", text="reminder", thread_ts=root["ts"])
    channel = slack.channel_id("#alerts")
    link = await client.chat_getPermalink(channel=channel, message_ts=root["ts"])
    assert (
        link["permalink"] == f"https://console.slack.test/archives/{channel}/p{root['ts'].replace('.', '')}"
    )
    threaded = await client.chat_getPermalink(channel=channel, message_ts=reply["ts"])
    assert threaded["permalink"].endswith(f"?thread_ts={root['ts']}&cid={channel}")
    with pytest.raises(SlackApiError) as raised:
        await client.chat_getPermalink(channel=channel, message_ts="1.000001")
    assert raised.value.response["error"] == "message_not_found"


# --------------------------------------------------------------------------- metadata, history, replies


METADATA = {"event_type": "mira_incident_root", "event_payload": {"incident_id": "PABC123", "channel": "#a"}}


async def test_metadata_is_stored_and_returned_only_when_asked_for(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    root = await client.chat_postMessage(channel="#a", text="root", metadata=METADATA)
    assert root["message"]["metadata"] == METADATA
    cid = root["channel"]
    reply = await client.chat_postMessage(
        channel=cid,
        text="reply",
        thread_ts=root["ts"],
        metadata={"event_type": "mira_incident_reply", "event_payload": {"key": "e1"}},
    )
    await client.chat_postMessage(channel=cid, text="plain")

    history = await client.conversations_history(channel=cid)
    assert [m["text"] for m in history["messages"]] == ["plain", "root"]  # newest first, no thread replies
    assert all("metadata" not in m for m in history["messages"])
    with_metadata = await client.conversations_history(channel=cid, include_all_metadata=True)
    assert with_metadata["messages"][1]["metadata"] == METADATA

    thread = await client.conversations_replies(channel=cid, ts=root["ts"], include_all_metadata=True)
    assert [m["ts"] for m in thread["messages"]] == [root["ts"], reply["ts"]]
    assert thread["messages"][1]["metadata"]["event_payload"] == {"key": "e1"}
    bare = await client.conversations_replies(channel=cid, ts=root["ts"])
    assert all("metadata" not in m for m in bare["messages"])


async def test_invalid_metadata_is_refused(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    for metadata in ({"event_type": "x"}, {"event_payload": {}}, {"event_type": "", "event_payload": {}}):
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel="#a", text="x", metadata=metadata)
        assert raised.value.response["error"] == "invalid_metadata_format"
    assert slack.messages("#a") == []


async def test_history_oldest_latest_and_pages(client: AsyncWebClient, slack: RecordingSlackServer) -> None:
    posted = [await client.chat_postMessage(channel="#b", text=str(i)) for i in range(5)]
    cid, tss = posted[0]["channel"], [p["ts"] for p in posted]
    since = await client.conversations_history(channel=cid, oldest=tss[1])
    assert [m["ts"] for m in since["messages"]] == tss[:1:-1]  # oldest is exclusive
    inclusive = await client.conversations_history(channel=cid, oldest=tss[1], latest=tss[3], inclusive=True)
    assert [m["ts"] for m in inclusive["messages"]] == [tss[3], tss[2], tss[1]]
    first = await client.conversations_history(channel=cid, limit=2)
    assert first["has_more"] and [m["ts"] for m in first["messages"]] == [tss[4], tss[3]]
    rest = await client.conversations_history(
        channel=cid, limit=10, cursor=first["response_metadata"]["next_cursor"]
    )
    assert not rest["has_more"] and [m["ts"] for m in rest["messages"]] == [tss[2], tss[1], tss[0]]
    with pytest.raises(SlackApiError):
        await client.conversations_history(channel="#b")  # an ID is needed, as in Slack
    with pytest.raises(SlackApiError) as raised:
        await client.conversations_replies(channel=cid, ts="1.000001")
    assert raised.value.response["error"] == "thread_not_found"


async def test_conversations_list_names_the_channels_posted_to_by_name(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    await client.chat_postMessage(channel="#incidents", text="x")
    listed = await client.conversations_list(types="public_channel,private_channel")
    [channel] = listed["channels"]
    assert (channel["id"], channel["name"]) == (slack.channel_id("#incidents"), "incidents")


async def test_fail_after_accept_stores_the_message_and_answers_an_error(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    slack.fail_after_accept("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="#c", text="maybe")
    assert raised.value.response.status_code == 500
    [stored] = slack.messages("#c")
    assert stored.text == "maybe"
    await client.chat_postMessage(channel="#c", text="next")
    assert [m.text for m in slack.messages("#c")] == ["maybe", "next"]


async def test_accept_and_hang_holds_the_answer_until_released(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    slack.accept_and_hang("chat.postMessage")
    posting = asyncio.create_task(client.chat_postMessage(channel="#d", text="held"))
    [held] = await slack.wait_held(1)
    assert held.status == 0 and not held.answered
    assert [m.text for m in slack.messages("#d")] == ["held"]  # stored although unanswered
    assert not posting.done()
    slack.release_held()
    assert (await posting)["ts"] == slack.messages("#d")[0].ts


async def test_a_refused_429_records_its_retry_after(
    client: AsyncWebClient, slack: RecordingSlackServer
) -> None:
    slack.fail_next("chat.postMessage", 429, retry_after=3)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="#e", text="x")
    [call] = slack.calls_to("chat.postMessage")
    assert (call.status, call.retry_after) == (429, 3.0)


async def test_apply_late_stores_the_message_only_after_the_client_gave_up(
    slack: RecordingSlackServer,
) -> None:
    """Slack applied the post after the client's timeout: nothing is stored while the client waits, the message
    appears afterwards, with the ts of the moment it was stored."""
    impatient = AsyncWebClient(token="xoxb-test", base_url=slack.api_url, timeout=1)
    slack.apply_late("chat.postMessage", after=2.0)
    with pytest.raises(asyncio.TimeoutError):
        await impatient.chat_postMessage(channel="#late", text="late")
    assert slack.messages("#late") == []
    [call] = slack.calls_to("chat.postMessage")
    assert not call.answered
    await slack.wait_until(lambda: call.answered, timeout=10.0)
    [stored] = slack.messages("#late")
    assert stored.text == "late" and call.response is not None and call.response["ts"] == stored.ts
