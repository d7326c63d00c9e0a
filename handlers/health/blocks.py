"""Block Kit for /health, apart from the logic so tests can render a report on its own.

One message for the whole answer: a summary line an on-call reads in a notification, one section per service
with its probes, and a "Run again" button that re-probes in place instead of adding another message. A probe's detail can quote what the service answered: outside text,
escaped (bot/mrkdwn.py). A failing HTTP probe shows the useful part of its answer (FA's `healthy_targets: 0`),
escaped and clipped; a down service gets its runbook's next steps as buttons under its section (the catalog's
`next_steps.down`, narrowed to the probes that failed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot import mrkdwn
from handlers.next_steps import next_step_blocks

if TYPE_CHECKING:
    from handlers.health.model import HealthReport
    from handlers.health.probing import ProbeResult, ServiceHealth

EMOJI = {
    "ok": ":large_green_circle:",
    "degraded": ":large_yellow_circle:",
    "down": ":red_circle:",
    "not configured": ":white_circle:",
}
_ORDER = ("down", "degraded", "ok", "not configured")


def _latency(result: ProbeResult) -> str:
    return "" if result.latency_ms is None else f" {result.latency_ms:.0f} ms"


#: How much of a failing probe's answer is quoted (it is already summarised to 200 characters).
BODY_CHARS = 200


def _probe_line(result: ProbeResult) -> str:
    line = f"{EMOJI[result.status.value]} `{result.name}` {result.status.value}{_latency(result)} — {mrkdwn.escape(result.detail)}"
    if result.body and result.status.value != "ok":
        answered = mrkdwn.outside(result.body.replace("`", "'"), BODY_CHARS)
        line += f" · answered `{answered}`"
    return line


def _down_steps(health: ServiceHealth) -> list[dict[str, Any]]:
    """The runbook's next steps for a down service: those for the probes that failed (or for any)."""
    if health.status.value != "down":
        return []
    failed = {p.name for p in health.probes if p.status.value in ("down", "degraded")}
    return next_step_blocks(health.service, health.service.next_steps.for_down(failed))


def _service_text(health: ServiceHealth, detailed: bool) -> str:
    status = health.status.value
    head = f"{EMOJI[status]} *{health.service.display_name}* — {status}"
    if detailed or status in ("down", "degraded"):
        shown = health.probes if detailed else [p for p in health.probes if p.status.value != "ok"]
        healthy = [p for p in health.probes if p not in shown]
        lines = [head, *(_probe_line(p) for p in shown)]
        if healthy:
            lines.append("ok: " + ", ".join(f"`{p.name}`{_latency(p)}" for p in healthy))
        return "\n".join(lines)
    if status == "not configured":
        missing = sorted({d.removeprefix("set ") for p in health.probes for d in [p.detail]})
        return f"{head} (set {', '.join(missing)})"
    return head + " — " + ", ".join(f"`{p.name}`{_latency(p)}" for p in health.probes)


def summary_text(report: HealthReport) -> str:
    """The notification text: counts by status, naming the services that are not ok."""
    parts = []
    for status in _ORDER:
        names = [h.service.name for h in report.services if h.status.value == status]
        if not names:
            continue
        named = f" ({', '.join(names)})" if status in ("down", "degraded") else ""
        parts.append(f"{len(names)} {status}{named}")
    return "Health: " + ", ".join(parts)


def render_health(
    report: HealthReport, *, scope: str | None, recorded: bool = True
) -> tuple[str, list[dict[str, Any]]]:
    text = summary_text(report)
    if report.detailed:
        health = report.services[0]
        counts = ", ".join(
            f"{sum(p.status.value == status for p in health.probes)} {status}"
            for status in _ORDER
            if any(p.status.value == status for p in health.probes)
        )
        text = f"{health.service.display_name}: {health.status.value} ({len(health.probes)} probes: {counts})"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    for health in report.services:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _service_text(health, report.detailed)}}
        )
        blocks.extend(_down_steps(health))
    context = f"Checked {report.checked_at:%H:%M:%S} UTC for <@{report.requested_by}>"
    if not report.detailed:
        context += " · `/health <service>` shows every probe"
    if not recorded:
        context += " · :warning: the bot's database is unavailable, so this run was not recorded"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "health_rerun",
                    "text": {"type": "plain_text", "text": "Run again"},
                    "value": scope or "",
                }
            ],
        }
    )
    return text, blocks
