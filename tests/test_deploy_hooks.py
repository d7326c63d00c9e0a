"""The deploy-hook client against the recording deploy hook over HTTP: what is sent, how answers are read."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from integrations.deploy_hooks import DeployHookError, HookCall, trigger, where
from stand_ins.recording_hooks import RecordingHookServer
from tests.harness import closed_port

SECRET = "s3cret-for-hook-tests"


@pytest.fixture
async def hooks() -> AsyncIterator[RecordingHookServer]:
    async with RecordingHookServer() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


def _call(url: str, **changes: object) -> HookCall:
    fields: dict[str, object] = {
        "kind": "webhook",
        "url": url,
        "inputs": {"function": "agent-chat", "version": "previous"},
        "secret": SECRET,
        "idempotency_key": "rollback-7-step-2-attempt-1",
        "context": {"service": "mira-copilot", "rollback": 7, "step": 2},
        "poll_s": 0.01,
        "timeout_s": 5,
    }
    fields.update(changes)
    return HookCall(**fields)  # type: ignore[arg-type]


async def test_a_webhook_is_signed_and_carries_its_inputs_and_idempotency_key(
    hooks: RecordingHookServer, http: httpx.AsyncClient
) -> None:
    hooks.require_secret("mira", SECRET)
    result = await trigger(http, _call(hooks.url("mira")))
    [call] = hooks.calls
    assert call.signature_ok is True
    assert call.headers["idempotency-key"] == "rollback-7-step-2-attempt-1"
    assert call.body == {
        "service": "mira-copilot",
        "rollback": 7,
        "step": 2,
        "inputs": {"function": "agent-chat", "version": "previous"},
    }
    assert result.summary.endswith("/hooks/mira answered 200")


async def test_a_wrong_secret_is_rejected_by_the_receiver_and_reported(
    hooks: RecordingHookServer, http: httpx.AsyncClient
) -> None:
    hooks.require_secret("mira", "the-receivers-secret")
    with pytest.raises(DeployHookError, match="answered 401: bad signature"):
        await trigger(http, _call(hooks.url("mira")))


async def test_a_github_workflow_dispatch_sends_ref_and_inputs_with_the_token(
    hooks: RecordingHookServer, http: httpx.AsyncClient
) -> None:
    url = f"{hooks.base_url}/repos/acme/ivy/actions/workflows/deploy.yml/dispatches"
    result = await trigger(http, _call(url, kind="github_workflow", inputs={"ref": "v1.9.0", "env": "prod"}))
    [call] = hooks.calls
    assert call.body == {"ref": "v1.9.0", "inputs": {"env": "prod"}}
    assert call.headers["authorization"] == f"Bearer {SECRET}"
    assert call.headers["accept"] == "application/vnd.github+json"
    assert result.status == 204


async def test_the_status_url_is_polled_until_success_or_failure(
    hooks: RecordingHookServer, http: httpx.AsyncClient
) -> None:
    hooks.status_after("deploy", running_polls=2)
    result = await trigger(http, _call(hooks.url("x"), status_url=hooks.status_url("deploy")))
    assert "reported success after 3 poll(s)" in result.summary

    hooks.status_after("broken", running_polls=1, final="failed")
    with pytest.raises(DeployHookError, match="the deployment reported failed"):
        await trigger(http, _call(hooks.url("x"), status_url=hooks.status_url("broken")))


async def test_a_deployment_that_never_finishes_is_cut_at_its_timeout(
    hooks: RecordingHookServer, http: httpx.AsyncClient
) -> None:
    hooks.status_after("stuck", running_polls=10_000)
    call = _call(hooks.url("x"), status_url=hooks.status_url("stuck"), timeout_s=0.05)
    with pytest.raises(DeployHookError, match=r"did not finish within 0.05 s \(last status: running\)"):
        await trigger(http, call)


async def test_an_unreachable_hook_says_why_without_the_query_string(http: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hooks/mira?token=abc123"
    with pytest.raises(DeployHookError) as raised:
        await trigger(http, _call(url))
    assert "could not reach the deploy hook" in str(raised.value)
    assert "connection refused" in str(raised.value)
    assert "abc123" not in str(raised.value)


async def test_an_echoing_hooks_error_is_quoted_without_its_credentials_query_token_or_secret(
    hooks: RecordingHookServer, http: httpx.AsyncClient
) -> None:
    """A hook URL with credentials and a query token, and a receiver whose error quotes what it got (query
    string, Basic auth) and the secret it checks with: the error keeps the receiver's words, blanks each of those,
    and names the hook by scheme, host and path only."""
    user, password, token = "deployer-7f3a", "hook pass/91c2", "qtok-5d8e1b7a9c"
    url = f"http://{user}:{password.replace(' ', '%20').replace('/', '%2F')}@127.0.0.1:{hooks.port}"
    url += f"/hooks/mira?token={token}&env=prod"
    hooks.require_secret("mira", SECRET)
    hooks.fail_next(500, echo=True)
    with pytest.raises(DeployHookError) as raised:
        await trigger(http, _call(url))
    [call] = hooks.calls
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert call.headers["authorization"] == f"Basic {basic}"  # the receiver really got all of them
    message = str(raised.value)
    assert message.startswith(
        f"the deploy hook at http://127.0.0.1:{hooks.port}/hooks/mira answered 500: deploy refused POST /hooks/mira?"
    ), message
    assert "Authorization: Basic **********" in message and "checked with secret **********" in message
    for secret in (user, password, token, basic, SECRET, "prod"):
        assert secret not in message, f"{secret!r} leaked: {message}"


def test_where_shows_scheme_host_and_path_only() -> None:
    assert where("https://user:pa%40ss@hooks.example.com:8443/deploy/fa?token=abc#frag") == (
        "https://hooks.example.com:8443/deploy/fa"
    )
    assert where("http://[::1]:9000/h") == "http://[::1]:9000/h"
    assert where("https://hooks.example.com") == "https://hooks.example.com"
