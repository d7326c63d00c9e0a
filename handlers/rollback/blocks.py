"""Block Kit for /rollback: the request (the run's root, kept current), the thread's step replies, the summary.

The root message is the single place to look during a rollback: every step with what it changes, its state
(pending / running / done / failed / skipped) and elapsed time, and the buttons that are valid now — Confirm and
Cancel while pending, Abort while running, Retry and Abort after a failure.

The requester's reason and a step's result (which quotes deploy hooks, probes, flag backends and the metrics
database) are outside text: escaped here with bot/mrkdwn.py. Step results are stored as plain text and carry no
markup of the bot's own beyond `code` spans, so escaping the whole result keeps them readable.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot import mrkdwn
from bot.catalog import RollbackPlan, RollbackStep, Service
from handlers.flags import to_wire
from handlers.rollback.store import Run, Step
from integrations.deploy_hooks import where

CONFIRM_ACTION = "rollback_confirm"
CANCEL_ACTION = "rollback_cancel"
ABORT_ACTION = "rollback_abort"
RETRY_ACTION = "rollback_retry"
SIGNOFF_ACTION = "rollback_signoff"

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
        return f"health probes must be ok: {probes}"
    if step.kind == "wait":
        slos = ", ".join(f"{o.metric} ≤ {o.limit:g}" for o in service.objectives if o.kind is None)
        return f"watch health{' and ' + slos if slos else ''} for {step.minutes:g} min"
    approver = step.approver or "a named person"
    warning = f" :warning: {step.warning}" if step.warning else ""
    return f"{approver} signs off in the thread{warning}"


def _step_line(service: Service, step: Step, total: int, now: datetime) -> str:
    elapsed = step.elapsed(now)
    timing = f" · {duration(elapsed)}" if elapsed is not None else ""
    attempt = f" · attempt {step.attempts}" if step.attempts > 1 else ""
    head = f"{STEP_ICON[step.status]} *{step.position}/{total}* {step.spec.title} — _{step.status}{timing}{attempt}_"
    detail = (
        mrkdwn.escape(step.result)
        if step.result and step.status in ("done", "failed")
        else what_it_changes(service, step.spec)
    )
    return f"{head}\n      {detail}"


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _confirm_dialog(run: Run) -> dict[str, Any]:
    titles = "\n".join(f"{s.position}. {s.spec.title}" for s in run.steps)
    text = f"Roll back *{run.service.display_name}* with plan `{run.plan}`, {len(run.steps)} steps:\n{titles}"
    return {
        "title": {"type": "plain_text", "text": "Confirm rollback"},
        "text": {"type": "mrkdwn", "text": text[:300]},
        "confirm": {"type": "plain_text", "text": f"Roll back {run.service.display_name}"[:30]},
        "deny": {"type": "plain_text", "text": "Not now"},
        "style": "danger",
    }


def run_buttons(run: Run) -> list[dict[str, Any]]:
    value = str(run.id)
    if run.status == "pending":
        confirm = _button("Confirm rollback", CONFIRM_ACTION, value, "danger")
        confirm["confirm"] = _confirm_dialog(run)
        return [confirm, _button("Cancel", CANCEL_ACTION, value)]
    if run.status == "running":
        return [_button("Abort", ABORT_ACTION, value)]
    if run.status == "failed" and (step := run.current) is not None:
        return [
            _button(f"Retry step {step.position}", RETRY_ACTION, f"{run.id}:{step.position}", "primary"),
            _button("Abort", ABORT_ACTION, value, "danger"),
        ]
    return []


def _status_line(run: Run, now: datetime) -> str:
    if run.status == "pending":
        minutes = run.service.rollback_expires_minutes
        rule = (
            f" Two-person rule: someone other than <@{run.requested_by}> must confirm."
            if run.service.requires_two_people
            else ""
        )
        return f":hourglass: Expires at {clock_time(run.expires_at)} ({minutes} min after the request) unless confirmed.{rule}"
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
    return f":white_check_mark: {confirmed}. Done{took}: {progress}."


def render_run(run: Run, now: datetime, *, with_buttons: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """The request message, which is also the run's live status (the thread's root)."""
    service = run.service
    state = RUN_STATE[run.status]
    text = f"Rollback #{run.id} of {service.display_name} (plan {run.plan}): {state}"
    reason = f" · reason: {mrkdwn.outside(run.reason, 1500)}" if run.reason else ""
    who = f"Requested by <@{run.requested_by}>{reason}"
    total = len(run.steps)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"Rollback #{run.id}: {service.display_name}"},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Plan `{run.plan}` · {who}"}]},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "\n".join(_step_line(service, s, total, now) for s in run.steps)[:3000],
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _status_line(run, now)}},
    ]
    buttons = run_buttons(run) if with_buttons else []
    if buttons:
        blocks.append({"type": "actions", "block_id": f"rollback-{run.id}", "elements": buttons})
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
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
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


# --- thread replies -----------------------------------------------------------------------------------------------


def step_started(run: Run, step: Step) -> str:
    attempt = f" (attempt {step.attempts})" if step.attempts > 1 else ""
    return (
        f":arrow_forward: Step {step.position}/{len(run.steps)} started{attempt}: *{step.spec.title}* — "
        f"{what_it_changes(run.service, step.spec)}"
    )


def step_finished(run: Run, step: Step, now: datetime) -> tuple[str, list[dict[str, Any]] | None]:
    elapsed = step.elapsed(now)
    took = f" in {duration(elapsed)}" if elapsed is not None else ""
    if step.status == "done":
        done = mrkdwn.escape(step.result)
        return f":white_check_mark: Step {step.position}/{len(run.steps)} done{took}: {done}", None
    text = (
        f":x: Step {step.position}/{len(run.steps)} *{step.spec.title}* failed{took}: {mrkdwn.escape(step.result)}\n"
        "The rollback stopped here. Retry the step once the cause is fixed, or Abort."
    )
    buttons = [
        _button(f"Retry step {step.position}", RETRY_ACTION, f"{run.id}:{step.position}", "primary"),
        _button("Abort", ABORT_ACTION, str(run.id), "danger"),
    ]
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": buttons},
    ]


def signoff_request(run: Run, step: Step, approvers: str) -> tuple[str, list[dict[str, Any]]]:
    spec = step.spec
    warning = f"\n:warning: *{spec.warning}*" if spec.warning else ""
    text = (
        f":raised_hand: Step {step.position}/{len(run.steps)} waits for {spec.approver}: *{spec.title}*. "
        f"Do it by hand, then sign off here. Who may sign off: {approvers}.{warning}"
    )
    button = _button("Signed off: step done", SIGNOFF_ACTION, f"{run.id}:{step.position}", "primary")
    button["confirm"] = {
        "title": {"type": "plain_text", "text": "Sign off this step?"},
        "text": {"type": "mrkdwn", "text": f"*{spec.title}* is done and checked.{warning}"[:300]},
        "confirm": {"type": "plain_text", "text": "Signed off"},
        "deny": {"type": "plain_text", "text": "Not yet"},
    }
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [button]},
    ]


def signoff_reminder(run: Run, step: Step, approvers: str, waited: timedelta) -> str:
    return (
        f":bell: Still waiting {duration(waited)} for {step.spec.approver} to sign off step {step.position}: "
        f"*{step.spec.title}*. {approvers}"
    )


def resumed(run: Run, step: Step | None, previous_owner: str) -> str:
    done = [s.position for s in run.steps if s.status == "done"]
    if not done:
        kept = ""
    elif len(done) == 1:
        kept = f"Step {done[0]} is done and will not run again. "
    else:
        kept = f"Steps {done[0]}–{done[-1]} are done and will not run again. "
    at = f"at step {step.position}: {step.spec.title}" if step else "at the end"
    return f":recycle: Resumed after a restart (`{previous_owner}` stopped). {kept}Continuing {at}."


def summary(run: Run, link: str | None) -> str:
    done = sum(1 for s in run.steps if s.status == "done")
    took = (
        f" in {duration(run.finished_at - run.confirmed_at)}" if run.finished_at and run.confirmed_at else ""
    )
    outcome = {"done": "finished", "aborted": f"was aborted by <@{run.ended_by}>"}.get(run.status, run.status)
    thread = f" {mrkdwn.link(link, 'Thread', trusted_label=True)}" if link else ""
    reason = f" Reason: {mrkdwn.outside(run.reason, 1500)}." if run.reason else ""
    return (
        f":rewind: Rollback #{run.id} of *{run.service.display_name}* (plan `{run.plan}`) {outcome}{took}: "
        f"{done}/{len(run.steps)} steps done. Requested by <@{run.requested_by}>, confirmed by "
        f"<@{run.confirmed_by}>.{reason}{thread}"
    )
