"""SupabaseSecrets against the recording Supabase server, over real HTTP with a real httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from integrations.flag_backends import FlagBackend, FlagBackendError, RateLimit, digest_of
from integrations.supabase import SupabaseSecrets, parse_retry_after
from stand_ins.recording_supabase import NO_ANSWER, RecordingSupabaseServer
from tests.harness import closed_port, silent_server

TOKEN = "sbp_0123456789abcdef0123456789abcdef01234567"
REF = "abcdefghijklmnopqrst"
FLAG = "MIRA_MODE_COMMAND_ENABLED"
PATH = f"/v1/projects/{REF}/secrets"


@pytest.fixture
async def supabase() -> AsyncIterator[RecordingSupabaseServer]:
    async with RecordingSupabaseServer(token=TOKEN) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def secrets(http: httpx.AsyncClient, supabase: RecordingSupabaseServer) -> SupabaseSecrets:
    return SupabaseSecrets(http, supabase.base_url, TOKEN, REF)


def test_digest_is_hex_sha256_of_the_value() -> None:
    # echo -n false | sha256sum
    assert digest_of("false") == "fcbcf165908dd18a9e49f7ff27810176db8e9f63b4352213741664245224f8aa"


def test_satisfies_the_backend_protocol(secrets: SupabaseSecrets) -> None:
    assert isinstance(secrets, FlagBackend)
    assert secrets.kind == "supabase_secrets"
    assert TOKEN not in repr(secrets)


async def test_set_posts_one_request_with_the_bearer_token(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    response = await secrets.set({FLAG: "false"}, actor="U0ALICE01")

    assert response.status == 201
    assert response.summary == "201 Created"
    [call] = supabase.calls
    assert (call.method, call.path, call.status) == ("POST", PATH, 201)
    assert call.body == [{"name": FLAG, "value": "false"}]
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.headers["content-type"] == "application/json"
    assert supabase.secrets(REF) == {FLAG: "false"}


async def test_several_values_go_in_one_request(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    await secrets.set({"MIRA_ROLLOUT_PERCENT": "10", "MIRA_COPILOT_ENABLED": "false"})

    [call] = supabase.calls_to("POST")
    assert call.body == [
        {"name": "MIRA_ROLLOUT_PERCENT", "value": "10"},
        {"name": "MIRA_COPILOT_ENABLED", "value": "false"},
    ]
    assert supabase.secrets(REF) == {"MIRA_ROLLOUT_PERCENT": "10", "MIRA_COPILOT_ENABLED": "false"}


async def test_read_reports_presence_and_digest_for_every_asked_name(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    await secrets.set({FLAG: "false"})

    found = await secrets.read([FLAG, "MIRA_COPILOT_ENABLED"])

    assert set(found) == {FLAG, "MIRA_COPILOT_ENABLED"}
    assert found[FLAG].present and found[FLAG].value is None
    assert found[FLAG].digest == digest_of("false")
    assert not found["MIRA_COPILOT_ENABLED"].present and found["MIRA_COPILOT_ENABLED"].digest is None
    [get] = supabase.calls_to("GET")
    assert get.path == PATH and get.body is None and get.token == TOKEN


async def test_a_change_outside_the_bot_shows_as_another_digest(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    await secrets.set({FLAG: "false"})
    supabase.set_outside(REF, FLAG, "true")

    found = await secrets.read([FLAG])

    assert found[FLAG].digest == digest_of("true") != digest_of("false")


async def test_unset_deletes_the_names_and_read_shows_them_absent(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    await secrets.set({FLAG: "false", "MIRA_ROLLOUT_PERCENT": "50"})

    response = await secrets.unset([FLAG])

    assert (response.status, response.summary) == (200, "200 OK")
    [call] = supabase.calls_to("DELETE")
    assert (call.path, call.body, call.token) == (PATH, [FLAG], TOKEN)
    found = await secrets.read([FLAG, "MIRA_ROLLOUT_PERCENT"])
    assert not found[FLAG].present
    assert found["MIRA_ROLLOUT_PERCENT"].present
    assert supabase.secrets(REF) == {"MIRA_ROLLOUT_PERCENT": "50"}


async def test_rate_limit_headers_are_parsed_on_success(
    http: httpx.AsyncClient, supabase: RecordingSupabaseServer
) -> None:
    supabase.rate_limit = 5
    secrets = SupabaseSecrets(http, supabase.base_url, TOKEN, REF)

    first = await secrets.set({FLAG: "false"})
    second = await secrets.set({FLAG: "true"})
    await secrets.read([FLAG])

    assert first.rate_limit is not None and second.rate_limit is not None
    assert (first.rate_limit.limit, first.rate_limit.remaining) == (5, 4)
    assert (second.rate_limit.limit, second.rate_limit.remaining) == (5, 3)
    assert second.rate_limit.reset_seconds is not None and 0 < second.rate_limit.reset_seconds <= 60
    assert secrets.last_rate_limit is not None and secrets.last_rate_limit.remaining == 2


async def test_wrong_token_is_a_401_in_supabase_words_without_the_token(
    http: httpx.AsyncClient, supabase: RecordingSupabaseServer
) -> None:
    wrong = "sbp_ffffffffffffffffffffffffffffffffffffffff"
    secrets = SupabaseSecrets(http, supabase.base_url, wrong, REF)

    with pytest.raises(FlagBackendError) as caught:
        await secrets.set({FLAG: "false"})

    error = caught.value
    assert str(error) == "Supabase answered 401: Unauthorized"
    assert error.status == 401 and error.retry_after is None
    assert error.rate_limit is not None and error.rate_limit.limit == 120
    assert wrong not in str(error) and wrong not in repr(error)
    assert supabase.secrets(REF) == {}


async def test_rate_limited_answer_carries_retry_after_and_the_headers(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    supabase.fail_next("POST", 429, retry_after=30)

    with pytest.raises(FlagBackendError) as caught:
        await secrets.set({FLAG: "false"})

    error = caught.value
    assert str(error) == "Supabase rate limit reached (retry in 30 s)"
    assert error.status == 429
    assert error.retry_after == 30.0
    assert isinstance(error.rate_limit, RateLimit)
    assert error.rate_limit.limit == 120 and error.rate_limit.remaining == 0
    assert error.rate_limit.reset_seconds is not None
    assert TOKEN not in str(error)
    assert supabase.calls_to("POST", status=429) and supabase.secrets(REF) == {}


async def test_the_fake_enforces_its_window(
    http: httpx.AsyncClient, supabase: RecordingSupabaseServer
) -> None:
    supabase.rate_limit = 2
    secrets = SupabaseSecrets(http, supabase.base_url, TOKEN, REF)
    await secrets.read([FLAG])
    await secrets.read([FLAG])

    with pytest.raises(FlagBackendError) as caught:
        await secrets.read([FLAG])

    assert caught.value.status == 429
    assert caught.value.rate_limit is not None and caught.value.rate_limit.remaining == 0
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 60
    assert str(caught.value).startswith("Supabase rate limit reached (retry in ")


async def test_server_error_message_is_supabase_own_words(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    supabase.fail_next("DELETE", 500, body={"message": "Failed to delete secrets"})

    with pytest.raises(FlagBackendError) as caught:
        await secrets.unset([FLAG])

    assert str(caught.value) == "Supabase answered 500: Failed to delete secrets"
    assert caught.value.status == 500 and caught.value.rate_limit is not None


async def test_non_json_error_body_is_shown_truncated(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    supabase.fail_next("GET", 502, body="<html>" + "bad gateway " * 40 + "</html>")

    with pytest.raises(FlagBackendError) as caught:
        await secrets.read([FLAG])

    message = str(caught.value)
    assert message.startswith("Supabase answered 502: <html>bad gateway")
    assert len(message) == len("Supabase answered 502: ") + 200


async def test_error_field_is_used_when_there_is_no_message(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    supabase.fail_next("POST", 503, body={"error": "project is paused"})

    with pytest.raises(FlagBackendError) as caught:
        await secrets.set({FLAG: "false"})

    assert str(caught.value) == "Supabase answered 503: project is paused"


async def test_an_answer_echoing_the_token_is_scrubbed(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    supabase.fail_next("POST", 403, body={"message": f"token {TOKEN} lacks secrets:write"})

    with pytest.raises(FlagBackendError) as caught:
        await secrets.set({FLAG: "false"})

    assert str(caught.value) == "Supabase answered 403: token *** lacks secrets:write"


async def test_reserved_names_are_refused_like_supabase_does(
    secrets: SupabaseSecrets, supabase: RecordingSupabaseServer
) -> None:
    with pytest.raises(FlagBackendError) as caught:
        await secrets.set({"SUPABASE_URL": "x"})

    assert caught.value.status == 400
    assert "SUPABASE_" in str(caught.value)


async def test_no_answer_is_a_timeout_within_the_budget(
    http: httpx.AsyncClient, supabase: RecordingSupabaseServer
) -> None:
    secrets = SupabaseSecrets(http, supabase.base_url, TOKEN, REF, timeout=0.3)
    supabase.hang_next("POST")

    with pytest.raises(FlagBackendError) as caught:
        await secrets.set({FLAG: "false"})

    assert str(caught.value) == "Supabase did not answer within 0.3 s"
    assert caught.value.status is None and caught.value.rate_limit is None
    [call] = await supabase.wait_for("POST")
    assert call.status == NO_ANSWER
    assert len(supabase.calls_to("POST")) == 1  # not retried


async def test_a_silent_server_is_cut_at_the_timeout(http: httpx.AsyncClient) -> None:
    async with silent_server() as port:
        secrets = SupabaseSecrets(http, f"http://127.0.0.1:{port}", TOKEN, REF, timeout=0.3)
        with pytest.raises(FlagBackendError) as caught:
            await secrets.read([FLAG])

    assert str(caught.value) == "Supabase did not answer within 0.3 s"


async def test_refused_connection(http: httpx.AsyncClient) -> None:
    secrets = SupabaseSecrets(http, f"http://127.0.0.1:{closed_port()}", TOKEN, REF)

    with pytest.raises(FlagBackendError) as caught:
        await secrets.set({FLAG: "false"})

    assert str(caught.value) == "could not reach Supabase (connection refused)"
    assert caught.value.status is None
    assert TOKEN not in str(caught.value)


async def test_refuses_to_send_nothing(secrets: SupabaseSecrets, supabase: RecordingSupabaseServer) -> None:
    with pytest.raises(ValueError):
        await secrets.set({})
    with pytest.raises(ValueError):
        await secrets.unset([])
    assert await secrets.read([]) == {}
    assert supabase.calls == []


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(httpx.Headers({"Retry-After": "30"})) == 30.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "Wed, 01 Jan 2025 12:00:45 GMT"}), now=now) == 45.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None
