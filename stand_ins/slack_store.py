"""The recording Slack server's message store and call record: channels, messages, calls, and waiting on them.

Split from :mod:`stand_ins.recording_slack`. What tests and the console read back -- :attr:`~SlackMessageStore.calls`,
:meth:`~SlackMessageStore.messages`, :meth:`~SlackMessageStore.thread`, the ``wait_for`` helpers -- and what the Web
API methods share: channel resolution as Slack does it (``#name`` <-> ``C…``, a user ID <-> its DM ``D…``), the
next ``ts`` and ID, the JSON shape of a stored message, and the record of every call (which wakes the waiters).
The state itself is set up by :class:`stand_ins.recording_slack.RecordingSlackServer`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from stand_ins.recording_base import RecordingServer
from stand_ins.slack_records import (
    _CONVERSATION_ID_RE,
    _USER_ID_RE,
    BOT_ID,
    BOT_USER_ID,
    NO_ANSWER,
    SlackCall,
    StoredMessage,
    _ts_key,
)


class SlackMessageStore(RecordingServer):
    """The messages and calls of :class:`stand_ins.recording_slack.RecordingSlackServer`, and the waits on them."""

    _calls: list[SlackCall]
    _messages: dict[tuple[str, str], StoredMessage]
    _id_counter: itertools.count[int]
    _channel_names: dict[str, str]
    _last_us: int

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
