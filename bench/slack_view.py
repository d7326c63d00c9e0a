"""What the recording Slack server received, read as an on-call would read the channels: which lifecycle event
(bench/lifecycle.py) is shown where, since when, and whether an incident's latest state is on screen.

Only calls Slack accepted count (chat.postMessage and chat.update answered 200 with `ok`). Definitions, per
channel:

* A *top-level* message (no `thread_ts`) belongs to every incident it names (`#<number>`). One that names a
  single incident is that incident's *root*: all of it is the incident's segment. One that names several is a
  *digest*: an incident's segment is the digest's lines that name it and no other incident. A message is a
  digest from the first version that named two incidents, or from its first version when its message metadata
  says it is one (`mira_storm_digest`: the storm's first digest lists one incident, which may later get its own
  root; that is one root, not two).
* A *reply* (a message posted with `thread_ts`, and its later edits) belongs to the incidents its parent named:
  all of it is their segment — except a reply that carries the incident's trigger token (its title): that one
  restates the thread (the post-mortem draft's timeline lists every event) instead of delivering an event, and
  counts neither as representing an event nor as posting it again.
* An event is *represented* in a channel from the first accepted call that put its token in a segment of its
  own incident there (its root, its digest line, or a reply in its root's or its digest's thread).
* An incident's latest state is *visible* in a channel from the first accepted call that shows it resolved (the
  word "resolved" or the resolved emoji) in a segment of a top-level message: its root or its digest line.
* An event is *posted twice* in a channel when its token is in two different replies there (edits of one
  message are one), or, for a trigger, when two different roots name the incident.

The scan is incremental: each `update()` reads only the calls that arrived since the last one.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from bench.lifecycle import TOKEN
from stand_ins.recording_slack import RecordingSlackServer, SlackCall

NUMBER = re.compile(r"#(\d+)")
DIGEST_EVENT = (
    "mira_storm_digest"  # the digest's message metadata (handlers/incidents/threads.py DIGEST_POST)
)
RESOLVED = re.compile(r"resolved|:white_check_mark:", re.IGNORECASE)
Key = tuple[int, int, str]  # incident number, step, channel id


def _is_digest(body: dict[str, Any]) -> bool:
    """A storm digest says so in its message metadata: one that lists a single incident (the storm's first) is
    still a digest, not a second root of that incident when the incident is later promoted to its own."""
    metadata = body.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return False
    return isinstance(metadata, dict) and metadata.get("event_type") == DIGEST_EVENT


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)


def shown_text(body: dict[str, Any]) -> str:
    """Every string a message shows or carries: its text, blocks and attachments, one per line."""
    out: list[str] = []
    for key in ("text", "blocks", "attachments"):
        _strings(body.get(key), out)
    return "\n".join(out)


def _numbers(text: str) -> set[int]:
    return {int(n) for n in NUMBER.findall(text)}


class SlackView:
    def __init__(self, slack: RecordingSlackServer, channels: dict[int, tuple[str, ...]]) -> None:
        """`channels`: for each incident number, the channel names its events must reach."""
        self.slack = slack
        self.channels = {n: tuple(slack.channel_id(c) for c in names) for n, names in channels.items()}
        self.read = 0
        self.represented: dict[Key, float] = {}
        self.visible: dict[tuple[int, str], float] = {}
        self.replies: dict[Key, set[str]] = defaultdict(set)
        self._named: dict[tuple[str, str], set[int]] = defaultdict(set)  # top-level (channel, ts) → numbers
        self._digest: set[tuple[str, str]] = set()
        self._parent: dict[tuple[str, str], str] = {}  # reply (channel, ts) → its thread_ts
        self.calls = 0
        self.rate_limited = 0

    def update(self) -> None:
        calls = self.slack.calls
        for call in calls[self.read :]:
            self.calls += 1
            self.rate_limited += call.status == 429
            self._take(call)
        self.read = len(calls)

    def _take(self, call: SlackCall) -> None:
        if call.method not in ("chat.postMessage", "chat.update") or call.status != 200:
            return
        response = call.response or {}
        channel = call.body.get("channel")
        if not response.get("ok") or not isinstance(channel, str):
            return
        channel = self.slack.channel_id(channel)
        ts = str(response.get("ts") if call.method == "chat.postMessage" else call.body.get("ts"))
        thread = call.body.get("thread_ts") if call.method == "chat.postMessage" else None
        if thread and str(thread) != ts:
            self._parent[(channel, ts)] = str(thread)
        parent = self._parent.get((channel, ts))
        text = shown_text(call.body)
        if parent is not None:
            owners = self._named.get((channel, parent), set())
            self._segment(
                call, channel, text, owners, reply=ts if call.method == "chat.postMessage" else None
            )
            return
        named = _numbers(text)
        self._named[(channel, ts)] |= named
        if len(self._named[(channel, ts)]) > 1 or _is_digest(call.body):
            self._digest.add((channel, ts))
        if len(named) == 1:
            self._segment(call, channel, text, named, top=True)
            return
        for line in text.splitlines():
            line_numbers = _numbers(line)
            if len(line_numbers) == 1:
                self._segment(call, channel, line, line_numbers, top=True)

    def _segment(
        self,
        call: SlackCall,
        channel: str,
        text: str,
        owners: set[int],
        *,
        top: bool = False,
        reply: str | None = None,
    ) -> None:
        tokens = {(int(n), int(k)) for n, k in TOKEN.findall(text)}
        for number, step in tokens:
            if number not in owners or (not top and (number, 0) in tokens):
                continue
            self.represented.setdefault((number, step, channel), call.at)
            if reply is not None:
                self.replies[(number, step, channel)].add(reply)
        if top and RESOLVED.search(text):
            for number in owners:
                self.visible.setdefault((number, channel), call.at)

    # ------------------------------------------------------------------ figures

    def event_represented_at(self, number: int, step: int) -> float | None:
        """When the event was represented in every channel of its incident (None: not yet in all)."""
        times = [self.represented.get((number, step, c)) for c in self.channels[number]]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)

    def state_visible_at(self, number: int) -> float | None:
        times = [self.visible.get((number, c)) for c in self.channels[number]]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)

    def count_represented(self, steps: int) -> int:
        return sum(self.event_represented_at(n, k) is not None for n in self.channels for k in range(steps))

    def posted_twice(self, steps: int) -> int:
        """Events shown in two different replies of one channel, plus incidents with two roots in one."""
        twice = sum(
            1
            for n in self.channels
            for k in range(steps)
            for c in self.channels[n]
            if len(self.replies.get((n, k, c), ())) > 1
        )
        roots: dict[tuple[int, str], int] = defaultdict(int)
        for (channel, ts), named in self._named.items():
            if (channel, ts) not in self._digest and len(named) == 1:
                roots[(next(iter(named)), channel)] += 1
        return twice + sum(1 for (n, _c), count in roots.items() if count > 1 and n in self.channels)
