"""Block Kit for /flag, apart from the logic: lists, one flag, the confirmation of a risky change, the outcome.

Flag values (read from a service's Supabase secrets or flag table, or typed into `/flag set`) and the backends'
error words are outside text, escaped here with bot/mrkdwn.py; flag names and descriptions come from the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot import mrkdwn
from bot.catalog import Service
from handlers.flags.changes import ApplyResult, CurrentValue, FlagChange, restart_command, to_wire

BACKEND_NAMES = {"supabase_secrets": "Supabase secret", "postgres_table": "flag table"}
DIRECTION_WORDS = {
    "on": "turned on",
    "off": "turned off",
    "raise": "raised",
    "lower": "lowered",
    "any": "changed",
}
NEXT_STEP_ACTION = "next_step.run"  # runs its value as a command, as the clicking user (registry and guards)
LOW_BUDGET = 10  # warn when fewer backend API calls than this are left in the window


@dataclass(frozen=True)
class ServiceFlags:
    service: Service
    current: dict[str, CurrentValue]
    error: str | None


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else ""


def _last_change(value: CurrentValue) -> str:
    if value.last_set_by is None:
        return "never changed by the bot"
    return f"last set by <@{value.last_set_by}> {_when(value.last_set_at)} (change {value.last_change})"


def _flag_line(value: CurrentValue) -> str:
    flag = value.flag
    risk = " :warning: risky" if flag.risk == "high" else ""
    outside = " · :eyes: changed outside the bot" if value.outside and value.known else ""
    return (
        f"`{flag.name}` *{mrkdwn.escape(value.display())}* · default {to_wire(flag.default)} · {BACKEND_NAMES[flag.backend]}"
        f"{risk}{outside} · {_last_change(value)}"
    )


def render_list(sections: list[ServiceFlags]) -> tuple[str, list[dict[str, Any]]]:
    blocks: list[dict[str, Any]] = []
    for entry in sections:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": entry.service.display_name}})
        if entry.error:
            blocks.append(_section(f":x: {mrkdwn.escape(entry.error)}"))
            continue
        lines = [_flag_line(entry.current[flag.name]) for flag in entry.service.flags]
        blocks.append(_section("\n".join(lines)))
    names = ", ".join(entry.service.display_name for entry in sections)
    return f"Flags of {names}", blocks[:50]


def render_get(service: Service, value: CurrentValue) -> tuple[str, list[dict[str, Any]]]:
    flag = value.flag
    text = f"{flag.name} on {service.display_name}: {mrkdwn.escape(value.display())}"
    lines = [
        f"*{flag.name}* on {service.display_name}: *{mrkdwn.escape(value.display())}*",
        f"{flag.description} · type {flag.type}"
        + (f" ({', '.join(flag.allowed)})" if flag.allowed else "")
        + (f" ({flag.min}–{flag.max})" if flag.min is not None or flag.max is not None else ""),
        f"default {to_wire(flag.default)} · {BACKEND_NAMES[flag.backend]} · {_last_change(value)}",
    ]
    if value.outside:
        lines.append(
            ":eyes: The backend no longer holds the value the bot last set: someone changed it outside the bot."
        )
    if flag.applies_on == "restart":
        lines.append(f"Read at start: a change needs a restart to apply (`{restart_command(service)}`).")
    blocks = [_section("\n".join(lines))]
    if isinstance(flag.verify, str):
        blocks.append(_context(f"Verify after a change: {flag.verify}"))
    elif flag.verify:
        hints = [f"{DIRECTION_WORDS[way]}: {hint}" for way, hint in flag.verify.items()]
        blocks.append(_context("Verify after a change — " + " · ".join(hints)))
    return text, blocks


def render_confirm(
    change: FlagChange, confirm_action: str, cancel_action: str
) -> tuple[str, list[dict[str, Any]]]:
    what = mrkdwn.escape(change.label or change.kind)
    text = f"Confirm change {change.id} on {change.service.display_name}: {mrkdwn.escape(change.describe())}"
    lines = [
        f":warning: *Risky change {change.id}* on *{change.service.display_name}* ({what}). This will change:"
    ]
    lines += [
        f"• {mrkdwn.escape(item.describe())}" + (" — *risky*" if item.flag.risk == "high" else "")
        for item in change.items
    ]
    hints = [f"`{i.flag.name}`: {hint}" for i in change.items if (hint := i.verify_hint)]
    blocks: list[dict[str, Any]] = [_section("\n".join(lines))]
    if hints:
        blocks.append(_context("Afterwards verify: " + " · ".join(hints)))
    if change.needs_restart:
        blocks.append(
            _context(
                f"{change.service.display_name} reads this at start: it needs a restart to apply afterwards."
            )
        )
    blocks.append(_context("Confirm within 15 minutes; nothing changes until you do."))
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": confirm_action,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Confirm"},
                    "value": str(change.id),
                },
                {
                    "type": "button",
                    "action_id": cancel_action,
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "value": str(change.id),
                },
            ],
        }
    )
    return text, blocks


def _budget(result: ApplyResult) -> str | None:
    limits = [r.rate_limit for r in result.responses if r.rate_limit and r.rate_limit.remaining is not None]
    error_limit = getattr(result.error, "rate_limit", None)
    if error_limit is not None and error_limit.remaining is not None:
        limits.append(error_limit)
    low = [limit for limit in limits if limit.remaining is not None and limit.remaining < LOW_BUDGET]
    if not low:
        return None
    limit = low[-1]
    return (
        f":hourglass_flowing_sand: Backend API budget low: {limit.remaining} of {limit.limit} requests left."
    )


def render_result(result: ApplyResult) -> tuple[str, list[dict[str, Any]]]:
    change = result.change
    blocks: list[dict[str, Any]] = []
    if result.ok:
        text = (
            f"Change {change.id} applied on {change.service.display_name}: {mrkdwn.escape(change.describe())}"
        )
        blocks.append(
            _section(
                f":white_check_mark: *Change {change.id} applied* on {change.service.display_name}:\n"
                + "\n".join(f"• {mrkdwn.escape(item.describe())}" for item in change.items)
            )
        )
    else:
        done = ", ".join(mrkdwn.escape(item.describe()) for item in result.applied)
        text = f"Change {change.id} failed on {change.service.display_name}: {mrkdwn.escape(result.error)}"
        lines = [
            f":x: *Change {change.id} failed* on {change.service.display_name}: {mrkdwn.escape(result.error)}"
        ]
        lines.append(f"Applied before the failure: {done}." if done else "Nothing changed.")
        blocks.append(_section("\n".join(lines)))
    hints = [f"`{i.flag.name}`: {hint}" for i in result.applied if (hint := i.verify_hint)]
    if hints:
        blocks.append(_context("Verify: " + " · ".join(hints)))
    if result.applied:
        blocks.append(_context(f"Undo with `/flag revert {change.id}`."))
    if any(item.flag.applies_on == "restart" for item in result.applied):
        blocks += restart_blocks(change.service)
    budget = _budget(result)
    if budget:
        blocks.append(_context(budget))
    return text, blocks


def restart_blocks(service: Service) -> list[dict[str, Any]]:
    """The hint and the button for a flag the service reads only at start (AI Assistant SOP-002 step 4)."""
    command = restart_command(service)
    return [
        _section(f":arrows_counterclockwise: {service.display_name} needs a restart to apply: `{command}`"),
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": NEXT_STEP_ACTION,
                    "text": {"type": "plain_text", "text": f"Restart {service.name}"},
                    "value": command,
                }
            ],
        },
    ]


def _button(action_id: str, text: str, value: str, style: str | None = None) -> dict[str, Any]:
    button = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }
    return button | ({"style": style} if style else {})


def render_conflict(
    change: FlagChange, anyway_action: str, skip_action: str, cancel_action: str
) -> tuple[str, list[dict[str, Any]]]:
    """A revert that would overwrite later changes: which flag, changed by which change and whom, what it is now;
    then the decision. Only the flags listed here are at stake: the others are put back either way."""
    original = change.reverts
    lines = [
        f":warning: *Reverting change {original} would overwrite later changes* on {change.service.display_name}:"
    ]
    for item in change.items:
        conflict = change.conflicts.get(item.flag.name)
        if conflict is None:
            continue
        since = (
            f"change {conflict['change']} by <@{conflict['by']}>"
            if conflict.get("change") is not None
            else "someone outside the bot"
        )
        lines.append(
            f"• `{item.flag.name}` was changed since by {since}: it is *{mrkdwn.escape(conflict['now'])}* now; "
            f"the revert would set "
            + (
                mrkdwn.escape(item.after)
                if item.after is not None
                else f"its default ({to_wire(item.flag.default)})"
            )
        )
    clean = [
        mrkdwn.escape(item.describe()) for item in change.items if item.flag.name not in change.conflicts
    ]
    if clean:
        lines.append("Put back either way: " + ", ".join(clean) + ".")
    if change.risky:
        lines.append(":warning: This revert changes a *risky* flag.")
    skip = "Skip that flag" if len(change.conflicts) == 1 else "Skip those flags"
    text = f"Reverting change {original} would overwrite later changes: revert anyway or skip?"
    blocks: list[dict[str, Any]] = [
        _section("\n".join(lines)),
        _context("Decide within 15 minutes; nothing changes until you do."),
        {
            "type": "actions",
            "elements": [
                _button(anyway_action, "Revert anyway", str(change.id), "danger"),
                _button(skip_action, skip, str(change.id)),
                _button(cancel_action, "Cancel", str(change.id)),
            ],
        },
    ]
    return text, blocks


def render_presets(services: list[Service]) -> tuple[str, list[dict[str, Any]]]:
    """Each service's presets with what each sets, and the command that applies it."""
    blocks: list[dict[str, Any]] = []
    for service in services:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": service.display_name}})
        if not service.presets:
            blocks.append(_section("No presets."))
            continue
        for preset in service.presets:
            sets = ", ".join(f"`{name}` → {to_wire(value)}" for name, value in preset.values.items())
            blocks.append(
                _section(
                    f"*{preset.name}* — {mrkdwn.escape(preset.description)}\nSets {sets}\n"
                    f"`/flag preset {service.name} {preset.name}`"
                )
            )
    names = ", ".join(service.display_name for service in services)
    return f"Presets of {names}", blocks[:50]
