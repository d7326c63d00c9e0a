"""Block Kit for next steps: one actions block of buttons, plus a context line for runbook sections that have no
link yet.

A command step is a button with action_id `next_step.run.<key>.<n>` (Slack wants action_ids unique within a
block, and a /health message holds the steps of several services) and the command line as value; a runbook step is
a URL button (`next_step.link.<key>.<n>`: Slack still sends its click, which the bot acks and ignores). A runbook
whose `url` is unset cannot be a button: its sections are named in the context line with the variable to set,
as the handoff's runbook item does. Labels and commands are catalog text, not outside text.
"""

from __future__ import annotations

import re
from typing import Any

from bot.catalog import NextStep, Service, missing_env, runbook_of, section_url

RUN_ACTION = "next_step.run"
LINK_ACTION = "next_step.link"
#: Slack: a button's value is at most 2,000 characters, its text 75, an action_id 255.
VALUE_CHARS = 2000
_KEY = re.compile(r"[^A-Za-z0-9_.-]")


def run_button(label: str, command: str, *, key: str = "", style: str | None = None) -> dict[str, Any]:
    """A button that runs `command` as the clicking user, as if typed."""
    action_id = f"{RUN_ACTION}.{_KEY.sub('-', key)}" if key else RUN_ACTION
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id[:255],
        "text": {"type": "plain_text", "text": label[:75]},
        "value": command[:VALUE_CHARS],
    }
    if style:
        button["style"] = style
    return button


def _link_button(label: str, url: str, key: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": f"{LINK_ACTION}.{_KEY.sub('-', key)}"[:255],
        "text": {"type": "plain_text", "text": label[:75]},
        "url": url,
    }


def next_step_blocks(service: Service, steps: list[NextStep], *, key: str = "") -> list[dict[str, Any]]:
    """The steps as blocks: an actions block with a button each, and a context line naming the runbook sections
    that cannot be linked (their runbook's `url` unset). No steps: no blocks."""
    prefix = f"{key or service.name}"
    buttons: list[dict[str, Any]] = []
    unlinked: list[str] = []
    for number, step in enumerate(steps, start=1):
        step_key = f"{prefix}.{number}"
        if step.command is not None:
            buttons.append(run_button(step.title, step.command, key=step_key))
            continue
        assert step.runbook is not None
        url = section_url(service.runbooks, step.runbook)
        if url is not None:
            buttons.append(_link_button(step.title, url, step_key))
            continue
        runbook = runbook_of(service.runbooks, step.runbook)
        missing = missing_env(runbook.url) if runbook and runbook.url else []
        where = f"`{runbook.file}` § {step.runbook.section}" if runbook else step.runbook.section
        unlinked.append(where + (f" (set {', '.join(missing)} to link it)" if missing else ""))
    blocks: list[dict[str, Any]] = []
    if buttons:
        blocks.append({"type": "actions", "block_id": f"next_steps.{prefix}"[:255], "elements": buttons})
    if unlinked:
        text = "*Next steps* · runbook: " + " · ".join(unlinked)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]})
    return blocks
