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
import hashlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from stand_ins.recording_base import RecordingServer
from stand_ins.recording_slack_limits import message_refusal, response_url_refusal, view_refusal

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

#: ``status`` of a call that :meth:`RecordingSlackServer.accept_and_hang` held without answering.
NO_ANSWER = 0

TEAM_ID = "T0CONSOLE"
BOT_USER_ID = "U0MIRABOT"
BOT_ID = "B0MIRABOT"

#: Something that already is a conversation ID (public/private channel, DM) is kept as is.
_CONVERSATION_ID_RE = re.compile(r"^[CGD][A-Z0-9]{6,}$")
#: Slack lets ``chat.postMessage`` target a user ID and answers with the DM's ``D…`` ID.
_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{6,}$")

#: Body keys that carry JSON structures; decoded even when a caller sent them as strings.
_STRUCTURED_KEYS = ("blocks", "attachments", "view", "files", "metadata")

_Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class SlackCall:
    """One HTTP request the server received, as the bot sent it.

    ``body`` merges the query string and the request body (JSON or form) with
    JSON-encoded form values (``blocks``, ``attachments``, ``view``…) decoded, so tests
    can assert on structure regardless of how ``slack_sdk`` chose to encode a method.
    ``status`` is the HTTP status we answered with (``429`` for injected or enforced
    rate limits), so retries show up as separate calls.
    """

    method: str
    body: dict[str, Any]
    token: str | None
    headers: dict[str, str]
    at: float
    status: int = 200
    response: dict[str, Any] | None = None  # the JSON we answered, e.g. the ts Slack gave a posted message
    retry_after: float | None = None  # the Retry-After we answered a 429 with
    answered_at: float | None = None  # time.monotonic() when the answer left (None while held)
    client_port: int | None = None  # the caller's TCP port: calls on one kept-alive connection share it

    @property
    def answered(self) -> bool:
        """False for a call held by :meth:`RecordingSlackServer.accept_and_hang` (the client never got an answer)."""
        return self.status != NO_ANSWER

    @property
    def channel(self) -> Any:
        return self.body.get("channel")

    @property
    def text(self) -> Any:
        return self.body.get("text")

    @property
    def blocks(self) -> Any:
        return self.body.get("blocks")

    @property
    def thread_ts(self) -> Any:
        return self.body.get("thread_ts")

    @property
    def ts(self) -> Any:
        return self.body.get("ts")


@dataclass
class StoredMessage:
    """A message as Slack would now show it (after updates, deletions, reactions).

    ``channel`` is always the resolved conversation ID.  ``ephemeral_to`` is set for
    ``chat.postEphemeral`` messages (only that user sees them); ``updated`` counts the
    ``chat.update`` calls applied.  The console renders from these objects.
    """

    channel: str
    ts: str
    thread_ts: str | None
    text: str | None
    blocks: list[Any] | None
    user: str
    ephemeral_to: str | None = None
    updated: int = 0
    deleted: bool = False
    attachments: list[Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None


@dataclass
class FileShare:
    """A file shared into a conversation by ``files.completeUploadExternal``."""

    file_id: str
    title: str | None
    filename: str | None
    size: int | None
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None


@dataclass
class _Fault:
    status: int
    retry_after: int
    remaining: int
    error: str | None
    #: refuse: answer ``status`` without doing anything; accept: do the call, then answer ``status`` anyway
    #: (Slack stored the message but the client sees a failure); hang: do the call and never answer; late: say
    #: nothing for ``delay`` seconds, then do the call and answer (Slack applied it after the client gave up).
    mode: str = "refuse"
    delay: float = 0.0


class _BadRequest(Exception):
    """The request body could not be parsed; answered as Slack would (ok=false)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _ts_key(ts: str) -> tuple[int, int]:
    sec, _, frac = ts.partition(".")
    try:
        return int(sec), int((frac + "000000")[:6])
    except ValueError:
        return 0, 0


def _maybe_json(value: Any) -> Any:
    """Decode a string holding a JSON array/object; anything else is returned as is."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                return json.loads(stripped)
            except ValueError:
                return value
    return value


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != []


class RecordingSlackServer(RecordingServer):
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

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        count: int = 1,
        error: str | None = None,
    ) -> None:
        """Make the next ``count`` calls to ``method`` fail with HTTP ``status``.

        ``429`` carries ``Retry-After: retry_after`` and ``{"ok": false, "error":
        "ratelimited"}``; other statuses answer ``error`` (default ``internal_error``).
        ``method`` may also be ``"files.upload_bytes"`` or ``"response_url"``.
        The failed calls are still recorded, with their status.
        """
        self._faults.setdefault(method, []).append(
            _Fault(status=status, retry_after=retry_after, remaining=count, error=error)
        )

    def fail_after_accept(
        self, method: str, status: int = 500, count: int = 1, error: str | None = None
    ) -> None:
        """The next ``count`` calls to ``method`` are carried out (a message is stored) and then answered with
        HTTP ``status`` anyway: the client cannot tell that Slack applied them, as after a timeout."""
        self._faults.setdefault(method, []).append(
            _Fault(status=status, retry_after=1, remaining=count, error=error, mode="accept")
        )

    def accept_and_hang(self, method: str, count: int = 1) -> None:
        """The next ``count`` calls to ``method`` are carried out and never answered (until
        :meth:`release_held` or :meth:`stop`): the moment after Slack accepted a post and before the poster got
        the ``ts`` — where a process killed now leaves a posted message it never recorded. Held calls are
        recorded with status :data:`NO_ANSWER`; :meth:`wait_held` waits for them."""
        self._faults.setdefault(method, []).append(
            _Fault(status=NO_ANSWER, retry_after=1, remaining=count, error=None, mode="hang")
        )

    def apply_late(self, method: str, after: float, count: int = 1) -> None:
        """The next ``count`` calls to ``method`` go unanswered for ``after`` seconds; only then are they carried out
        (a message is stored, with the ``ts`` of that moment) and answered. With ``after`` longer than the client's
        timeout, the client gives up first and the message appears later: "Slack stored it at 12 s, the client gave
        up at 10 s". The call is recorded on arrival with status :data:`NO_ANSWER`; once applied it shows status
        200 and its ``response``."""
        self._faults.setdefault(method, []).append(
            _Fault(status=200, retry_after=1, remaining=count, error=None, mode="late", delay=after)
        )

    def release_held(self) -> None:
        """Answer every call held by :meth:`accept_and_hang` (clients that are gone get nothing)."""
        self._held.set()
        self._held = asyncio.Event()

    async def wait_held(self, count: int = 1, timeout: float = 10.0) -> list[SlackCall]:
        """Wait until ``count`` calls are being held; return them."""
        cond = self._require_cond()

        def held() -> list[SlackCall]:
            return [c for c in self._calls if not c.answered]

        async with asyncio.timeout(timeout), cond:
            await cond.wait_for(lambda: len(held()) >= count)
        return held()

    def enforce_rate_limit(
        self, method: str = "chat.postMessage", per_channel_per_second: float = 1.0
    ) -> None:
        """Apply Slack's per-channel limit to ``method`` from now on.

        A call for a channel arriving sooner than ``1 / per_channel_per_second`` after
        the previous *accepted* call for that channel gets ``429`` with
        ``Retry-After: 1``; :attr:`rate_limited_count` counts those.
        """
        if per_channel_per_second <= 0:
            raise ValueError("per_channel_per_second must be positive")
        self._rate_limits[method] = 1.0 / per_channel_per_second

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

    # ------------------------------------------------------------------ channels

    def channel_id(self, channel: str) -> str:
        """Resolve ``#name`` / ``name`` / an ID to a conversation ID, as Slack would.

        Names map to a stable ``C`` + 8 hex chars derived from the (lower-cased) name,
        so the same name gets the same ID across runs; a user ID maps to a DM ``D…``.
        """
        value = channel.strip()
        if _CONVERSATION_ID_RE.match(value):
            return value
        if _USER_ID_RE.match(value):
            cid = "D" + hashlib.sha1(value.encode()).hexdigest()[:8].upper()
            self._channel_names[cid] = "@" + value
            return cid
        name = value.lstrip("#").lower()
        cid = "C" + hashlib.sha1(name.encode()).hexdigest()[:8].upper()
        self._channel_names[cid] = "#" + name
        return cid

    def channel_name(self, channel_id: str) -> str:
        """``#name`` for a channel we have seen by name (``@U…`` for DMs), else the ID."""
        return self._channel_names.get(channel_id, channel_id)

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[SlackCall]:
        """Every recorded call, in arrival order (a copy)."""
        return list(self._calls)

    def calls_to(self, method: str, **match: Any) -> list[SlackCall]:
        """Calls to ``method`` whose body has every ``match`` key equal to the given value.

        ``channel``/``channel_id`` compare resolved IDs, so ``channel="#ops"`` matches a
        call that used the channel ID and vice versa.
        """
        return [c for c in self._calls if c.method == method and self._matches(c, match)]

    def messages(self, channel: str | None = None) -> list[StoredMessage]:
        """Messages (including ephemeral and deleted ones) in ts order, optionally for one channel."""
        cid = self.channel_id(channel) if channel is not None else None
        found = [m for m in self._messages.values() if cid is None or m.channel == cid]
        return sorted(found, key=lambda m: _ts_key(m.ts))

    def thread(self, channel: str, ts: str) -> list[StoredMessage]:
        """Replies in the thread rooted at ``ts`` (the parent itself excluded)."""
        return [m for m in self.messages(channel) if m.thread_ts == ts and m.ts != ts]

    def message(self, channel: str, ts: str) -> StoredMessage | None:
        """The stored message at ``(channel, ts)``, if any."""
        return self._messages.get((self.channel_id(channel), ts))

    def add_message(
        self,
        channel: str,
        text: str,
        user: str = "U0HUMAN01",
        thread_ts: str | None = None,
        blocks: list[Any] | None = None,
    ) -> StoredMessage:
        """Seed a message not sent by the bot (e.g. what a console user typed).

        Lets the console and tests build threads whose parent came from a human; it is
        not recorded as a call.
        """
        msg = StoredMessage(
            channel=self.channel_id(channel),
            ts=self._next_ts(),
            thread_ts=thread_ts,
            text=text,
            blocks=blocks,
            user=user,
        )
        self._messages[(msg.channel, msg.ts)] = msg
        return msg

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 -- a per-call deadline is the point of this helper
        **match: Any,
    ) -> list[SlackCall]:
        """Wait until at least ``count`` matching calls to ``method`` are recorded.

        Woken by each recorded call (no polling).  Raises :class:`TimeoutError` listing
        what was received, so a failing test says what the bot did instead.
        """
        cond = self._require_cond()

        def matching() -> list[SlackCall]:
            return self.calls_to(method, **match)

        try:
            async with asyncio.timeout(timeout), cond:
                await cond.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            raise TimeoutError(self._timeout_message(method, count, timeout, match, matching())) from None
        return matching()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``condition()`` holds, re-checked whenever a call is recorded."""
        cond = self._require_cond()
        async with asyncio.timeout(timeout), cond:
            await cond.wait_for(condition)

    # ------------------------------------------------------------------ internals

    def _timeout_message(
        self, method: str, count: int, timeout: float, match: dict[str, Any], got: list[SlackCall]
    ) -> str:
        lines = [
            f"timed out after {timeout}s waiting for {count} call(s) to {method!r}"
            + (f" matching {match!r}" if match else "")
            + f"; {len(got)} matched. Received {len(self._calls)} call(s):"
        ]
        shown = self._calls[-25:]
        if len(self._calls) > len(shown):
            lines.append(f"  … {len(self._calls) - len(shown)} earlier call(s) omitted")
        for c in shown:
            body = json.dumps(c.body, default=str, sort_keys=True)
            if len(body) > 200:
                body = body[:197] + "..."
            lines.append(f"  {c.method} [{c.status}] {body}")
        if not self._calls:
            lines.append("  (none)")
        return "\n".join(lines)

    def _matches(self, call: SlackCall, match: dict[str, Any]) -> bool:
        for key, expected in match.items():
            actual = call.body.get(key)
            if key in ("channel", "channel_id") and isinstance(actual, str) and isinstance(expected, str):
                if self.channel_id(actual) != self.channel_id(expected):
                    return False
            elif actual != expected:
                return False
        return True

    def _next_ts(self) -> str:
        """Like Slack's: the Unix time of the post in microseconds, unique (and increasing) within the server, so
        ``oldest``/``latest`` filters on conversations.history mean what they mean in Slack."""
        self._last_us = max(int(time.time() * 1_000_000), self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._id_counter):08X}"

    async def _record(self, call: SlackCall) -> None:
        cond = self._require_cond()
        if call.status != NO_ANSWER:
            call.answered_at = time.monotonic()
        async with cond:
            self._calls.append(call)
            cond.notify_all()

    def _take_fault(self, method: str) -> _Fault | None:
        faults = self._faults.get(method)
        if not faults:
            return None
        fault = faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            faults.pop(0)
        return fault

    @staticmethod
    def _fault_response(fault: _Fault) -> Response:
        if fault.status == 429:
            return JSONResponse(
                {"ok": False, "error": fault.error or "ratelimited"},
                status_code=429,
                headers={"Retry-After": str(fault.retry_after)},
            )
        return JSONResponse({"ok": False, "error": fault.error or "internal_error"}, status_code=fault.status)

    def _check_faults(self, method: str, body: dict[str, Any], now: float) -> Response | None:
        """Injected failure (refusing ones; see :meth:`_api_endpoint` for the others) or enforced rate limit."""
        faults = self._faults.get(method)
        if faults and faults[0].mode == "refuse":
            fault = self._take_fault(method)
            assert fault is not None
            return self._fault_response(fault)
        interval = self._rate_limits.get(method)
        channel = body.get("channel") or body.get("channel_id")
        if interval is not None and isinstance(channel, str) and channel:
            key = (method, self.channel_id(channel))
            last = self._last_accepted.get(key)
            if last is not None and now - last < interval:
                self.rate_limited_count += 1
                return JSONResponse(
                    {"ok": False, "error": "ratelimited"}, status_code=429, headers={"Retry-After": "1"}
                )
            self._last_accepted[key] = now
        return None

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

    # ------------------------------------------------------------------ API methods

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://console.slack.test/",
            "team": "Console",
            "user": "mira-bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def _message_payload(self, msg: StoredMessage, *, metadata: bool = True) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": "message", "text": msg.text or "", "ts": msg.ts}
        if metadata and msg.metadata is not None:
            payload["metadata"] = msg.metadata
        if msg.blocks is not None:
            payload["blocks"] = msg.blocks
        if msg.attachments is not None:
            payload["attachments"] = msg.attachments
        if msg.thread_ts:
            payload["thread_ts"] = msg.thread_ts
        payload["user"] = msg.user
        if msg.user == BOT_USER_ID:
            payload["bot_id"] = BOT_ID
        return payload

    @staticmethod
    def _content_error(body: dict[str, Any]) -> str | None:
        if not any(_present(body.get(k)) for k in ("text", "blocks", "attachments")):
            return "no_text"
        return None

    @staticmethod
    def _metadata_error(body: dict[str, Any]) -> str | None:
        """Slack's check of message metadata: an ``event_type`` string and an ``event_payload`` object."""
        if "metadata" not in body or body["metadata"] in (None, ""):
            return None
        metadata = body["metadata"]
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not metadata["event_type"]
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            return "invalid_metadata_format"
        return None

    def _chat_post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        if error := self._content_error(body) or self._metadata_error(body):
            return {"ok": False, "error": error}
        if refusal := message_refusal(body):
            return refusal
        msg = StoredMessage(
            channel=self.channel_id(channel),
            ts=self._next_ts(),
            thread_ts=body.get("thread_ts") or None,
            text=body.get("text"),
            blocks=body.get("blocks"),
            attachments=body.get("attachments"),
            user=BOT_USER_ID,
            metadata=body.get("metadata") or None,
        )
        self._messages[(msg.channel, msg.ts)] = msg
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "message": self._message_payload(msg)}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        msg = self._messages.get((self.channel_id(channel), str(ts)))
        if msg is None or msg.deleted or msg.ephemeral_to is not None:
            return {"ok": False, "error": "message_not_found"}
        if refusal := message_refusal(body):
            return refusal
        # Like Slack, fields left out of the update keep their previous value.
        if "text" in body:
            msg.text = body["text"]
        if "blocks" in body:
            msg.blocks = body["blocks"]
        if "attachments" in body:
            msg.attachments = body["attachments"]
        msg.updated += 1
        return {
            "ok": True,
            "channel": msg.channel,
            "ts": msg.ts,
            "text": msg.text or "",
            "message": self._message_payload(msg),
        }

    def _chat_post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, user = body.get("channel"), body.get("user")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        if not isinstance(user, str) or not user.strip():
            return {"ok": False, "error": "user_not_found"}
        if error := self._content_error(body):
            return {"ok": False, "error": error}
        if refusal := message_refusal(body):
            return refusal
        msg = StoredMessage(
            channel=self.channel_id(channel),
            ts=self._next_ts(),
            thread_ts=body.get("thread_ts") or None,
            text=body.get("text"),
            blocks=body.get("blocks"),
            attachments=body.get("attachments"),
            user=BOT_USER_ID,
            ephemeral_to=user,
        )
        self._messages[(msg.channel, msg.ts)] = msg
        return {"ok": True, "message_ts": msg.ts}

    def _chat_get_permalink(self, body: dict[str, Any]) -> dict[str, Any]:
        """Slack's answer shape: the message's web link, ``…/archives/<channel>/p<ts without the dot>``."""
        channel, ts = body.get("channel"), body.get("message_ts")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        msg = self._messages.get((self.channel_id(channel), str(ts)))
        if msg is None or msg.deleted:
            return {"ok": False, "error": "message_not_found"}
        permalink = f"https://console.slack.test/archives/{msg.channel}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts and msg.thread_ts != msg.ts:
            permalink += f"?thread_ts={msg.thread_ts}&cid={msg.channel}"
        return {"ok": True, "channel": msg.channel, "permalink": permalink}

    def _chat_delete(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        cid = self.channel_id(channel) if isinstance(channel, str) and channel.strip() else channel
        msg = self._messages.get((str(cid), str(ts)))
        if msg is not None:
            msg.deleted = True
        return {"ok": True, "channel": cid, "ts": ts}

    def _reactions_add(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts, name = body.get("channel"), body.get("timestamp"), body.get("name")
        if isinstance(channel, str) and channel.strip():
            msg = self._messages.get((self.channel_id(channel), str(ts)))
            if msg is not None and isinstance(name, str) and name not in msg.reactions:
                msg.reactions.append(name)
        return {"ok": True}

    def _user_payload(self, user_id: str) -> dict[str, Any]:
        email, name = self._users_by_id.get(user_id, (f"{user_id.lower()}@example.com", None))
        handle = email.split("@")[0].lower() if user_id in self._users_by_id else user_id.lower()
        real_name = name or f"User {user_id}"
        return {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": handle,
            "real_name": real_name,
            "deleted": False,
            "is_bot": user_id == BOT_USER_ID,
            "tz": "UTC",
            "profile": {"email": email, "real_name": real_name, "display_name": name or handle},
        }

    def _users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user")
        if not isinstance(user, str) or not user.strip():
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": self._user_payload(user.strip())}

    def _users_lookup_by_email(self, body: dict[str, Any]) -> dict[str, Any]:
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            return {"ok": False, "error": "users_not_found"}
        user_id = self._users_by_email.get(email.lower()) or email.split("@")[0].upper()
        return {"ok": True, "user": self._user_payload(user_id)}

    def _usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("usergroup")
        if not isinstance(group, str) or not group:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self._usergroups.get(group, []))}

    def _conversations_info(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        cid = self.channel_id(channel)
        known = self._channel_names.get(cid)
        name = known.lstrip("#@") if known else cid.lower()
        return {
            "ok": True,
            "channel": {"id": cid, "name": name, "is_member": True, "is_im": cid.startswith("D")},
        }

    @staticmethod
    def _flag(value: Any) -> bool:
        return value in (True, 1, "1", "true", "True")

    @staticmethod
    def _page(items: list[Any], body: dict[str, Any], default: int = 100) -> tuple[list[Any], str]:
        """One page of ``items`` by Slack's cursor (opaque here: the offset) and ``limit``; and the next cursor."""
        try:
            offset = int(str(body.get("cursor") or "0").removeprefix("o"))
            limit = int(body.get("limit") or default)
        except ValueError:
            return [], ""
        limit = max(1, min(limit, 999))
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        return page, f"o{offset + limit}" if more else ""

    def _in_range(self, ts: str, body: dict[str, Any]) -> bool:
        inclusive = self._flag(body.get("inclusive"))
        key = _ts_key(ts)
        oldest, latest = body.get("oldest"), body.get("latest")
        if oldest not in (None, ""):
            low = _ts_key(str(oldest))
            if key < low or (key == low and not inclusive):
                return False
        if latest not in (None, ""):
            high = _ts_key(str(latest))
            if key > high or (key == high and not inclusive):
                return False
        return True

    def _conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first; metadata only with ``include_all_metadata``."""
        channel = body.get("channel")
        if not isinstance(channel, str) or not _CONVERSATION_ID_RE.match(channel.strip()):
            return {"ok": False, "error": "channel_not_found"}  # Slack wants an ID here, not a #name
        metadata = self._flag(body.get("include_all_metadata"))
        found = [
            m
            for m in self.messages(channel)
            if m.ephemeral_to is None
            and not m.deleted
            and (m.thread_ts is None or m.thread_ts == m.ts)
            and self._in_range(m.ts, body)
        ]
        page, cursor = self._page(list(reversed(found)), body)
        return {
            "ok": True,
            "messages": [self._message_payload(m, metadata=metadata) for m in page],
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent, then its replies, oldest first; metadata only with ``include_all_metadata``."""
        channel, ts = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not _CONVERSATION_ID_RE.match(channel.strip()):
            return {"ok": False, "error": "channel_not_found"}
        parent = self._messages.get((channel.strip(), str(ts)))
        if parent is None or parent.deleted or parent.ephemeral_to is not None:
            return {"ok": False, "error": "thread_not_found"}
        metadata = self._flag(body.get("include_all_metadata"))
        thread = [parent] + [
            m for m in self.thread(channel, parent.ts) if m.ephemeral_to is None and not m.deleted
        ]
        thread = [m for m in thread if self._in_range(m.ts, body)]
        page, cursor = self._page(thread, body, default=1000)
        return {
            "ok": True,
            "messages": [self._message_payload(m, metadata=metadata) for m in page],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_list(self, body: dict[str, Any]) -> dict[str, Any]:
        """The channels this server knows by name (every ``#name`` it was sent), the bot a member of each."""
        channels = [
            {"id": cid, "name": name.lstrip("#"), "is_channel": True, "is_member": True, "is_archived": False}
            for cid, name in sorted(self._channel_names.items())
            if name.startswith("#")
        ]
        page, cursor = self._page(channels, body)
        return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        view = body.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if refusal := view_refusal(view):
            return refusal
        view_id = body.get("view_id") or self._next_id("V")
        self.views[view_id] = view
        return {"ok": True, "view": {"id": view_id, **view}}

    def _files_get_upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        filename = body.get("filename")
        if not filename:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._next_id("F")
        self._pending_uploads[file_id] = {"filename": filename, "length": body.get("length")}
        return {"ok": True, "upload_url": self.base_url + f"/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        files = body.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        for entry in files:
            if not isinstance(entry, dict) or entry.get("id") not in self._pending_uploads:
                return {"ok": False, "error": "file_not_found"}
        targets: list[str] = []
        if isinstance(body.get("channel_id"), str) and body["channel_id"]:
            targets.append(self.channel_id(body["channel_id"]))
        if isinstance(body.get("channels"), str) and body["channels"]:
            targets.extend(self.channel_id(c) for c in body["channels"].split(",") if c.strip())
        thread_ts = body.get("thread_ts") or None
        comment = body.get("initial_comment") or None

        out: list[dict[str, Any]] = []
        for entry in files:
            file_id = entry["id"]
            pending = self._pending_uploads[file_id]
            title = entry.get("title") or pending["filename"]
            size = len(self.uploaded_files[file_id]) if file_id in self.uploaded_files else None
            out.append({"id": file_id, "title": title, "name": pending["filename"], "size": size})
            share_targets: list[str | None] = [*targets] or [None]
            for cid in share_targets:
                self.file_shares.append(
                    FileShare(file_id, title, pending["filename"], size, cid, thread_ts, comment)
                )
        # Slack shows the share as one message carrying the files (and the comment).
        for cid in targets:
            msg = StoredMessage(
                channel=cid,
                ts=self._next_ts(),
                thread_ts=thread_ts,
                text=comment or "",
                blocks=None,
                user=BOT_USER_ID,
                files=[dict(f) for f in out],
            )
            self._messages[(cid, msg.ts)] = msg
        return {"ok": True, "files": out}


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
