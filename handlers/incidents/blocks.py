"""Block Kit for incidents: the root message, the post-mortem draft and the storm digest (the thread's one line
per event is lines.py).

The root is an attachment so Slack shows the status as a colour bar (red triggered, yellow acknowledged, green
resolved); its buttons call PagerDuty.

Everything here fits Slack's limits (bot/slack_limits.py) whatever PagerDuty sends: outside text is escaped and
clipped (`bot.mrkdwn.outside`) with the root's title linking to the incident's PagerDuty page for the full text,
lists are capped ("and 23 more"), and a reply longer than one message is cut into several (lines.py). What
Slack still refuses gets `fallback_text` instead (bot/slack_once.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import slack_limits
from bot.mrkdwn import clip, escape, link, listed, outside, safe_url
from handlers.next_steps import next_step_blocks

if TYPE_CHECKING:
    from handlers.incidents.model import IncidentView, TimelineEntry

ACK_ACTION = "incident_ack"
RESOLVE_ACTION = "incident_resolve"
NOTE_ACTION = "incident_note"
POSTMORTEM_ACTION = "incident_postmortem_scheduled"
ESCALATE_ACTION = "incident_escalate"

DIGEST_SECTION_CHARS = 2900  # Slack: 3,000 characters per section text
DIGEST_MAX_SECTIONS = 45  # Slack: 50 blocks per message, a few for the header and the note
TITLE_CHARS = 1000  # a title is clipped here; the root links to PagerDuty's page for the rest
NAME_CHARS = 100  # a person, a service, a policy
NUMBER_CHARS = 20  # PagerDuty's incident number (an integer PagerDuty sets; a hostile payload may not)
TIMELINE_LINE_CHARS = 300  # a line of the post-mortem's timeline (its note is in the thread in full)
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


def _people(names: tuple[str, ...], limit: int = slack_limits.FIELD_TEXT) -> str:
    """Names (outside text) escaped, each clipped, the list capped within `limit` ("…, Bob and 23 more")."""
    return listed([outside(name, NAME_CHARS) for name in names], limit)


def _field(label: str, value: str) -> dict[str, Any]:
    """A section field, its rendered `value` clipped to what is left of Slack's 2,000 characters."""
    head = f"*{label}*\n"
    return {"type": "mrkdwn", "text": head + clip(value, slack_limits.FIELD_TEXT - len(head))}


def _ref(view: IncidentView) -> str:
    """`[#1234]`: the number PagerDuty gives the incident."""
    return f"[#{clip(str(view.number), NUMBER_CHARS)}]"


def root_text(view: IncidentView) -> str:
    """The notification text: what a phone shows."""
    status = (view.status or "triggered").capitalize()
    urgency = f", {outside(view.urgency, NAME_CHARS)} urgency" if view.urgency else ""
    service = outside(view.service_name, NAME_CHARS)
    return f"{status}: {_ref(view)} {outside(view.title, TITLE_CHARS)} ({service}{urgency})"


def _title_line(view: IncidentView, emoji: str) -> str:
    """The root's first line: the title, clipped, linking to PagerDuty's incident page (where it is in full)."""
    label = f"{_ref(view)} {view.title}"
    room = slack_limits.SECTION_TEXT - len(emoji) - 3  # "emoji *…*"
    url = safe_url(view.html_url)
    if url is not None and len(url) + 3 + 50 <= room:  # "<url|label>", with room for a useful label
        return f"{emoji} *{link(url, label, limit=min(TITLE_CHARS, room - len(url) - 3))}*"
    return f"{emoji} *{outside(label, min(TITLE_CHARS, room))}*"


def fallback_text(view: IncidentView, what: str = "incident") -> str:
    """The minimal text-only message posted when Slack refuses the full one as invalid: it names the incident and
    links to PagerDuty, and fits any limit."""
    status = (view.status or "triggered").capitalize()
    where = link(view.html_url, "PagerDuty", trusted_label=True)
    return (
        f"{STATUS_EMOJI.get(view.status or 'triggered', ':grey_question:')} {status}: {_ref(view)} "
        f"{outside(view.title, 200)} ({outside(view.service_name, NAME_CHARS)}). Slack could not show this "
        f"{what} in full; see it in {where} ({outside(view.id, NAME_CHARS)})."
    )


#: The root of an incident promoted from a storm digest when the storm passed: where its earlier events are.
FROM_DIGEST_NOTE = (
    ":thread: Listed in the storm digest during the storm: its earlier events are in the storm digest's thread "
    "in this channel; the next ones are in this thread."
)


def render_root(
    view: IncidentView, now: datetime, *, from_digest: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """(text, attachments) for chat.postMessage / chat.update; `from_digest`: the incident was listed in a storm
    digest before this root (its earlier events are in the digest's thread)."""
    status = view.status or "triggered"
    title = _title_line(view, STATUS_EMOJI.get(status, ":grey_question:"))
    if status == "resolved":
        age = f"resolved after {duration(view.triggered_at, view.resolved_at)}"
    else:
        age = f"open for {duration(view.triggered_at, now)}"
    fields = [
        _field("Status", outside(status.capitalize(), NAME_CHARS)),
        _field("Service", outside(view.service_name, NAME_CHARS)),
        _field("Urgency", outside(view.urgency or "—", NAME_CHARS)),
        _field("Priority", outside(view.priority or "—", NAME_CHARS)),
        _field("Assigned to", _people(view.assignees, slack_limits.FIELD_TEXT - 20)),
        _field("Escalation policy", outside(view.escalation_policy or "—", NAME_CHARS)),
    ]
    if view.conference_url or view.conference_number:
        bridge = " · ".join(
            outside(part, 500) for part in (view.conference_url, view.conference_number) if part
        )
        fields.append(_field("Conference bridge", bridge))
    incident = outside(view.id, NAME_CHARS)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {"type": "section", "fields": fields[: slack_limits.SECTION_FIELDS]},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"PagerDuty {incident} · triggered {view.triggered_at:%H:%M} UTC · {age}"
                    if view.triggered_at
                    else f"PagerDuty {incident}",
                }
            ],
        },
    ]
    if from_digest:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": FROM_DIGEST_NOTE}]})
    if status != "resolved":
        buttons = []
        if status == "triggered":
            buttons.append(_button("Acknowledge", ACK_ACTION, view.id, "primary"))
        buttons.append(_button("Resolve", RESOLVE_ACTION, view.id))
        buttons.append(_button("Add note", NOTE_ACTION, view.id))
        # The runbook's next steps for an incident (catalog `next_steps.incident`), above the PagerDuty buttons.
        if view.service is not None:
            blocks.extend(next_step_blocks(view.service, view.service.next_steps.incident))
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


def render_postmortem(view: IncidentView, timeline: list[TimelineEntry]) -> tuple[str, list[dict[str, Any]]]:
    lines = [clip(f"{entry.at:%H:%M} UTC — {entry.text}", TIMELINE_LINE_CHARS) for entry in timeline]
    facts = (
        f"*Time to acknowledge:* {duration(view.triggered_at, view.acknowledged_at)}"
        f"  ·  *Time to resolve:* {duration(view.triggered_at, view.resolved_at)}"
    )
    text = f"Post-mortem draft for {_ref(view)} {outside(view.title, TITLE_CHARS)}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(f"Post-mortem draft: {_ref(view)} {view.title}", slack_limits.HEADER_TEXT),
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": facts}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": clip("*Timeline*\n" + "\n".join(lines), slack_limits.SECTION_TEXT),
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Impact*\n_who was affected, how, for how long_\n"
                "*Root cause*\n_…_\n*What went well / what did not*\n_…_\n*Actions*\n_…_",
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": postmortem_steps(view)}},
        {
            "type": "actions",
            "elements": [_button("Post-mortem scheduled", POSTMORTEM_ACTION, view.id, "primary")],
        },
    ]
    return text, blocks


def nudge_blocks(text: str, incident_id: str) -> list[dict[str, Any]]:
    """The SLA nudge: its words, and the two things the runbooks' escalation paths ask for now — acknowledge,
    or escalate to the next level (handlers/incidents/escalate.py)."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, slack_limits.SECTION_TEXT)}},
        {
            "type": "actions",
            "elements": [
                _button("Acknowledge", ACK_ACTION, incident_id, "primary"),
                _button("Escalate", ESCALATE_ACTION, incident_id),
            ],
        },
    ]


def postmortem_link_text(view: IncidentView, channel: str, where: str | None) -> str:
    """The line in the other channels' threads: the draft is in `channel`'s thread (one draft per incident)."""
    thread = f"the {channel} thread"
    url = safe_url(where)
    # Slack reads `&` as the start of an entity everywhere in the text, a link's URL included.
    shown = f"<{url.replace('&', '&amp;')}|{thread}>" if url else thread
    return f":memo: Post-mortem draft for {_ref(view)}: in {shown}."


def postmortem_steps(view: IncidentView) -> str:
    """What the incident's own service's runbook asks after an incident (catalog `postmortem`), quoted with its
    runbook and section; a service without such a step, or an incident of no catalog service, says so and how to
    give it one. Catalog text is escaped like any other: a copied catalog is not the bot's own wording."""
    service = view.service
    if service is None:
        return (
            f"*Next steps:* {outside(view.service_name, NAME_CHARS)} is not in the service catalog, so no runbook "
            "says what follows an incident: agree on a review with the team."
        )
    runbook = service.postmortem_runbook()
    title = escape(runbook.title) if runbook else f"{escape(service.display_name)}'s runbook"
    if service.postmortem is None:
        return (
            f"*Next steps:* the {title} has no post-mortem step: agree on a review with the team, and give "
            f"{escape(service.name)} a `postmortem` entry in the service catalog."
        )
    steps = "\n".join(
        f"{n}. {clip(escape(step), 300)}" for n, step in enumerate(service.postmortem.steps[:10], 1)
    )
    return clip(
        f"*Next steps, from the {title} ({escape(service.postmortem.section)}):*\n{steps}",
        slack_limits.SECTION_TEXT,
    )


def digest_fallback(channel_incidents: list[IncidentView]) -> str:
    """The digest as text only, for when Slack refuses the full one."""
    text, _ = render_digest(channel_incidents)
    return clip(text, 2000) + " — the incidents are listed in PagerDuty."


def render_digest(channel_incidents: list[IncidentView]) -> tuple[str, list[dict[str, Any]]]:
    """One message standing for many incidents during a storm: count, services, and a line per incident with its
    link, title and current state (edited as the state changes, so the digest is never a stale list)."""
    text, blocks, _ = render_digest_listing(channel_incidents)
    return text, blocks


def render_digest_listing(
    channel_incidents: list[IncidentView],
) -> tuple[str, list[dict[str, Any]], int]:
    """`render_digest`, and how many of the incidents (the first ones) it lists: the rest are beyond Slack's
    message size ("N more are listed in PagerDuty")."""
    services = sorted({outside(view.service_name, NAME_CHARS) for view in channel_incidents})
    text = (
        f":rotating_light: Incident storm: {len(channel_incidents)} incidents "
        f"({listed(services, slack_limits.SECTION_TEXT // 2)})"
    )
    sections: list[str] = []
    counts: list[int] = []
    current = ""
    for view in channel_incidents:
        number = _ref(view)[1:-1]
        url = safe_url(view.html_url)
        ref = link(url, number, trusted_label=True) if url and len(url) < 500 else number
        title, service = outside(view.title, 80), outside(view.service_name, NAME_CHARS)
        state = outside(view.status or "triggered", NAME_CHARS)
        line = f"{STATUS_EMOJI.get(view.status or 'triggered', '')} {ref} {title} · {service} · _{state}_"
        if len(current) + len(line) + 1 > DIGEST_SECTION_CHARS:
            sections.append(current)
            counts.append(current.count("\n") + 1)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(current)
        counts.append(current.count("\n") + 1)
    shown = sections[:DIGEST_MAX_SECTIONS]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in shown]
    note = (
        "Too many incidents at once for a message each: their events are in this message's thread, and each "
        "incident still open when the storm passes gets its own thread."
    )
    if len(sections) > len(shown):
        hidden = sum(chunk.count("\n") + 1 for chunk in sections[len(shown) :])
        note += f" {hidden} more are listed in PagerDuty (Slack's message size limit)."
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return text, blocks, sum(counts[: len(shown)])
