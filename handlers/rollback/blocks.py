"""Block Kit for /rollback and /restart: the request (the run's root, kept current) and the confirm dialog.

The root message is the single place to look during a run: every step with what it changes, what its preflight
found missing, its state (pending / running / done / failed / skipped) and elapsed time, and the buttons that
are valid now — Check again and Cancel while something is missing, Confirm and Cancel while pending, Skip / Mark
done / Abort while a step waits, Retry / Skip / Mark done / Abort after a failure. The thread's replies are in
:mod:`handlers.rollback.thread_blocks`.

Slack's limits are kept by packing whole lines into sections of at most 3000 characters (never cutting a
step mid-line), and by a Confirm that lists the steps in Slack's confirm dialog only when they fit its 300
characters whole; a longer plan's Confirm opens a modal listing every step instead.

The requester's reason and a step's result (which quotes deploy hooks, probes, flag backends and the metrics
database) are outside text: escaped here with bot/mrkdwn.py. Step results are stored as plain text and carry no
markup of the bot's own beyond `code` spans, so escaping the whole result keeps them readable.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from bot import mrkdwn
from bot.catalog import RollbackPlan, RollbackStep, Service
from handlers.flags import to_wire
from handlers.rollback.step_store import WAITING_KINDS
from handlers.rollback.store import Run, Step
from integrations.deploy_hooks import where

CONFIRM_ACTION = "rollback_confirm"
REVIEW_ACTION = "rollback_review"  # a plan too long for the confirm dialog: opens CONFIRM_MODAL
CONFIRM_MODAL = "rollback_confirm_modal"
CHECK_AGAIN_ACTION = "rollback_check_again"
CANCEL_ACTION = "rollback_cancel"
ABORT_ACTION = "rollback_abort"
RETRY_ACTION = "rollback_retry"
SKIP_ACTION = "rollback_skip"  # opens SKIP_MODAL, which asks for the reason
SKIP_MODAL = "rollback_skip_modal"
MARK_DONE_ACTION = "rollback_mark_done"
SIGNOFF_ACTION = "rollback_signoff"
SECTION_LIMIT = 3000
DIALOG_TEXT_LIMIT = 300

STEP_ICON = {"pending": "◻️", "running": "🔄", "done": "✅", "failed": "❌", "skipped": "⏭️"}
RUN_STATE = {
    "pending": "waiting for confirmation",
    "running": "running",
    "failed": "stopped on a failed step",
    "done": "done",
    "cancelled": "cancelled",
    "expired": "expired",
    "aborted": "aborted",
}


def duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def clock_time(moment: datetime) -> str:
    return moment.strftime("%H:%M UTC")


def what_it_changes(service: Service, step: RollbackStep) -> str:
    """One line a person can check before confirming: the flags and values, the hook, the probes, the watch."""
    if step.kind == "flag":
        values = step.flags
        if step.rollout_stage and service.rollout:
            values = dict(service.rollout.stages.get(step.rollout_stage, {}))
        backends = {flag.backend for name in values if (flag := service.flag(name)) is not None}
        where_ = {"supabase_secrets": "Supabase secrets", "postgres_table": "flag table"}
        shown = ", ".join(
            f"`{name}` → `{to_wire(v) if v is not None else 'default'}`" for name, v in values.items()
        )
        return f"{shown} ({', '.join(sorted(where_.get(b, b) for b in backends))})"
    if step.kind == "deploy":
        assert step.hook is not None
        inputs = ", ".join(f"{k}={v}" for k, v in step.hook.inputs.items())
        kind = "GitHub workflow" if step.hook.kind == "github_workflow" else "deploy hook"
        target = "not configured" if "${" in step.hook.url else where(step.hook.url)
        return f"{kind} {target}" + (f" ({inputs})" if inputs else "")
    if step.kind == "verify":
        probes = ", ".join(f"`{p.name}`" for p in service.probes) or "none configured"
        within = f" (polled for up to {duration(timedelta(seconds=step.within_s))})" if step.within_s else ""
        return f"health probes must be ok: {probes}{within}"
    if step.kind == "wait":
        return f"wait {duration(timedelta(minutes=step.minutes or 0))}, nothing else"
    if step.kind == "watch":
        slos = ", ".join(f"{o.metric} ≤ {o.limit:g}" for o in service.objectives if o.kind is None)
        return f"watch health{' and ' + slos if slos else ''} for {step.minutes:g} min"
    approver = step.approver or "a named person"
    warning = f" :warning: {step.warning}" if step.warning else ""
    if step.instruction:
        return f"by hand: {step.instruction} {approver[:1].upper()}{approver[1:]} signs off in the thread{warning}"
    return f"{approver} signs off in the thread{warning}"


def _step_line(run: Run, step: Step, now: datetime) -> str:
    elapsed = step.elapsed(now)
    timing = f" · {duration(elapsed)}" if elapsed is not None else ""
    attempt = f" · attempt {step.attempts}" if step.attempts > 1 else ""
    head = (
        f"{STEP_ICON[step.status]} *{step.position}/{len(run.steps)}* {step.spec.title} — "
        f"_{step.status}{timing}{attempt}_"
    )
    detail = (
        result_text(step)
        if step.result and step.status in ("done", "failed", "skipped")
        else what_it_changes(run.service, step.spec)
    )
    missing = "".join(
        f"\n      :no_entry: not ready: {mrkdwn.escape(p.problem)}"
        for p in run.preflight
        if p.position == step.position and run.status == "pending"
    )
    return f"{head}\n      {detail}{missing}"


def result_text(step: Step) -> str:
    """A step's result, escaped; a person's decision (sign-off, skip, mark done) led by their mention."""
    who = f"<@{step.approved_by}> " if step.approved_by else ""
    return who + mrkdwn.escape(step.result or "")


def sections(lines: list[str]) -> list[dict[str, Any]]:
    """Whole lines packed into mrkdwn sections of at most SECTION_LIMIT characters (a single longer line is
    clipped, which no step line comes near)."""
    packed: list[str] = []
    for line in lines:
        line = line if len(line) <= SECTION_LIMIT else line[: SECTION_LIMIT - 1] + "…"
        if packed and len(packed[-1]) + 1 + len(line) <= SECTION_LIMIT:
            packed[-1] += "\n" + line
        else:
            packed.append(line)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in packed]


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _step_titles(run: Run) -> list[str]:
    return [f"{s.position}. {s.spec.title}" for s in run.steps]


def _confirm_heading(run: Run) -> str:
    verb = "Restart" if run.kind == "restart" else "Roll back"
    return f"{verb} *{run.service.display_name}* with plan `{run.plan}`, {len(run.steps)} steps:"


def _confirm_dialog(run: Run) -> dict[str, Any] | None:
    """Slack's confirm dialog listing every step whole, or None when they do not fit its 300 characters."""
    text = "\n".join([_confirm_heading(run), *_step_titles(run)])
    if len(text) > DIALOG_TEXT_LIMIT:
        return None
    verb = "Restart" if run.kind == "restart" else "Roll back"
    return {
        "title": {"type": "plain_text", "text": f"Confirm {run.noun.lower()}"},
        "text": {"type": "mrkdwn", "text": text},
        "confirm": {"type": "plain_text", "text": f"{verb} {run.service.display_name}"[:30]},
        "deny": {"type": "plain_text", "text": "Not now"},
        "style": "danger",
    }


def confirm_modal(run: Run, channel: str | None) -> dict[str, Any]:
    """The confirm dialog of a plan too long for Slack's: every step whole with what it changes, in sections."""
    verb = "Restart" if run.kind == "restart" else "Roll back"
    lines = [f"{s.position}. *{s.spec.title}* — {what_it_changes(run.service, s.spec)}" for s in run.steps]
    return {
        "type": "modal",
        "callback_id": CONFIRM_MODAL,
        "private_metadata": json.dumps({"run": run.id, "channel": channel}),
        "title": {"type": "plain_text", "text": f"Confirm {run.noun.lower()}"},
        "submit": {"type": "plain_text", "text": verb},
        "close": {"type": "plain_text", "text": "Not now"},
        "blocks": sections([_confirm_heading(run), *lines])[:100],
    }


def run_buttons(run: Run) -> list[dict[str, Any]]:
    value = str(run.id)
    noun = run.noun.lower()
    if run.status == "pending":
        cancel = button("Cancel", CANCEL_ACTION, value)
        if run.preflight:
            return [button("Check again", CHECK_AGAIN_ACTION, value, "primary"), cancel]
        dialog = _confirm_dialog(run)
        if dialog is None:
            return [button(f"Confirm {noun}…", REVIEW_ACTION, value, "danger"), cancel]
        confirm = button(f"Confirm {noun}", CONFIRM_ACTION, value, "danger")
        confirm["confirm"] = dialog
        return [confirm, cancel]
    step = run.current
    if step is None or run.status not in ("running", "failed"):
        return []
    at = f"{run.id}:{step.position}"
    buttons: list[dict[str, Any]] = []
    if run.status == "failed":
        buttons.append(button(f"Retry step {step.position}", RETRY_ACTION, at, "primary"))
    if run.status == "failed" or (step.status == "running" and step.spec.kind in WAITING_KINDS):
        buttons.append(button(f"Skip step {step.position}…", SKIP_ACTION, at))
    if run.status == "failed" or (step.status == "running" and step.spec.kind == "manual"):
        buttons.append(mark_done_button(run, step))
    buttons.append(button("Abort", ABORT_ACTION, value, "danger" if run.status == "failed" else None))
    return buttons


def mark_done_button(run: Run, step: Step) -> dict[str, Any]:
    mark = button(f"Mark step {step.position} done", MARK_DONE_ACTION, f"{run.id}:{step.position}")
    mark["confirm"] = {
        "title": {"type": "plain_text", "text": "Done outside the bot?"},
        "text": {
            "type": "mrkdwn",
            "text": f"Step {step.position} (*{step.spec.title}*) was done by hand and checked; the "
            f"{noun_of(run)} goes on with the next step."[:DIALOG_TEXT_LIMIT],
        },
        "confirm": {"type": "plain_text", "text": "Mark done"},
        "deny": {"type": "plain_text", "text": "Not yet"},
    }
    return mark


def noun_of(run: Run) -> str:
    return run.noun.lower()


def _status_line(run: Run, now: datetime) -> str:
    if run.status == "pending":
        minutes = run.service.rollback_expires_minutes
        if run.requires_two_people:
            rule = f" Two-person rule: someone other than <@{run.requested_by}> must confirm."
        elif run.kind == "restart":
            rule = " Level-1 restart: one Confirm by an owner or the primary on-call."
        else:
            rule = ""
        expiry = (
            f":hourglass: Expires at {clock_time(run.expires_at)} ({minutes} min after the request) unless "
            f"confirmed.{rule}"
        )
        if run.preflight:
            steps = sorted({p.position for p in run.preflight})
            named = ", ".join(str(n) for n in steps)
            return (
                f":no_entry: Not ready: step{'s' if len(steps) > 1 else ''} {named} cannot run as configured "
                "(see :no_entry: above). Fix it and press *Check again*; Confirm appears when nothing is "
                f"missing.\n{expiry}"
            )
        return expiry
    if run.status == "expired":
        return f":hourglass_flowing_sand: Expired at {clock_time(run.expires_at)} without confirmation: nothing ran."
    if run.status == "cancelled":
        return f":no_entry_sign: Cancelled by <@{run.ended_by}>: nothing ran."
    confirmed = f"Confirmed by <@{run.confirmed_by}>" + (
        f" at {clock_time(run.confirmed_at)}" if run.confirmed_at else ""
    )
    done = sum(1 for s in run.steps if s.status == "done")
    progress = f"{done}/{len(run.steps)} steps done"
    if run.status == "running":
        return f":arrows_counterclockwise: {confirmed}. Running: {progress}."
    if run.status == "failed":
        step = run.current
        where_ = f" at step {step.position}" if step else ""
        return f":x: {confirmed}. Stopped{where_}: Retry the step or Abort. {progress}."
    if run.status == "aborted":
        return f":octagonal_sign: {confirmed}. Aborted by <@{run.ended_by}>: {progress}, the rest skipped."
    took = (
        f" in {duration(run.finished_at - run.confirmed_at)}" if run.finished_at and run.confirmed_at else ""
    )
    skipped = sum(1 for s in run.steps if s.status == "skipped")
    also = f", {skipped} skipped" if skipped else ""
    return f":white_check_mark: {confirmed}. Done{took}: {progress}{also}."


def render_run(run: Run, now: datetime, *, with_buttons: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """The request message, which is also the run's live status (the thread's root)."""
    service = run.service
    state = RUN_STATE[run.status]
    if run.status == "pending" and run.preflight:
        state = "not ready: something is missing"
    text = f"{run.noun} #{run.id} of {service.display_name} (plan {run.plan}): {state}"
    reason = f" · reason: {mrkdwn.outside(run.reason, 1500)}" if run.reason else ""
    who = f"Requested by <@{run.requested_by}>{reason}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{run.noun} #{run.id}: {service.display_name}"},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Plan `{run.plan}` · {who}"}]},
        *sections([_step_line(run, s, now) for s in run.steps]),
        {"type": "section", "text": {"type": "mrkdwn", "text": _status_line(run, now)}},
    ]
    buttons = run_buttons(run) if with_buttons else []
    if buttons:
        blocks.append({"type": "actions", "block_id": f"{run.kind}-{run.id}", "elements": buttons})
    return text, blocks


def render_plans(service: Service) -> tuple[str, list[dict[str, Any]]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Rollback plans: {service.display_name}"}}
    ]
    for plan in service.rollback_plans:
        lines = [f"*{plan.name}* — {plan.description}"] + [
            f"{n}. {step.title} — {what_it_changes(service, step)}"
            for n, step in enumerate(plan.steps, start=1)
        ]
        blocks.extend(sections(lines))
    if service.restart_plan is not None:
        restart = service.restart_plan
        lines = [
            f"*{restart.name}* (`/restart {service.name} [reason]`, one Confirm) — {restart.description}"
        ] + [
            f"{n}. {step.title} — {what_it_changes(service, step)}" for n, step in enumerate(restart.steps, 1)
        ]
        blocks.extend(sections(lines))
    rule = "on" if service.requires_two_people else "off"
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Two-person rule {rule} · requests expire after {service.rollback_expires_minutes} min · "
                    f"run one with `/rollback {service.name}{' PLAN' if len(service.rollback_plans) > 1 else ''} [reason]`",
                }
            ],
        }
    )
    return (
        f"Rollback plans of {service.display_name}: {', '.join(p.name for p in service.rollback_plans)}",
        blocks,
    )


def render_status(run: Run, now: datetime, link: str | None) -> tuple[str, list[dict[str, Any]]]:
    text, blocks = render_run(run, now, with_buttons=False)
    if link:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": mrkdwn.link(link, "Open the thread", trusted_label=True)}
                ],
            }
        )
    return text, blocks


def plan_names(plans: list[RollbackPlan]) -> str:
    return ", ".join(f"`{p.name}`" for p in plans)
