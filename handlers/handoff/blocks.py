"""Block Kit for the weekly handoff: the checklist message, its reminders, its summary and the PagerDuty test.

The checklist is one message edited in place: who hands over to whom, then one row per runbook item — a checkbox
(action `handoff_tick`, one per item so a click says exactly which item it is about) and the bot's evidence under
it. Everything shown comes from the stored checklist (handlers/handoff/store.py), so any replica renders the same
message. Mira runbook §1 On-Call Rotation → Handoff Checklist.

Outside text — PagerDuty names (through `people`), incident titles and services, probe details, PagerDuty's and
other services' error words — is escaped here with bot/mrkdwn.py; links are built only from http(s) URLs. The
catalog's wording (checklist items, display names, runbook titles) is shown as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from bot import mrkdwn
from bot.catalog import Service
from handlers.handoff.store import HandoffRecord
from handlers.oncall import duration, escalation_path, people, when

TICK_ACTION = "handoff_tick"
TEST_ACTION = "handoff_pagerduty_test"

STATUS_EMOJI = {
    "ok": ":large_green_circle:",
    "degraded": ":large_yellow_circle:",
    "down": ":red_circle:",
    "not configured": ":white_circle:",
}


@dataclass(frozen=True)
class TestResult:
    """The checklist's latest "Test PagerDuty integration" run, as the message shows it."""

    status: str  # sending | waiting | ok | broken | failed
    requested_by: str
    requested_at: datetime
    round_trip: timedelta | None = None
    detail: str | None = None


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def incoming(record: HandoffRecord) -> str:
    roster = record.roster or {}
    return people(roster.get("incoming") or []) if roster.get("incoming") else "Incoming on-call"


def _roster_text(record: HandoffRecord, service: Service | None) -> str:
    roster = record.roster or {}
    if roster.get("problem") or not roster:
        why = roster.get("problem") or "no handoff service in the catalog"
        lines = [f":white_circle: On-call from PagerDuty unknown ({mrkdwn.escape(why)})."]
    else:
        outgoing = people(roster.get("outgoing") or []) if roster.get("outgoing") else "nobody"
        incoming_ = people(roster.get("incoming") or []) if roster.get("incoming") else "nobody"
        lines = [f"*Outgoing primary:* {outgoing}  →  *Incoming primary:* {incoming_}"]
        secondary = people(roster.get("secondary") or []) if roster.get("secondary") else "none in PagerDuty"
        lines.append(f"*Secondary:* {secondary}")
    if service is not None:
        if roster.get("escalation"):
            contact = people(roster["escalation"])
        else:
            contact = service.escalation.levels[-1].name
        lines.append(f"*Escalation:* {contact}")
        lines.append(f"_{service.display_name} escalation path:_ {escalation_path(service)}")
    return "\n".join(lines)


# --- evidence, per kind -------------------------------------------------------------------------------------


def _incidents(evidence: dict[str, Any], zone: tzinfo) -> str:
    opened = evidence.get("open") or []
    total = int(evidence.get("open_total") or 0)
    week = evidence.get("last_week") or {}
    window = (
        f" ({when(datetime.fromisoformat(week['start']), zone)} – {when(datetime.fromisoformat(week['end']), zone)})"
        if week.get("start") and week.get("end")
        else ""
    )
    week_line = (
        f"Triggered in the week before this rotation{window}: {week.get('triggered', 0)}, "
        f"{week.get('resolved', 0)} of them resolved since."
    )
    as_of = f" at {when(datetime.fromisoformat(evidence['as_of']), zone)}" if evidence.get("as_of") else ""
    if not opened:
        return f":white_check_mark: No open incidents in the bot's incident store{as_of}. {week_line}"
    lines = [f":rotating_light: {total} open incident{'s' if total != 1 else ''}{as_of}, from any week:"]
    for incident in opened:
        label = f"#{incident['number']} {incident['title']}" if incident.get("number") else incident["title"]
        label = mrkdwn.link(incident["link"], label) if incident.get("link") else mrkdwn.escape(label)
        since = (
            f", since {when(datetime.fromisoformat(incident['triggered_at']), zone)}"
            if incident.get("triggered_at")
            else ""
        )
        lines.append(
            f"• {label} ({mrkdwn.escape(incident.get('service') or 'unknown service')}, "
            f"{mrkdwn.escape(incident['status'])}{since})"
        )
    if total > len(opened):
        lines.append(f"…and {total - len(opened)} more")
    lines.append(week_line)
    return "\n".join(lines)


def _health(evidence: dict[str, Any], zone: tzinfo) -> str:
    lines = []
    for service in evidence.get("services") or []:
        status = service["status"]
        line = f"{STATUS_EMOJI.get(status, '')} *{service['display_name']}* {status}"
        if status in ("down", "degraded"):
            line += " — " + ", ".join(
                f"`{p['probe']}` {p['status']} ({mrkdwn.escape(p['detail'])})"
                for p in service["problems"]
                if p["status"] != "not configured"
            )
        lines.append(line)
    checked = evidence.get("checked_at")
    if checked:
        lines.append(f"_/health of every service at {when(datetime.fromisoformat(checked), zone)}_")
    return "\n".join(lines)


def _alerts(evidence: dict[str, Any], gathered_at: datetime, zone: tzinfo) -> str:
    lines = []
    checked = evidence.get("checked_at")
    if checked:  # looked at again after the post: ages are from then
        gathered_at = datetime.fromisoformat(checked)
    for service in evidence.get("services") or []:
        last = service.get("last_webhook_at")
        if last is None:
            lines.append(f":warning: *{service['display_name']}*: no PagerDuty webhook received yet")
            continue
        at = datetime.fromisoformat(last)
        age = duration(gathered_at - at)
        since = "this check" if checked else "this post"
        lines.append(
            f":incoming_envelope: *{service['display_name']}*: last PagerDuty webhook {when(at, zone)} ({age} before {since})"
        )
    if checked:
        what = mrkdwn.escape(evidence.get("checked_after") or "a later check")
        lines.append(f"_Checked again after {what} at {when(datetime.fromisoformat(checked), zone)}_")
    return "\n".join(lines)


def _runbook(evidence: dict[str, Any], rotation: datetime) -> str:
    title = evidence.get("title") or evidence.get("file")
    link = (
        mrkdwn.link(evidence["url"], title, trusted_label=True)
        if evidence.get("url")
        else f"{title} (`{evidence.get('file')}`)"
    )
    updated = evidence.get("last_updated")
    if not updated:
        return f":books: {link} — last change unknown (set `last_updated` for it in the catalog)"
    line = f":books: {link} — last updated {updated}"
    try:
        age = rotation.date() - date.fromisoformat(str(updated))
        line += f" ({age.days} days before this rotation)"
    except ValueError:
        pass
    if evidence.get("url_missing"):
        line += f" · set {', '.join(evidence['url_missing'])} to link it"
    return line


def _pagerduty_test(
    test: TestResult | None, problem: str | None, service: Service | None, zone: tzinfo
) -> str:
    name = service.display_name if service else "the handoff service"
    if problem:
        return f":warning: Cannot test yet: {mrkdwn.escape(problem)}."
    if test is None:
        return (
            f"Press *Test PagerDuty integration*: a test event goes to {name} through the Events API v2, and its "
            "webhook must come back here."
        )
    started = f"{when(test.requested_at, zone)} by <@{test.requested_by}>"
    if test.status in ("sending", "waiting"):
        return f":hourglass_flowing_sand: Test running (started {started})…"
    if test.status == "ok" and test.round_trip is not None:
        return f":white_check_mark: Last test {started}: webhook back {seconds(test.round_trip)} after the trigger."
    if test.status == "broken":
        return f":x: Last test {started}: no webhook came back — the PagerDuty loop is broken."
    return f":x: Last test {started} failed: {mrkdwn.escape(test.detail or 'unknown error')}"


def seconds(delta: timedelta) -> str:
    """A round trip: `840 ms` below a second, `2.3 s` above."""
    value = delta.total_seconds()
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _evidence_text(
    kind: str | None,
    record: HandoffRecord,
    test: TestResult | None,
    test_problem: str | None,
    service: Service | None,
    zone: tzinfo,
) -> str | None:
    evidence = record.evidence or {}
    if kind == "pagerduty_test":
        return _pagerduty_test(test, test_problem, service, zone)
    if kind is None or kind not in evidence:
        return None
    part = evidence[kind]
    if part.get("error"):
        return f":warning: Could not gather this: {mrkdwn.escape(part['error'])}."
    gathered = datetime.fromisoformat(evidence.get("gathered_at") or record.rotation.isoformat())
    if kind == "incidents":
        return _incidents(part, zone)
    if kind == "health":
        return _health(part, zone)
    if kind == "alerts":
        return _alerts(part, gathered, zone)
    if kind == "runbook":
        return _runbook(part, record.rotation)
    return None


# --- the message ----------------------------------------------------------------------------------------------


def progress(record: HandoffRecord) -> str:
    return f"{len(record.ticks)}/{len(record.items)} done"


def render_checklist(
    record: HandoffRecord,
    *,
    service: Service | None,
    zone: tzinfo,
    test: TestResult | None = None,
    test_problem: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    roster = record.roster or {}
    handover = ""
    if roster.get("incoming") or roster.get("outgoing"):
        handover = f": {people(roster.get('outgoing') or [])} → {people(roster.get('incoming') or [])}"
    week = record.rotation.astimezone(zone)
    done = " — complete :white_check_mark:" if record.complete else ""
    text = f"On-call handoff, week of {week:%d %b %Y}{handover} · {progress(record)}{done}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"On-call handoff — week of {week:%a %d %b %Y}",
                "emoji": True,
            },
        },
        {"type": "section", "text": _mrkdwn(_roster_text(record, service))},
        {
            "type": "context",
            "elements": [
                _mrkdwn(
                    f"Rotation {when(record.rotation, zone)} · Mira runbook §1 Handoff Checklist · "
                    f"{progress(record)}{done}"
                )
            ],
        },
        {"type": "divider"},
    ]
    for number in record.numbers:
        item = record.items[number - 1]
        tick = record.ticks.get(number)
        option = {"text": _mrkdwn(f"*{number}. {item['text']}*"), "value": f"{record.id}:{number}"}
        checkbox: dict[str, Any] = {"type": "checkboxes", "action_id": TICK_ACTION, "options": [option]}
        if tick:
            checkbox["initial_options"] = [option]
        elements: list[dict[str, Any]] = [checkbox]
        if item.get("evidence") == "pagerduty_test":
            elements.append(
                {
                    "type": "button",
                    "action_id": TEST_ACTION,
                    "text": {"type": "plain_text", "text": "Test PagerDuty integration"},
                    "value": str(record.id),
                }
            )
        blocks.append({"type": "actions", "block_id": f"handoff_item_{number}", "elements": elements})
        lines = []
        evidence = _evidence_text(item.get("evidence"), record, test, test_problem, service, zone)
        if evidence:
            lines.append(evidence)
        if tick:
            lines.append(f":ballot_box_with_check: Ticked by <@{tick.by}> at {when(tick.at, zone)}")
        if lines:
            blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines)[:3000])})
    posted = f"<@{record.posted_by}> with `/oncall handoff`" if record.posted_by else "the weekly schedule"
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(f"Posted by {posted} · ticks and unticks are recorded with who and when")],
        }
    )
    return text, blocks


def reminder_text(record: HandoffRecord, spec: str) -> str:
    open_items = " · ".join(f"{n}. {record.text_of(n)}" for n in record.open_items)
    count = len(record.open_items)
    return (
        f":bell: {incoming(record)}: {count} of {len(record.items)} handoff item{'s are' if count != 1 else ' is'} "
        f"still open: {open_items}. Tick them above when done. _(reminder {spec})_"
    )


def summary_text(record: HandoffRecord) -> str:
    who = ", ".join(dict.fromkeys(f"<@{t.by}>" for t in record.ticks.values()))
    finished = record.completed_at or max(t.at for t in record.ticks.values())
    return (
        f":white_check_mark: Handoff checklist complete ({len(record.items)}/{len(record.items)}), "
        f"{duration(finished - record.rotation)} after the rotation. Ticked by {who}."
    )


def test_started_text(user: str, service: Service, timeout: timedelta) -> str:
    return (
        f":satellite_antenna: <@{user}> is testing the PagerDuty integration: a test event goes to "
        f"{service.display_name} through the Events API v2; waiting up to {duration(timeout)} for its webhook."
    )


def test_ok_text(round_trip: timedelta, incident_id: str | None, resolve_error: str | None) -> str:
    incident = f" (incident {mrkdwn.escape(incident_id)})" if incident_id else ""
    head = (
        f":white_check_mark: PagerDuty integration works: the test event's webhook came back "
        f"{seconds(round_trip)} after the trigger{incident}."
    )
    if resolve_error:
        return (
            head
            + f" :warning: Could not resolve the test incident ({mrkdwn.escape(resolve_error)}): resolve it in PagerDuty."
        )
    return head + " The test incident is resolved."


def test_broken_text(timeout: timedelta, resolve_error: str | None) -> str:
    head = (
        f":x: No webhook came back within {duration(timeout)} of the test event: the PagerDuty → bot loop is "
        "broken. Check the service's webhook subscription (it must point at this bot's /pagerduty/webhook) and "
        "that PAGERDUTY_WEBHOOK_SECRETS holds its signing secret."
    )
    if resolve_error:
        return head + f" The test incident could not be resolved either ({mrkdwn.escape(resolve_error)})."
    return head + " The test incident (if PagerDuty opened one) is resolved."


def test_failed_text(words: str) -> str:
    return f":x: PagerDuty did not take the test event: {mrkdwn.escape(words)}"
