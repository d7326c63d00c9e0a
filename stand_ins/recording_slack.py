"""A recording fake of the Slack Web API, served over real HTTP on loopback.

Why a real HTTP server rather than a mocked client: the bot talks to Slack through
``slack_sdk``'s ``AsyncWebClient`` (directly and via slack-bolt), and the interesting
bugs live in the layers we would otherwise mock away -- how arguments are encoded
(JSON vs. form vs. query string), retry handlers reacting to ``429``/``5xx``, the
three-step ``files_upload_v2`` flow, ``response_url`` posts.  Pointing an unchanged
client at ``base_url=server.api_url`` exercises all of that.

Two users:

* the test suite, which asserts on :attr:`RecordingSlackServer.calls` and uses the
  ``wait_for`` helpers instead of sleeping; and
* the local console (``mira-bot console``), which runs the real bot in-process against
  this server and renders the conversation from the message store
  (:meth:`RecordingSlackServer.messages`).  That is why the store mirrors Slack's
  *state* (updates applied in place, deletions flagged, ephemerals kept apart) rather
  than just the call log.

It is as strict as Slack about size: a message, update, ephemeral, response_url answer or view that breaks a
Block Kit or message limit (the table in :mod:`bot.slack_limits`) is refused with Slack's own answer --
``invalid_blocks`` / ``invalid_attachments`` / ``invalid_arguments`` with ``response_metadata.messages``, or
``msg_too_long`` (:mod:`stand_ins.recording_slack_limits`) -- so a payload that passes here is one Slack accepts.

The pieces: the records -- calls, stored messages, file shares, faults (:mod:`stand_ins.slack_records`); the
message store, the call record and the waits on them (:mod:`stand_ins.slack_store`); fault injection and rate
limits (:mod:`stand_ins.slack_faults`); the ``chat.*`` methods (:mod:`stand_ins.slack_chat_api`) and the
``users.*`` / ``usergroups.*`` / ``conversations.*`` / ``views.*`` / ``files.*`` ones
(:mod:`stand_ins.slack_workspace_api`). This module is the server itself: its state, the routes, request parsing
and the pipeline every call goes through (faults, handler, record).

Usage::

    async with RecordingSlackServer() as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
        await client.chat_postMessage(channel="#ops", text="hi")
        [call] = await slack.wait_for("chat.postMessage", channel="#ops")
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import itertools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from stand_ins.recording_slack_limits import response_url_refusal
from stand_ins.slack_chat_api import SlackChatApi
from stand_ins.slack_faults import SlackFaults
from stand_ins.slack_records import (
    BOT_ID,
    BOT_USER_ID,
    NO_ANSWER,
    TEAM_ID,
    FileShare,
    SlackCall,
    StoredMessage,
    _BadRequest,
    _Fault,
    _maybe_json,
)
from stand_ins.slack_workspace_api import SlackWorkspaceApi

__all__ = [
    "NO_ANSWER",
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "FileShare",
    "RecordingSlackServer",
    "SlackCall",
    "StoredMessage",
]

#: Body keys that carry JSON structures; decoded even when a caller sent them as strings.
_STRUCTURED_KEYS = ("blocks", "attachments", "view", "files", "metadata")

_Handler = Callable[[dict[str, Any]], dict[str, Any]]


class RecordingSlackServer(SlackChatApi, SlackWorkspaceApi, SlackFaults):
    """Fake Slack Web API on ``127.0.0.1:<ephemeral port>`` that records every call.

    It binds port 0 so parallel test runs (and a console next to a test run) never
    collide, and it serves from the *current* event loop so tests can ``await`` both
    the bot and the server without threads.  Use it as an async context manager, or
    call :meth:`start` / :meth:`stop` explicitly.
    """

    name = "slack"

    def __init__(self) -> None:
        super().__init__()
        self._calls: list[SlackCall] = []
        self._messages: dict[tuple[str, str], StoredMessage] = {}
        self._id_counter = itertools.count(1)
        self._channel_names: dict[str, str] = {}
        self._users_by_id: dict[str, tuple[str, str | None]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._users_by_email: dict[str, str] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._held = asyncio.Event()
        self._last_us = 0
        self._rate_limits: dict[str, float] = {}
        self._last_accepted: dict[tuple[str, str], float] = {}
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        #: Raw bytes received on each upload URL, by file ID.
        self.uploaded_files: dict[str, bytes] = {}
        #: Files shared into conversations, in completion order.
        self.file_shares: list[FileShare] = []
        #: The last view opened/updated/pushed under each view ID.
        self.views: dict[str, dict[str, Any]] = {}
        #: How many calls :meth:`enforce_rate_limit` has turned away with 429.
        self.rate_limited_count = 0
        self._handlers: dict[str, _Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.info": self._conversations_info,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.join": self._conversations_info,  # same answer: the channel, now with the bot in it
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.list": self._conversations_list,
            "views.open": self._views_open,
            "views.update": self._views_open,
            "views.push": self._views_open,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api_endpoint, methods=["GET", "POST"]),
                Route("/upload/{file_id}", self._upload_endpoint, methods=["POST"]),
                Route("/response/{key}", self._response_url_endpoint, methods=["POST"]),
            ]
        )

    async def _stopping(self) -> None:
        self._held.set()  # held calls are answered so uvicorn can shut down

    # ------------------------------------------------------------------ URLs

    @property
    def api_url(self) -> str:
        """Web API root with the trailing slash ``slack_sdk`` expects for ``base_url``."""
        return self.base_url + "/api/"

    def response_url(self, key: str) -> str:
        """A ``response_url`` to put in fake slash-command/interaction payloads."""
        return self.base_url + f"/response/{key}"

    # ------------------------------------------------------------------ configuration

    def add_user(self, user_id: str, email: str, name: str | None = None) -> None:
        """Register a user so ``users.info`` / ``users.lookupByEmail`` return these details.

        Unregistered users are synthesised (``U123`` <-> ``u123@example.com``); register
        one when a test needs an email that does not follow that pattern.
        """
        self._users_by_id[user_id] = (email, name)
        self._users_by_email[email.lower()] = user_id

    def add_usergroup(self, group_id: str, users: list[str]) -> None:
        """Register a user group's members for ``usergroups.users.list`` (unknown groups have none)."""
        self._usergroups[group_id] = list(users)

    def reset(self) -> None:
        """Forget calls, messages, files and views; clear injected faults and rate limits.

        Registered users and the channel name map are configuration and are kept.
        """
        self._calls.clear()
        self._messages.clear()
        self._faults.clear()
        self._rate_limits.clear()
        self._last_accepted.clear()
        self._pending_uploads.clear()
        self.uploaded_files.clear()
        self.file_shares.clear()
        self.views.clear()
        self.rate_limited_count = 0

    # ------------------------------------------------------------------ requests

    async def _parse(self, request: Request) -> dict[str, Any]:
        """Merge query string and body (JSON, form or multipart text fields) into one dict."""
        body: dict[str, Any] = {
            k: _maybe_json(v) for k, v in parse_qsl(request.url.query, keep_blank_values=True)
        }
        if request.method != "POST":
            return body
        raw = await request.body()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            if raw.strip():
                try:
                    decoded = json.loads(raw)
                except ValueError as exc:
                    raise _BadRequest("invalid_json") from exc
                if not isinstance(decoded, dict):
                    raise _BadRequest("invalid_json")
                for key in _STRUCTURED_KEYS:
                    if key in decoded:
                        decoded[key] = _maybe_json(decoded[key])
                body.update(decoded)
        elif ctype == "multipart/form-data":
            for name, value in _multipart_fields(request.headers.get("content-type", ""), raw):
                if isinstance(value, str):
                    body[name] = _maybe_json(value)
        elif raw:
            # application/x-www-form-urlencoded (or a client that forgot the header).
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _BadRequest("invalid_form_data") from exc
            body.update({k: _maybe_json(v) for k, v in parse_qsl(text, keep_blank_values=True)})
        return body

    # ------------------------------------------------------------------ endpoints

    async def _api_endpoint(self, request: Request) -> Response:
        now = time.monotonic()
        method = request.path_params["method"]
        headers = dict(request.headers)
        try:
            body = await self._parse(request)
        except _BadRequest as bad:
            await self._record(SlackCall(method, {}, None, headers, now, 200))
            return JSONResponse({"ok": False, "error": bad.error})
        token_field = body.pop("token", None)
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        token = token or (token_field if isinstance(token_field, str) else None)

        response = self._check_faults(method, body, now)
        port = request.client.port if request.client else None
        if response is not None:
            retry_after = response.headers.get("retry-after")
            await self._record(
                SlackCall(
                    method,
                    body,
                    token,
                    headers,
                    now,
                    response.status_code,
                    None,
                    float(retry_after) if retry_after else None,
                    client_port=port,
                )
            )
            return response
        fault = self._take_fault(method)  # an accepting fault, if any: the call is carried out first
        handler = self._handlers.get(method)
        if fault is not None and fault.mode == "late":
            return await self._apply_late(method, body, token, headers, now, port, fault.delay)
        payload = handler(body) if handler else {"ok": False, "error": "unknown_method"}
        if fault is not None and fault.mode == "hang":
            release = self._held
            await self._record(
                SlackCall(method, body, token, headers, now, NO_ANSWER, payload, client_port=port)
            )
            await release.wait()
            return JSONResponse(payload)
        response = self._fault_response(fault) if fault is not None else JSONResponse(payload)
        await self._record(
            SlackCall(method, body, token, headers, now, response.status_code, payload, client_port=port)
        )
        return response

    async def _apply_late(
        self,
        method: str,
        body: dict[str, Any],
        token: str | None,
        headers: dict[str, str],
        now: float,
        port: int | None,
        delay: float,
    ) -> Response:
        call = SlackCall(method, body, token, headers, now, NO_ANSWER, None, client_port=port)
        await self._record(call)
        stopping = self._held
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=delay)  # cut short by release_held or stop
        handler = self._handlers.get(method)
        payload = handler(body) if handler else {"ok": False, "error": "unknown_method"}
        cond = self._require_cond()
        async with cond:
            call.response, call.status, call.answered_at = payload, 200, time.monotonic()
            cond.notify_all()
        return JSONResponse(payload)

    async def _upload_endpoint(self, request: Request) -> Response:
        now = time.monotonic()
        file_id = request.path_params["file_id"]
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        if ctype.lower().startswith("multipart/form-data"):
            # Some clients post the file as a multipart field instead of the raw body.
            for _name, value in _multipart_fields(ctype, raw):
                if isinstance(value, bytes):
                    raw = value
                    break
        body = {"file_id": file_id, "size": len(raw)}
        response = self._check_faults("files.upload_bytes", body, now)
        if response is None:
            if file_id not in self._pending_uploads:
                response = PlainTextResponse("file_not_found", status_code=404)
            else:
                self.uploaded_files[file_id] = raw
                response = PlainTextResponse(f"OK - {len(raw)}")
        await self._record(
            SlackCall("files.upload_bytes", body, None, dict(request.headers), now, response.status_code)
        )
        return response

    async def _response_url_endpoint(self, request: Request) -> Response:
        now = time.monotonic()
        key = request.path_params["key"]
        try:
            body = await self._parse(request)
        except _BadRequest:
            body = {}
            response: Response | None = PlainTextResponse("invalid_payload", status_code=400)
        else:
            response = None
        body["key"] = key
        response = response or self._check_faults("response_url", body, now)
        if response is None and (error := response_url_refusal(body)):
            response = PlainTextResponse(error, status_code=400)  # Slack's webhooks answer errors as text
        response = response or PlainTextResponse("ok")
        await self._record(
            SlackCall("response_url", body, None, dict(request.headers), now, response.status_code)
        )
        return response


def _multipart_fields(content_type: str, raw: bytes) -> list[tuple[str, str | bytes]]:
    """Minimal multipart/form-data reader (starlette needs python-multipart for this).

    Returns ``(name, value)`` with text for plain fields and bytes for file parts.
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: list[tuple[str, str | bytes]] = []
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        if part.get_filename() is not None:
            fields.append((str(name), payload))
        else:
            fields.append((str(name), payload.decode(part.get_content_charset() or "utf-8", "replace")))
    return fields
