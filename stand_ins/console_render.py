"""Render what the bot sent to (recorded) Slack as readable terminal text, with numbered buttons and modals.

Like Hubot's shell adapter or Errbot's text backend, but rendering real Web API calls: each chat.postMessage,
chat.update, ephemeral answer, file share and modal (views.open / push / update) the bot made, with its channel
and thread structure. Buttons are numbered per message (`[2.1]`: message 2, button 1) and stay stable for a
message across edits, so "press 2.1" keeps meaning the same button after the message changes; a modal's inputs
are numbered for `fill`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stand_ins.recording_slack import RecordingSlackServer, SlackCall

EMOJI = {
    "large_green_circle": "🟢",
    "large_yellow_circle": "🟡",
    "red_circle": "🔴",
    "white_circle": "⚪",
    "warning": "⚠️",
    "grey_question": "❔",
    "construction": "🚧",
    "white_check_mark": "✅",
    "x": "❌",
    "hourglass_flowing_sand": "⏳",
    "rotating_light": "🚨",
    "bell": "🔔",
    "arrows_counterclockwise": "🔄",
    "lock": "🔒",
    "eyes": "👀",
    "memo": "📝",
    "hourglass": "⌛",
    "arrow_forward": "▶️",
    "rewind": "⏪",
    "repeat": "🔁",
    "recycle": "♻️",
    "raised_hand": "✋",
    "octagonal_sign": "🛑",
    "no_entry_sign": "🚫",
    "ballot_box_with_check": "☑️",
    "white_large_square": "⬜",
    "satellite_antenna": "📡",
    "books": "📚",
    "incoming_envelope": "📨",
    "spiral_calendar_pad": "🗓️",
}


@dataclass(frozen=True)
class Button:
    number: str  # "2.1": message 2, control 1
    label: str
    action_id: str
    value: str | None
    block_id: str | None
    channel: str | None
    message_ts: str | None
    confirm: dict[str, Any] | None
    style: str | None
    option: dict[str, Any] | None = None  # a checkbox: the option it stands for; `press N` toggles it
    checked: bool = False


def mrkdwn_to_text(text: str) -> str:
    text = re.sub(r":([a-z0-9_+-]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"\1", text)  # *bold* reads fine as plain text
    text = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"\1", text)
    text = re.sub(r"<@([A-Z0-9]+)>", r"@\1", text)
    text = re.sub(r"<#([A-Z0-9]+)\|([^>]+)>", r"#\2", text)
    text = re.sub(r"<!subteam\^([A-Z0-9]+)(\|[^>]+)?>", r"@\1", text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class ConsoleRenderer:
    """Turns recorded calls into lines; remembers the messages and controls it numbered.

    A message with buttons or checkboxes gets a number, shown in its header (`message 2`), kept across its edits;
    its controls are numbered within it (`[2.1]`), by action and value, so `press 2.1` keeps meaning the same
    button after the message changes and can never reach a button of another message (or channel). An
    ephemeral answer has no ts: each one is a message of its own."""

    def __init__(self, slack: RecordingSlackServer) -> None:
        self.slack = slack
        self.buttons: dict[str, Button] = {}
        self._messages: dict[tuple[str | None, str | None], int] = {}
        self._controls: dict[tuple[int, str, str | None], int] = {}
        self._shown: dict[int, set[str]] = {}  # the controls each message has now, as last drawn
        self._count = 0
        self._current: int | None = None  # the message being drawn

    def _control_number(self, action_id: str, value: str | None, channel: str | None, ts: str | None) -> str:
        if self._current is None:
            if ts is not None and (channel, ts) in self._messages:
                self._current = self._messages[(channel, ts)]
            else:
                self._count += 1
                self._current = self._count
                if ts is not None:
                    self._messages[(channel, ts)] = self._current
        message = self._current
        within = sum(1 for key in self._controls if key[0] == message)
        control = self._controls.setdefault((message, action_id, value), within + 1)
        self._shown.setdefault(message, set()).add(f"{message}.{control}")
        return f"{message}.{control}"

    def on_screen(self, number: str) -> bool:
        """Whether control `M.N` is still on its message as last drawn (an edit may have removed it)."""
        message = int(number.split(".")[0])
        return number in self._shown.get(message, set())

    def _button(
        self, element: dict[str, Any], block_id: str | None, channel: str | None, ts: str | None
    ) -> Button:
        number = self._control_number(element.get("action_id", ""), element.get("value"), channel, ts)
        button = Button(
            number=number,
            label=str((element.get("text") or {}).get("text", "")),
            action_id=element.get("action_id", ""),
            value=element.get("value"),
            block_id=block_id,
            channel=channel,
            message_ts=ts,
            confirm=element.get("confirm"),
            style=element.get("style"),
        )
        self.buttons[number] = button
        return button

    def _checkbox(
        self,
        element: dict[str, Any],
        option: dict[str, Any],
        block_id: str | None,
        channel: str | None,
        ts: str | None,
    ) -> Button:
        """A checkbox option as a numbered control: stable per (message, action, option value) like a button."""
        number = self._control_number(element.get("action_id", ""), option.get("value"), channel, ts)
        selected = {o.get("value") for o in element.get("initial_options") or []}
        button = Button(
            number=number,
            label=mrkdwn_to_text(str((option.get("text") or {}).get("text", ""))),
            action_id=element.get("action_id", ""),
            value=option.get("value"),
            block_id=block_id,
            channel=channel,
            message_ts=ts,
            confirm=None,
            style=None,
            option=option,
            checked=option.get("value") in selected,
        )
        self.buttons[number] = button
        return button

    def message(
        self, blocks: list[dict[str, Any]] | None, text: str | None, channel: str | None, ts: str | None
    ) -> tuple[int | None, list[str]]:
        """The lines of one message, and its number when it has (or had) controls."""
        self._current = None
        if ts is not None and (channel, ts) in self._messages:
            self._shown[self._messages[(channel, ts)]] = set()  # drawn again: only what it has now counts
        lines = self.blocks_to_lines(blocks, text, channel, ts)
        number, self._current = self._current, None
        if number is None and ts is not None:
            number = self._messages.get(
                (channel, ts)
            )  # a numbered message keeps its number when its buttons go
        return number, lines

    def blocks_to_lines(
        self, blocks: list[dict[str, Any]] | None, text: str | None, channel: str | None, ts: str | None
    ) -> list[str]:
        if not blocks:
            return mrkdwn_to_text(text or "").splitlines() or [""]
        lines: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind in ("section", "header"):
                if block.get("text"):
                    lines += mrkdwn_to_text(block["text"].get("text", "")).splitlines()
                for field in block.get("fields") or []:
                    lines += mrkdwn_to_text(field.get("text", "")).splitlines()
                accessory = block.get("accessory")
                if accessory and accessory.get("type") == "button":
                    lines.append(
                        self._button_label(self._button(accessory, block.get("block_id"), channel, ts))
                    )
            elif kind == "context":
                parts = [mrkdwn_to_text(e.get("text", "")) for e in block.get("elements", []) if "text" in e]
                lines.append("  " + " · ".join(parts))
            elif kind == "divider":
                lines.append("─" * 40)
            elif kind == "image":
                lines.append(f"[image: {block.get('alt_text', '')}]")
            elif kind == "actions":
                labels = []
                for e in block.get("elements", []):
                    if e.get("type") == "button":
                        labels.append(self._button_label(self._button(e, block.get("block_id"), channel, ts)))
                    elif e.get("type") == "checkboxes":
                        labels += [
                            self._button_label(self._checkbox(e, option, block.get("block_id"), channel, ts))
                            for option in e.get("options") or []
                        ]
                if labels:
                    lines.append("  ".join(labels))
            elif kind == "input":
                lines.append(f"[input: {(block.get('label') or {}).get('text', '')}]")
        return lines

    @staticmethod
    def _button_label(button: Button) -> str:
        if button.option is not None:
            return f"[{button.number}] {'☑' if button.checked else '☐'} {button.label}"
        mark = "!" if button.style == "danger" else ""
        return f"[{button.number}{mark}] {button.label}"

    def render_call(self, call: SlackCall) -> list[str]:
        """The lines for one recorded call; [] for calls a person would not see (auth.test, users.info…)."""
        body = call.body
        if call.status != 200:
            return [f"  (Slack answered HTTP {call.status} to {call.method})"]
        if call.method in ("chat.postMessage", "chat.update"):
            channel_id = self.slack.channel_id(str(body.get("channel", "")))
            ts = str(body.get("ts")) if call.method == "chat.update" else self._ts_of(call)
            stored = self.slack.message(channel_id, ts) if ts else None
            thread_ts = body.get("thread_ts") or (stored.thread_ts if stored else None)
            where = self.slack.channel_name(channel_id)
            head = f"{where} · Mira Bot" + (" (edited)" if call.method == "chat.update" else "")
            indent = "    "
            if thread_ts and thread_ts != ts:
                head = f"{where} · thread · Mira Bot" + (" (edited)" if call.method == "chat.update" else "")
                indent = "    │ "
            blocks = body.get("blocks") or [
                b for a in body.get("attachments") or [] for b in a.get("blocks") or []
            ]
            number, body_lines = self.message(blocks, body.get("text"), channel_id, ts)
            if number is not None:
                head += f" · message {number}"
            return [head, *(indent + line for line in body_lines)]
        if call.method in ("chat.postEphemeral", "response_url"):
            return self._ephemeral(body)
        if call.method in ("views.open", "views.push", "views.update"):
            return render_modal(call.method, body.get("view") or {}, ConsoleRenderer(self.slack))
        if call.method == "files.completeUploadExternal":
            where = self.slack.channel_name(str(body.get("channel_id", ""))) if body.get("channel_id") else ""
            files = body.get("files") or []
            titles = ", ".join(str(f.get("title") or f.get("id")) for f in files if isinstance(f, dict))
            return [f"{where} · Mira Bot uploaded 📎 {titles}"]
        return []

    @staticmethod
    def _ts_of(call: SlackCall) -> str | None:
        """The ts Slack gave a posted message, from the answer the recording server sent."""
        return str(call.response["ts"]) if call.response and call.response.get("ts") else None

    def _ephemeral(self, payload: dict[str, Any], prefix: str = "(only you) ") -> list[str]:
        number, lines = self.message(payload.get("blocks"), payload.get("text"), None, None)
        if number is not None:
            prefix = f"{prefix.rstrip(') ')} · message {number}) " if prefix else f"(message {number}) "
        return [prefix + lines[0], *(" " * len(prefix) + line for line in lines[1:])]

    def render_ack(self, payload: dict[str, Any] | None) -> list[str]:
        if not payload or not (payload.get("text") or payload.get("blocks")):
            return []
        ephemeral = payload.get("response_type", "ephemeral") == "ephemeral"
        return self._ephemeral(payload, "(only you) " if ephemeral else "")


def input_blocks(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The input blocks of a modal, in order: what `fill` numbers."""
    return [block for block in view.get("blocks") or [] if block.get("type") == "input"]


def render_modal(method: str, view: dict[str, Any], plain: ConsoleRenderer) -> list[str]:
    """A modal as Slack draws it: title, its blocks, the inputs numbered for `fill`, and its buttons (`plain`
    draws the other blocks, with numbers of its own that `press` does not know)."""
    title = (view.get("title") or {}).get("text", "")
    verb = {"views.open": "opened", "views.push": "pushed", "views.update": "updated"}[method]
    lines = [f"(modal {verb}) {title}"]
    inputs = 0
    for block in view.get("blocks") or []:
        if block.get("type") == "input":
            inputs += 1
            label = (block.get("label") or {}).get("text", "")
            element = block.get("element") or {}
            kind = element.get("type", "")
            extra = " (optional)" if block.get("optional") and "optional" not in label.lower() else ""
            if kind in ("static_select", "radio_buttons", "checkboxes"):
                options = ", ".join(str(o.get("value")) for o in element.get("options") or [])
                extra += f" — one of: {options}"
            initial = element.get("initial_value")
            lines.append(f"    [input {inputs}] {label}{extra}" + (f": {initial}" if initial else ""))
        else:
            lines += ["    " + line for line in plain.blocks_to_lines([block], None, None, None)]
    submit = (view.get("submit") or {}).get("text")
    close = (view.get("close") or {}).get("text", "Cancel")
    hints = []
    if inputs:
        hints.append("fill TEXT" if inputs == 1 else "fill N TEXT")
    if submit:
        hints.append(f"submit ({submit})")
    hints.append(f"close ({close})")
    lines.append("    " + " · ".join(hints))
    return lines
