"""`/flag history [service|FLAG] [N]`: the flag changes the bot made, newest first — who, when, before → after,
the change number and how to revert it.

Read-only (it needs no guard) and ephemeral: it reads `flag_changes`, the record every change (typed, preset,
rollout, revert, rollback step) is written to before anything is sent to a backend. One section per change, each
clipped, and at most `HISTORY_MAX` changes, so a reply stays inside Slack's limits (50 blocks, 3000 characters a
section). Values are outside text (typed by people, read from services): escaped here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bot import mrkdwn
from bot.context import BotContext
from handlers.flags.changes import to_wire
from handlers.flags.parsing import FlagHistory

SECTION_LIMIT = 2900
KIND_WORDS = {"rollback": "rollback step"}


async def load(bot: BotContext, request: FlagHistory) -> list[dict[str, Any]]:
    service = request.service.name if request.service else None
    flag = Jsonb([{"flag": request.flag.name}]) if request.flag else None
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT id, service, kind, label, requested_by, decided_by, status, changes, reverts, reverted_by,
                      created_at, applied_at
               FROM flag_changes
               WHERE (%(service)s::text IS NULL OR service = %(service)s)
                 AND (%(flag)s::jsonb IS NULL OR changes @> %(flag)s::jsonb)
               ORDER BY id DESC LIMIT %(limit)s""",
            {"service": service, "flag": flag, "limit": request.limit},
        )
        return list(await cursor.fetchall())


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "?"


def _value(entry: dict[str, Any], default: str | None) -> str:
    before = entry["before"]
    if not before.get("known", True):
        return "?"
    return mrkdwn.escape(before["value"] if before["present"] else f"{default} (default)")


def _line(bot: BotContext, row: dict[str, Any], entry: dict[str, Any]) -> str:
    service = bot.catalog.find(row["service"])
    flag = service.flag(entry["flag"]) if service else None
    default = to_wire(flag.default) if flag else None
    after = entry["after"]
    after_text = mrkdwn.escape(after) if after is not None else f"{default} (default)"
    return f"• `{row['service']}:{entry['flag']}` {_value(entry, default)} → {after_text}"


def _section(bot: BotContext, row: dict[str, Any]) -> dict[str, Any]:
    kind = KIND_WORDS.get(row["kind"], row["kind"])
    label = f" {mrkdwn.escape(row['label'])}" if row["label"] and row["kind"] != "revert" else ""
    who = f"<@{row['requested_by']}>"
    if row["decided_by"] and row["decided_by"] != row["requested_by"]:
        who += f", confirmed by <@{row['decided_by']}>"
    head = (
        f"*Change {row['id']}* · {kind}{label} · {who} · {_when(row['applied_at'] or row['created_at'])}"
        + ("" if row["status"] == "applied" else f" · _{row['status']}_")
    )
    lines = [head] + [_line(bot, row, entry) for entry in row["changes"]]
    if row["reverts"] is not None:
        lines.append(f"Reverts change {row['reverts']}.")
    if row["reverted_by"] is not None:
        lines.append(f"Reverted by change {row['reverted_by']}.")
    elif row["status"] == "applied":
        lines.append(f"Revert: `/flag revert {row['id']}`")
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": mrkdwn.clip("\n".join(lines), SECTION_LIMIT)},
    }


def render(
    bot: BotContext, request: FlagHistory, rows: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    subject = (
        f"`{request.service.name}:{request.flag.name}`"
        if request.flag and request.service
        else (request.service.display_name if request.service else "every service")
    )
    if not rows:
        text = f"No flag changes of {subject} yet."
        return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    text = f"Flag history of {subject}: the last {len(rows)} change{'s' if len(rows) != 1 else ''}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*, newest first"}}
    ]
    blocks += [_section(bot, row) for row in rows]
    return text, blocks[:50]
