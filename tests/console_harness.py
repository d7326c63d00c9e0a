"""The console driven in-process, as a person types at it, for tests/test_console*.py and tests/test_demo*.py.

`console_for_test` opens the real session (stand_ins.console_runner.console_session: recording Slack, PagerDuty
and Supabase servers, the runtime on the console's clock, the demo stand-ins) on the test's Postgres schema and
Redis database; `Typist.type(...)` runs lines through `Console.handle` exactly as the REPL does and returns what
was printed. Tests assert on what reached the recording Slack (and PagerDuty) servers.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.settings import Settings
from stand_ins.console import Console
from stand_ins.console_runner import console_session
from stand_ins.recording_slack import SlackCall


def console_settings_for_test(database_url: str, redis_url: str, state_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=redis_url,
        state_dir=state_dir,
    )


def everything(call: SlackCall) -> str:
    """A call's body as one string (text, blocks, attachments), for "does it say …" assertions."""
    return json.dumps(call.body, ensure_ascii=False)


@dataclass
class Typist:
    console: Console
    out: io.StringIO

    async def type(self, *lines: str) -> str:
        """Run `lines` as typed; what the console printed for them."""
        start = len(self.out.getvalue())
        for line in lines:
            self.console.say(self.console.prompt + line)
            assert await self.console.handle(line)
        return self.out.getvalue()[start:]

    def calls_since(
        self, mark: int, method: str | None = None, channel: str | None = None
    ) -> list[SlackCall]:
        """Slack calls after the first `mark`, optionally to one method and channel."""
        slack = self.console.slack
        wanted = slack.channel_id(channel) if channel else None
        return [
            call
            for call in slack.calls[mark:]
            if (method is None or call.method == method)
            and (wanted is None or slack.channel_id(str(call.body.get("channel", ""))) == wanted)
        ]

    @property
    def mark(self) -> int:
        return len(self.console.slack.calls)

    def button(self, label: str, message: int | None = None) -> str:
        """The number (`M.N`) of the newest button with this label (in message `message` when given)."""
        found = [
            b
            for b in self.console.renderer.buttons.values()
            if b.label.startswith(label) and (message is None or b.number.split(".")[0] == str(message))
        ]
        assert found, f"no button {label!r} on screen"
        return max(found, key=lambda b: tuple(int(part) for part in b.number.split("."))).number

    def said(self, mark: int, words: str, method: str | None = None, channel: str | None = None) -> list[Any]:
        """The calls since `mark` whose body contains `words`."""
        return [c for c in self.calls_since(mark, method, channel) if words in everything(c)]


@asynccontextmanager
async def console_for_test(
    database_url: str, redis_url: str, state_dir: Path, *, demo: bool = True
) -> AsyncIterator[Typist]:
    out = io.StringIO()
    settings = console_settings_for_test(database_url, redis_url, state_dir)
    async with console_session(settings, out, demo=demo) as console:
        yield Typist(console, out)
