"""Test helpers: send signed Slack requests to a running bot, and stand up fake upstream services.

Requests are signed with `bot.signing` exactly as Slack signs them, so every test goes through the production
verification path.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.capabilities import Capabilities
from bot.catalog import Catalog
from bot.runtime import Runtime, start_runtime
from bot.server import RunningServer, start_server
from bot.settings import Settings
from bot.signing import sign_slack_request
from stand_ins.recording_slack import TEAM_ID, RecordingSlackServer

SIGNING_SECRET = "test-signing-secret-0123456789"
USER = "U0ALICE01"
CHANNEL = "C0OPS0001"


def command_body(
    slack: RecordingSlackServer,
    command: str,
    text: str = "",
    *,
    user: str = USER,
    channel: str = CHANNEL,
    response_key: str | None = None,
) -> bytes:
    """A slash command's form body as Slack sends it, answering to `slack`'s response URL."""
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "ops",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0TEST",
            "response_url": slack.response_url(response_key or uuid.uuid4().hex),
            "trigger_id": f"{int(time.time())}.test.{uuid.uuid4().hex[:8]}",
        }
    ).encode()


def block_actions_body(
    slack: RecordingSlackServer,
    message_channel: str,
    message_ts: str,
    action: dict[str, Any],
    *,
    user: str = USER,
) -> bytes:
    """An interaction (block_actions) with one element of a message, as Slack sends it."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": message_channel},
        "trigger_id": f"{int(time.time())}.test.{uuid.uuid4().hex[:8]}",
        "channel": {"id": message_channel, "name": "ops"},
        "message": {"ts": message_ts, "text": ""},
        "response_url": slack.response_url(uuid.uuid4().hex),
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def click_body(
    slack: RecordingSlackServer,
    message_channel: str,
    message_ts: str,
    action_id: str,
    value: str | None = None,
    *,
    user: str = USER,
) -> bytes:
    """A button click on a message, as Slack sends it."""
    button = {"type": "button", "action_id": action_id, "block_id": "b", "value": value}
    return block_actions_body(slack, message_channel, message_ts, button, user=user)


@dataclass
class BotUnderTest:
    runtime: Runtime
    server: RunningServer
    slack: RecordingSlackServer
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.AsyncClient(base_url=self.server.url, trust_env=False, timeout=10.0)

    async def close(self) -> None:
        await self.client.aclose()

    async def post_signed(
        self,
        body: bytes,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
    ) -> httpx.Response:
        headers = {"Content-Type": content_type, **sign_slack_request(SIGNING_SECRET, body, timestamp)}
        return await self.client.post("/slack/events", content=body, headers=headers)

    def command_body(self, command: str, text: str = "", **kwargs: Any) -> bytes:
        return command_body(self.slack, command, text, **kwargs)

    async def command(self, command: str, text: str = "", **kwargs: Any) -> httpx.Response:
        return await self.post_signed(self.command_body(command, text, **kwargs))

    async def click(
        self,
        message_channel: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
        *,
        user: str = USER,
    ) -> httpx.Response:
        return await self.post_signed(
            click_body(self.slack, message_channel, message_ts, action_id, value, user=user)
        )

    async def toggle(
        self,
        message_channel: str,
        message_ts: str,
        block_id: str,
        option_value: str,
        checked: bool,
        *,
        action_id: str = "handoff_tick",
        user: str = USER,
    ) -> httpx.Response:
        """A click on a one-option checkbox, as Slack sends it: the option is in `selected_options` when the click
        left it checked, and the list is empty when it left it unchecked."""
        option = {"text": {"type": "mrkdwn", "text": "item"}, "value": option_value}
        checkbox = {
            "type": "checkboxes",
            "action_id": action_id,
            "block_id": block_id,
            "selected_options": [option] if checked else [],
        }
        return await self.post_signed(
            block_actions_body(self.slack, message_channel, message_ts, checkbox, user=user)
        )

    async def settle(self) -> None:
        """Wait until post-ack work is done (the same signal the console waits on)."""
        assert await self.runtime.bot.background.wait_idle(15.0), "post-ack work did not finish"


@asynccontextmanager
async def running_bot(
    settings: Settings,
    catalog: Catalog,
    slack: RecordingSlackServer,
    capabilities: Capabilities | None = None,
) -> AsyncIterator[BotUnderTest]:
    """The real runtime behind a real uvicorn server on a loopback port; several on the same settings are
    replicas sharing Postgres and Redis. `capabilities` replaces the installed ones (a test registry)."""
    runtime = await start_runtime(settings, catalog, capabilities)
    server = await start_server(runtime.http_app)
    under_test = BotUnderTest(runtime=runtime, server=server, slack=slack)
    try:
        yield under_test
    finally:
        await under_test.close()
        await server.stop()
        await runtime.close()


async def finishes(awaitable: Awaitable[Any], *, within: float, what: str) -> Any:
    """A liveness guard, not a performance claim: fail (instead of hanging the suite) when something that a
    timeout must cut keeps running. `within` is many times the timeout under test, so a slow machine passes."""
    try:
        async with asyncio.timeout(within):
            return await awaitable
    except TimeoutError:
        pytest.fail(f"{what} was not cut: still running after {within} s")


def blocks_text(blocks: list[dict[str, Any]] | None) -> str:
    """All the text in a message's blocks, for assertions on what a person would read."""
    parts: list[str] = []
    for block in blocks or []:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"].get("text", ""))
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element, dict):
                text = element.get("text")
                parts.append(text.get("text", "") if isinstance(text, dict) else str(text or ""))
    return "\n".join(parts)


Handler = Callable[[Request], Awaitable[Response]]


@asynccontextmanager
async def fake_service(routes: dict[str, Handler]) -> AsyncIterator[str]:
    """A real HTTP service on a loopback port answering `routes` (path → handler); yields its base URL."""
    app = Starlette(
        routes=[Route(path, handler, methods=["GET", "POST"]) for path, handler in routes.items()]
    )
    server = await start_server(app)
    try:
        yield server.url
    finally:
        await server.stop()


def answer(payload: Any = None, status: int = 200) -> Handler:
    async def handler(request: Request) -> Response:
        if payload is None:
            return Response(status_code=status)
        return JSONResponse(payload, status_code=status)

    return handler


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never answers: the hung dependency a probe must cut at its timeout."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
