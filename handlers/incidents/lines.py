"""The thread's words: one line per PagerDuty event, in the on-call's language, and its cutting into messages.

Every incident event gets a line (README, PagerDuty incidents): the documented ones their own — acknowledged,
escalated, a note, a new conference bridge, a role assigned, a workflow started or completed, a task, an action
run — and any other `incident.*` type, including one PagerDuty adds later, a generic line naming it. Outside
text (names, notes, the bridge's number) is escaped with bot/mrkdwn.py; a note, a status update, a resolution are
read in full, escaped and not clipped: `reply_parts` cuts a line longer than a message into several. The bridge's
URL is linked only when it is a safe http(s) URL (`bot.mrkdwn.safe_url`); otherwise it is shown as text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot import slack_limits
from bot.mrkdwn import escape, label, listed, outside, safe_url, split

if TYPE_CHECKING:
    from integrations.pagerduty_webhooks import WebhookEvent

NAME_CHARS = 100  # a person, a service, a policy, a role, a workflow
BRIDGE_CHARS = 500  # a conference bridge number or URL
REPLY_PART_CHARS = slack_limits.MESSAGE_TEXT - 1000  # a reply longer than this is posted as several


def _name(person: Any) -> str:
    name = (
        (getattr(person, "name", None) or getattr(person, "id", None) or "someone") if person else "PagerDuty"
    )
    return outside(name, NAME_CHARS)


def _people(names: tuple[str, ...]) -> str:
    return listed([outside(name, NAME_CHARS) for name in names], slack_limits.FIELD_TEXT)


def _bridge(event: WebhookEvent) -> str:
    agent = _name(event.agent)
    url = safe_url(event.conference_url)
    parts = []
    if url is not None and len(url) <= BRIDGE_CHARS:
        # Slack reads `&` as the start of an entity everywhere in the text, a link's URL included.
        parts.append(f"<{url.replace('&', '&amp;')}|{label(url, BRIDGE_CHARS)}>")
    elif event.conference_url:
        parts.append(outside(event.conference_url, BRIDGE_CHARS))  # not a link: shown, escaped, as text
    if event.conference_number:
        parts.append(outside(event.conference_number, BRIDGE_CHARS))
    if not parts:
        return f":telephone_receiver: Conference bridge removed by {agent}"
    return f":telephone_receiver: Conference bridge updated by {agent}: {' · '.join(parts)}"


def _roles(event: WebhookEvent) -> str:
    agent = _name(event.agent)
    if not event.role_assignments:
        return f":bust_in_silhouette: Incident roles changed (by {agent})"
    lines = []
    for assignment in event.role_assignments[:10]:
        role = outside(assignment.role or "a role", NAME_CHARS)
        was = f" (was {_name(assignment.old_assignee)})" if assignment.old_assignee else ""
        if assignment.assignee is None:
            lines.append(f"{role} unassigned{was}")
        else:
            lines.append(f"{role} assigned to {_name(assignment.assignee)}{was}")
    more = len(event.role_assignments) - len(lines)
    tail = f" and {more} more" if more > 0 else ""
    return f":bust_in_silhouette: Role {'; '.join(lines)}{tail} (by {agent})"


def _workflow(event: WebhookEvent, kind: str) -> str:
    name = outside(event.workflow or "an incident workflow", NAME_CHARS)
    if kind == "workflow.started":
        return f":gear: Workflow {name} started (by {_name(event.agent)})"
    return f":gear: Workflow {name} completed"


def _task(event: WebhookEvent, kind: str) -> str:
    name = outside(event.task or "a task", NAME_CHARS)
    status = f" ({outside(event.task_status, NAME_CHARS)})" if event.task_status else ""
    verb = kind.removeprefix("task.")
    return f":clipboard: Task {verb}: {name}{status} (by {_name(event.agent)})"


def _action(event: WebhookEvent, kind: str) -> str:
    name = outside(event.action or "an action", NAME_CHARS)
    verb = kind.removeprefix("action_invocation.")
    state = event.action_state
    shown = f" ({outside(state, NAME_CHARS)})" if state and state != verb else ""
    return f":zap: Action {name} {verb}{shown} (by {_name(event.agent)})"


def reply_text(event: WebhookEvent, previous_priority: str | None, resolution: str | None) -> str:
    """One thread reply per event, in the on-call's words; unknown types still get a line, never silence."""
    kind = event.event_type.removeprefix("incident.")
    agent = _name(event.agent)
    snapshot = event.incident
    names = tuple(p.name or p.id or "someone" for p in snapshot.assignees) if snapshot else ()
    assignees = _people(names) if snapshot else "?"
    if kind == "acknowledged":
        return f":eyes: Acknowledged by {agent}"
    if kind == "unacknowledged":
        return ":warning: Unacknowledged: the acknowledgement timed out and the incident is open again"
    if kind == "escalated":
        return f":arrow_up: Escalated to {assignees}"
    if kind == "reassigned":
        return f":arrows_counterclockwise: Reassigned to {assignees} by {agent}"
    if kind == "delegated":
        policy = (
            outside(snapshot.escalation_policy, NAME_CHARS)
            if snapshot and snapshot.escalation_policy
            else None
        )
        return f":arrows_counterclockwise: Delegated to {policy or assignees} by {agent}"
    if kind == "annotated":
        return f":memo: Note by {agent}: {escape(event.note or '')}".rstrip()
    if kind == "priority_updated":
        new = outside(snapshot.priority, NAME_CHARS) if snapshot and snapshot.priority else None
        old = outside(previous_priority, NAME_CHARS) if previous_priority else None
        return f":arrow_up_down: Priority {old or 'none'} → {new or 'none'} (by {agent})"
    if kind == "responder.added":
        message = f": {escape(event.responder_message)}" if event.responder_message else ""
        return f":sos: {_name(event.responder)} added as a responder by {agent}{message}"
    if kind == "responder.replied":
        message = f": {escape(event.responder_message)}" if event.responder_message else ""
        return f":speech_balloon: {_name(event.responder)} replied to the responder request{message}"
    if kind == "status_update_published":
        return f":loudspeaker: Status update by {agent}: {escape(event.status_update or '')}".rstrip()
    if kind == "resolved":
        reason = f" — {escape(resolution)}" if resolution else ""
        return f":white_check_mark: Resolved by {agent}{reason}"
    if kind == "reopened":
        return f":repeat: Reopened by {agent}"
    if kind == "conference_bridge.updated":
        return _bridge(event)
    if kind == "role.assigned":
        return _roles(event)
    if kind in ("workflow.started", "workflow.completed"):
        return _workflow(event, kind)
    if kind.startswith("task."):
        return _task(event, kind)
    if kind.startswith("action_invocation."):
        return _action(event, kind)
    return f":information_source: {outside(event.event_type, NAME_CHARS)} (by {agent})"


def reply_parts(text: str) -> list[str]:
    """A reply as the messages it is posted in: one, or several when it is longer than a message can be (a long
    note is read in full in the thread, the parts numbered)."""
    parts = split(text, REPLY_PART_CHARS - 20)
    if len(parts) == 1:
        return parts
    return [f"{part}\n_({n}/{len(parts)})_" for n, part in enumerate(parts, 1)]
