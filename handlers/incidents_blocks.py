"""Block Kit for incidents: the root message, the thread replies, the post-mortem draft and the storm digest.

The root is an attachment so Slack shows the status as a colour bar (red triggered, yellow acknowledged, green
resolved); its buttons call PagerDuty. Replies are one line each, in the words an on-call uses.

Everything PagerDuty sends (titles, names, notes, priorities, policies, bridges, event types, ids) and the
Resolve note typed in Slack is outside text: it is escaped here, at render time, with bot/mrkdwn.py, so a title
holding `<!channel>` shows those characters instead of pinging #incidents; links are built only from http(s)
URLs (`mrkdwn.link`). The plain_text header of the post-mortem draft is not mrkdwn and is left as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import mrkdwn

if TYPE_CHECKING:
    from handlers.incidents import IncidentView, TimelineEntry
    from integrations.pagerduty_webhooks import WebhookEvent

ACK_ACTION = "incident_ack"
RESOLVE_ACTION = "incident_resolve"
NOTE_ACTION = "incident_note"
POSTMORTEM_ACTION = "incident_postmortem_scheduled"

DIGEST_SECTION_CHARS = 2900  # Slack: 3,000 characters per section text
DIGEST_MAX_SECTIONS = 45  # Slack: 50 blocks per message, a few for the header and the note
COLOURS = {"triggered": "#E01E5A", "acknowledged": "#ECB22E", "resolved": "#2EB67D"}
STATUS_EMOJI = {
    "triggered": ":red_circle:",
    "acknowledged": ":large_yellow_circle:",
    "resolved": ":white_check_mark:",
}


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "?"
    minutes = max(0, int((end - start).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def _people(names: tuple[str, ...]) -> str:
    """PagerDuty names, escaped, joined."""
    return ", ".join(mrkdwn.escape(name) for name in names) if names else "nobody"


def _raw_name(person: Any) -> str:
    return (
        (getattr(person, "name", None) or getattr(person, "id", None) or "someone") if person else "PagerDuty"
    )


def _name(person: Any) -> str:
    """A PagerDuty person's name (outside text), escaped."""
    return mrkdwn.escape(_raw_name(person))


def _or_dash(value: str | None) -> str:
    return mrkdwn.escape(value) if value else "—"


def _field(label: str, value: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def root_text(view: IncidentView) -> str:
    """The notification text: what a phone shows."""
    status = (view.status or "triggered").capitalize()
    urgency = f", {mrkdwn.escape(view.urgency)} urgency" if view.urgency else ""
    return (
        f"{mrkdwn.escape(status)}: [#{mrkdwn.escape(view.number)}] {mrkdwn.escape(view.title)} "
        f"({mrkdwn.escape(view.service_name)}{urgency})"
    )


def render_root(view: IncidentView, now: datetime) -> tuple[str, list[dict[str, Any]]]:
    """(text, attachments) for chat.postMessage / chat.update."""
    status = view.status or "triggered"
    shown = mrkdwn.link(view.html_url, f"[#{view.number}] {view.title}", limit=2900)
    title = f"{STATUS_EMOJI.get(status, ':grey_question:')} *{shown}*"
    if status == "resolved":
        age = f"resolved after {duration(view.triggered_at, view.resolved_at)}"
    else:
        age = f"open for {duration(view.triggered_at, now)}"
    fields = [
        _field("Status", mrkdwn.escape(status.capitalize())),
        _field("Service", mrkdwn.escape(view.service_name)),
        _field("Urgency", _or_dash(view.urgency)),
        _field("Priority", _or_dash(view.priority)),
        _field("Assigned to", _people(view.assignees)),
        _field("Escalation policy", _or_dash(view.escalation_policy)),
    ]
    if view.conference_url or view.conference_number:
        parts = []
        if view.conference_url:
            parts.append(mrkdwn.link(view.conference_url, view.conference_url))
        if view.conference_number:
            parts.append(mrkdwn.escape(view.conference_number))
        fields.append(_field("Conference bridge", " · ".join(parts)))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {"type": "section", "fields": fields[:10]},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"PagerDuty {mrkdwn.escape(view.id)} · triggered {view.triggered_at:%H:%M} UTC · {age}"
                    if view.triggered_at
                    else f"PagerDuty {mrkdwn.escape(view.id)}",
                }
            ],
        },
    ]
    if status != "resolved":
        buttons = []
        if status == "triggered":
            buttons.append(_button("Acknowledge", ACK_ACTION, view.id, "primary"))
        buttons.append(_button("Resolve", RESOLVE_ACTION, view.id))
        buttons.append(_button("Add note", NOTE_ACTION, view.id))
        blocks.append({"type": "actions", "elements": buttons})
    attachments = [{"color": COLOURS.get(status, "#868686"), "blocks": blocks, "fallback": root_text(view)}]
    return root_text(view), attachments


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def reply_text(event: WebhookEvent, previous_priority: str | None, resolution: str | None) -> str:
    """One thread reply per event, in the on-call's words; unknown types still get a line, never silence. The
    reply is mrkdwn: every PagerDuty word in it, and the Resolve note (`resolution`), is escaped."""
    kind = event.event_type.removeprefix("incident.")
    agent = _name(event.agent)
    snapshot = event.incident
    assignees = _people(tuple(_raw_name(p) for p in snapshot.assignees)) if snapshot else "?"
    if kind == "acknowledged":
        return f":eyes: Acknowledged by {agent}"
    if kind == "unacknowledged":
        return ":warning: Unacknowledged: the acknowledgement timed out and the incident is open again"
    if kind == "escalated":
        return f":arrow_up: Escalated to {assignees}"
    if kind == "reassigned":
        return f":arrows_counterclockwise: Reassigned to {assignees} by {agent}"
    if kind == "delegated":
        policy = snapshot.escalation_policy if snapshot else None
        return f":arrows_counterclockwise: Delegated to {mrkdwn.escape(policy) if policy else assignees} by {agent}"
    if kind == "annotated":
        return f":memo: Note by {agent}: {mrkdwn.escape(event.note or '')}".rstrip()
    if kind == "priority_updated":
        new = snapshot.priority if snapshot else None
        before, after = mrkdwn.escape(previous_priority or "none"), mrkdwn.escape(new or "none")
        return f":arrow_up_down: Priority {before} → {after} (by {agent})"
    if kind == "responder.added":
        message = f": {mrkdwn.escape(event.responder_message)}" if event.responder_message else ""
        return f":sos: {_name(event.responder)} added as a responder by {agent}{message}"
    if kind == "responder.replied":
        message = f": {mrkdwn.escape(event.responder_message)}" if event.responder_message else ""
        return f":speech_balloon: {_name(event.responder)} replied to the responder request{message}"
    if kind == "status_update_published":
        return f":loudspeaker: Status update by {agent}: {mrkdwn.escape(event.status_update or '')}".rstrip()
    if kind == "resolved":
        reason = f" — {mrkdwn.escape(resolution)}" if resolution else ""
        return f":white_check_mark: Resolved by {agent}{reason}"
    if kind == "reopened":
        return f":repeat: Reopened by {agent}"
    return f":information_source: {mrkdwn.escape(event.event_type)} (by {agent})"


def render_postmortem(view: IncidentView, timeline: list[TimelineEntry]) -> tuple[str, list[dict[str, Any]]]:
    """The draft; timeline entries are reply lines, already mrkdwn (escaped by `reply_text`)."""
    lines = [f"{entry.at:%H:%M} UTC — {entry.text}" for entry in timeline]
    facts = (
        f"*Time to acknowledge:* {duration(view.triggered_at, view.acknowledged_at)}"
        f"  ·  *Time to resolve:* {duration(view.triggered_at, view.resolved_at)}"
    )
    text = f"Post-mortem draft for [#{mrkdwn.escape(view.number)}] {mrkdwn.escape(view.title)}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"Post-mortem draft: [#{view.number}] {view.title}"[:150]},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": facts}},
        {"type": "section", "text": {"type": "mrkdwn", "text": ("*Timeline*\n" + "\n".join(lines))[:3000]}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Impact*\n_who was affected, how, for how long_\n"
                "*Root cause*\n_…_\n*What went well / what did not*\n_…_\n*Actions*\n_…_",
            },
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Schedule the post-mortem within 48 hours (FA runbook, P0 resolution step 5).",
                }
            ],
        },
        {
            "type": "actions",
            "elements": [_button("Post-mortem scheduled", POSTMORTEM_ACTION, view.id, "primary")],
        },
    ]
    return text, blocks


def render_digest(channel_incidents: list[IncidentView]) -> tuple[str, list[dict[str, Any]]]:
    """One message standing for many incidents during a storm: count, services, titles, links."""
    services = sorted({mrkdwn.escape(view.service_name) for view in channel_incidents})
    text = f":rotating_light: Incident storm: {len(channel_incidents)} incidents ({', '.join(services)})"
    sections: list[str] = []
    current = ""
    for view in channel_incidents:
        link = mrkdwn.link(view.html_url, f"#{view.number}")
        title = mrkdwn.outside(view.title, 80)
        line = f"{STATUS_EMOJI.get(view.status or 'triggered', '')} {link} {title} · {mrkdwn.escape(view.service_name)}"
        if len(current) + len(line) + 1 > DIGEST_SECTION_CHARS:
            sections.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(current)
    shown = sections[:DIGEST_MAX_SECTIONS]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in shown]
    note = (
        "Too many incidents at once for a message each: an incident gets its own thread when someone acts on "
        "it or when the storm passes."
    )
    if len(sections) > len(shown):
        hidden = sum(chunk.count("\n") + 1 for chunk in sections[len(shown) :])
        note += f" {hidden} more are listed in PagerDuty (Slack's message size limit)."
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return text, blocks
