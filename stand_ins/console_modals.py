"""The console's modals: what views.open / views.push / views.update opened, and `fill`, `submit`, `close`.

Split from :mod:`stand_ins.console` (the command interpreter) because a modal is a state of its own: Slack keeps a
stack of views per user (views.push adds one, views.update replaces one by ID, a submission's empty answer closes
the top one), and what the console sends on `submit` is the view_submission payload Slack would send — the view
with its `id`, `callback_id`, `private_metadata` and `state.values` keyed by block and action — signed like every
other request. :class:`ModalConsoleCommands` is a mixin of :class:`stand_ins.console.Console`, which owns the
session.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from stand_ins.console_render import input_blocks
from stand_ins.recording_slack import TEAM_ID, RecordingSlackServer, SlackCall

_SELECTS = ("static_select", "radio_buttons")


@dataclass
class OpenModal:
    """One view on the stack: as the bot last sent it, and what was filled in so far (input number → text)."""

    view_id: str
    view: dict[str, Any]
    filled: dict[int, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return str((self.view.get("title") or {}).get("text", "modal"))


def _option(element: dict[str, Any], text: str) -> dict[str, Any] | None:
    """The option of a select (or radio buttons) whose value or label is `text`."""
    for option in element.get("options") or []:
        label = str((option.get("text") or {}).get("text", ""))
        if text in (option.get("value"), label):
            return dict(option)
    return None


def state_values(view: dict[str, Any], filled: dict[int, str]) -> dict[str, dict[str, Any]]:
    """`view.state.values` as Slack sends it: every input block by block_id, then action_id."""
    values: dict[str, dict[str, Any]] = {}
    for number, block in enumerate(input_blocks(view), start=1):
        element = block.get("element") or {}
        kind = element.get("type", "plain_text_input")
        text = filled.get(number, element.get("initial_value"))
        state: dict[str, Any] = {"type": kind}
        if kind in _SELECTS:
            state["selected_option"] = _option(element, text) if text is not None else None
        elif kind == "checkboxes":
            chosen = [t.strip() for t in (text or "").split(",") if t.strip()]
            state["selected_options"] = [o for o in (_option(element, c) for c in chosen) if o]
        else:
            state["value"] = text
        values[str(block.get("block_id", number))] = {str(element.get("action_id", number)): state}
    return values


class ModalConsoleCommands:
    """`fill`, `submit` and `close`, and the stack of open views, for :class:`stand_ins.console.Console`."""

    slack: RecordingSlackServer
    user_id: str
    modals: list[OpenModal]

    if TYPE_CHECKING:  # provided by Console

        def say(self, *lines: str) -> None: ...

        async def _send(self, body: bytes, content_type: str) -> httpx.Response: ...

        async def _show_answer(self, response: httpx.Response | None) -> None: ...

    def track_view(self, call: SlackCall) -> None:
        """Follow the stack as Slack would: views.open starts it, views.push adds, views.update replaces."""
        if call.status != 200 or not call.response or not call.response.get("ok"):
            return
        view = dict(call.body.get("view") or {})
        view_id = str((call.response.get("view") or {}).get("id", ""))
        if call.method == "views.open":
            self.modals = [OpenModal(view_id, view)]
        elif call.method == "views.push":
            self.modals.append(OpenModal(view_id, view))
        else:
            target = call.body.get("view_id") or view_id
            for modal in self.modals:
                if modal.view_id == target:
                    modal.view, modal.filled = view, {}

    def _top(self) -> OpenModal | None:
        if not self.modals:
            self.say("(no modal is open: a button such as Resolve or Add note opens one)")
            return None
        return self.modals[-1]

    def fill(self, rest: str) -> None:
        """`fill TEXT` (a modal with one input) or `fill N TEXT`."""
        modal = self._top()
        if modal is None:
            return
        inputs = input_blocks(modal.view)
        if not inputs:
            self.say(f"({modal.title} has nothing to fill in; submit or close it)")
            return
        number, text = 1, rest.strip()
        word, _, after = text.partition(" ")
        if len(inputs) > 1:
            if not word.isdigit() or not 1 <= int(word) <= len(inputs):
                self.say(f"(usage: fill N TEXT — {modal.title} has inputs 1 to {len(inputs)})")
                return
            number, text = int(word), after.strip()
        element = inputs[number - 1].get("element") or {}
        if element.get("type") in _SELECTS and text and _option(element, text) is None:
            choices = ", ".join(str(o.get("value")) for o in element.get("options") or [])
            self.say(f"(input {number} is one of: {choices})")
            return
        modal.filled[number] = text
        label = (inputs[number - 1].get("label") or {}).get("text", f"input {number}")
        self.say(f"(filled {label}: {text})")

    async def submit(self) -> None:
        """Send the view_submission Slack would send for the top view, then follow its answer."""
        modal = self._top()
        if modal is None:
            return
        for number, block in enumerate(input_blocks(modal.view), start=1):
            if not block.get("optional") and not modal.filled.get(number, "").strip():
                label = (block.get("label") or {}).get("text", f"input {number}")
                self.say(f"(Slack will not submit {modal.title} without {label}: fill it first)")
                return
        view = {
            **modal.view,
            "id": modal.view_id,
            "team_id": TEAM_ID,
            "type": modal.view.get("type", "modal"),
            "state": {"values": state_values(modal.view, modal.filled)},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "root_view_id": self.modals[0].view_id,
            "previous_view_id": self.modals[-2].view_id if len(self.modals) > 1 else None,
            "app_id": "A0CONSOLE",
            "bot_id": "B0MIRABOT",
        }
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "console"},
            "user": {"id": self.user_id, "username": self.user_id.lower(), "team_id": TEAM_ID},
            "api_app_id": "A0CONSOLE",
            "token": "console",
            "trigger_id": f"{int(time.time())}.console.{uuid.uuid4().hex[:8]}",
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
        }
        response = await self._send(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )
        self._after_submission(response)
        await self._show_answer(None if response.status_code == 200 else response)

    def _after_submission(self, response: httpx.Response) -> None:
        """What Slack does with the answer: empty closes the view; `response_action` errors / update / push /
        clear as documented."""
        if response.status_code != 200:
            return
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            answer = {}
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if action == "errors":
            for block_id, error in (answer.get("errors") or {}).items():
                self.say(f"(modal error at {block_id}: {error})")
        elif action == "clear":
            self.modals.clear()
            self.say("(modal closed)")
        elif action == "update" and isinstance(answer.get("view"), dict):
            self.modals[-1] = OpenModal(self.modals[-1].view_id, answer["view"])
            self.say(f"(modal updated) {self.modals[-1].title}")
        elif action == "push" and isinstance(answer.get("view"), dict):
            self.modals.append(OpenModal(f"V{uuid.uuid4().hex[:9].upper()}", answer["view"]))
            self.say(f"(modal pushed) {self.modals[-1].title}")
        else:
            closed = self.modals.pop()
            self.say(f"({closed.title} submitted and closed)")

    async def close_modal(self) -> None:
        """Close the top view (Cancel); Slack tells the app only when the view asked (`notify_on_close`)."""
        modal = self._top()
        if modal is None:
            return
        self.modals.pop()
        self.say(f"({modal.title} closed)")
        if modal.view.get("notify_on_close"):
            payload = {
                "type": "view_closed",
                "team": {"id": TEAM_ID, "domain": "console"},
                "user": {"id": self.user_id, "username": self.user_id.lower(), "team_id": TEAM_ID},
                "api_app_id": "A0CONSOLE",
                "token": "console",
                "view": {**modal.view, "id": modal.view_id, "team_id": TEAM_ID},
                "is_cleared": False,
            }
            response = await self._send(
                urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
            )
            await self._show_answer(None if response.status_code == 200 else response)
