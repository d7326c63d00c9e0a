"""The recording Slack server's records: the calls it received and the state it keeps, as data.

Split from :mod:`stand_ins.recording_slack` (the server: routes, request parsing, the call pipeline). Here: the
IDs the server answers as (the team, the bot user), :class:`SlackCall` (one request, as the bot sent it),
:class:`StoredMessage` and :class:`FileShare` (what Slack would now show), the injected faults (:class:`_Fault`),
the parse error (:class:`_BadRequest`) and the small helpers every part shares (``ts`` ordering, JSON-in-a-string
decoding).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

#: ``status`` of a call that :meth:`RecordingSlackServer.accept_and_hang` held without answering.
NO_ANSWER = 0

TEAM_ID = "T0CONSOLE"
BOT_USER_ID = "U0MIRABOT"
BOT_ID = "B0MIRABOT"

#: Something that already is a conversation ID (public/private channel, DM) is kept as is.
_CONVERSATION_ID_RE = re.compile(r"^[CGD][A-Z0-9]{6,}$")
#: Slack lets ``chat.postMessage`` target a user ID and answers with the DM's ``D…`` ID.
_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{6,}$")


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
