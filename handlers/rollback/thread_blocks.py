"""The replies in a run's thread (a step started, done, failed, skipped or marked done; a sign-off request and its
reminder; a takeover), the #incidents summary, and the modal asking why a step is skipped.

Step results quote deploy hooks, probes, flag backends and the metrics database, and a skip reason is typed by a
person: outside text, escaped here with bot/mrkdwn.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from bot import mrkdwn
from handlers.rollback.blocks import (
    ABORT_ACTION,
    RETRY_ACTION,
    SIGNOFF_ACTION,
    SKIP_ACTION,
    SKIP_MODAL,
    button,
    duration,
    mark_done_button,
    result_text,
    what_it_changes,
)
from handlers.rollback.checks import METRICS_UNREADABLE
from handlers.rollback.store import Run, Step

SKIP_REASON_LIMIT = 500


def step_started(run: Run, step: Step) -> str:
    attempt = f" (attempt {step.attempts})" if step.attempts > 1 else ""
    return (
        f":arrow_forward: Step {step.position}/{len(run.steps)} started{attempt}: *{step.spec.title}* — "
        f"{what_it_changes(run.service, step.spec)}"
    )


def failed_buttons(run: Run, step: Step) -> list[dict[str, Any]]:
    return [
        button(f"Retry step {step.position}", RETRY_ACTION, f"{run.id}:{step.position}", "primary"),
        button(f"Skip step {step.position}…", SKIP_ACTION, f"{run.id}:{step.position}"),
        mark_done_button(run, step),
        button("Abort", ABORT_ACTION, str(run.id), "danger"),
    ]


def step_finished(run: Run, step: Step, now: datetime) -> tuple[str, list[dict[str, Any]] | None]:
    elapsed = step.elapsed(now)
    took = f" in {duration(elapsed)}" if elapsed is not None else ""
    n = f"{step.position}/{len(run.steps)}"
    if step.status == "done":
        return f":white_check_mark: Step {n} done{took}: {result_text(step)}", None
    if (step.detail or {}).get(METRICS_UNREADABLE):
        text = (
            f":warning: Step {n} *{step.spec.title}* could not read its metrics{took}: "
            f"{mrkdwn.escape(step.result)}\n"
            f"The {run.noun.lower()} waits for you: Retry the watch once the metrics source is readable, Skip it "
            "(say why), or Abort."
        )
    else:
        text = (
            f":x: Step {n} *{step.spec.title}* failed{took}: {mrkdwn.escape(step.result)}\n"
            f"The {run.noun.lower()} stopped here. Retry the step once the cause is fixed, Skip it (say why), "
            "Mark it done if you did it by hand, or Abort."
        )
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {"type": "actions", "elements": failed_buttons(run, step)},
    ]


def step_ended_by(run: Run, step: Step, actor: str, what: str, reason: str | None) -> str:
    n = f"{step.position}/{len(run.steps)}"
    if what == "skip":
        why = mrkdwn.outside(reason or "", SKIP_REASON_LIMIT)
        return f":next_track_button: <@{actor}> skipped step {n} *{step.spec.title}*. Reason: {why}"
    return (
        f":ballot_box_with_check: <@{actor}> marked step {n} *{step.spec.title}* done (done outside the bot)."
    )


def skip_modal(run: Run, step: Step, channel: str | None) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": SKIP_MODAL,
        "private_metadata": json.dumps({"run": run.id, "step": step.position, "channel": channel}),
        "title": {"type": "plain_text", "text": f"Skip step {step.position}"},
        "submit": {"type": "plain_text", "text": "Skip the step"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{run.noun} #{run.id} of *{run.service.display_name}*, step {step.position}: "
                    f"*{step.spec.title}* — {what_it_changes(run.service, step.spec)}"[:3000],
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why is it skipped? (shown in the thread, audited)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "reason",
                    "multiline": True,
                    "max_length": SKIP_REASON_LIMIT,
                },
            },
        ],
    }


def signoff_request(run: Run, step: Step, approvers: str) -> tuple[str, list[dict[str, Any]]]:
    spec = step.spec
    warning = f"\n:warning: *{spec.warning}*" if spec.warning else ""
    instruction = f"\n*What to do:* {spec.instruction}" if spec.instruction else ""
    text = (
        f":raised_hand: Step {step.position}/{len(run.steps)} waits for {spec.approver}: *{spec.title}*. "
        f"Do it by hand, then sign off here. Who may sign off: {approvers}.{instruction}{warning}"
    )
    signoff = button("Signed off: step done", SIGNOFF_ACTION, f"{run.id}:{step.position}", "primary")
    signoff["confirm"] = {
        "title": {"type": "plain_text", "text": "Sign off this step?"},
        "text": {"type": "mrkdwn", "text": f"*{spec.title}* is done and checked.{warning}"[:300]},
        "confirm": {"type": "plain_text", "text": "Signed off"},
        "deny": {"type": "plain_text", "text": "Not yet"},
    }
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {"type": "actions", "elements": [signoff]},
    ]


def signoff_reminder(run: Run, step: Step, approvers: str, waited: timedelta) -> str:
    return (
        f":bell: Still waiting {duration(waited)} for {step.spec.approver} to sign off step {step.position}: "
        f"*{step.spec.title}*. {approvers}"
    )


def resumed(run: Run, step: Step | None, previous_owner: str) -> str:
    done = [s.position for s in run.steps if s.status in ("done", "skipped")]
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
    skipped = [s.position for s in run.steps if s.status == "skipped"]
    took = (
        f" in {duration(run.finished_at - run.confirmed_at)}" if run.finished_at and run.confirmed_at else ""
    )
    outcome = {"done": "finished", "aborted": f"was aborted by <@{run.ended_by}>"}.get(run.status, run.status)
    thread = f" {mrkdwn.link(link, 'Thread', trusted_label=True)}" if link else ""
    reason = f" Reason: {mrkdwn.outside(run.reason, 1500)}." if run.reason else ""
    also = f", skipped: {', '.join(str(n) for n in skipped)}" if skipped and run.status == "done" else ""
    icon = ":arrows_counterclockwise:" if run.kind == "restart" else ":rewind:"
    if run.confirmed_by == run.requested_by:
        who = f"Requested and confirmed by <@{run.requested_by}>"
    else:
        who = f"Requested by <@{run.requested_by}>, confirmed by <@{run.confirmed_by}>"
    return (
        f"{icon} {run.noun} #{run.id} of *{run.service.display_name}* (plan `{run.plan}`) {outcome}{took}: "
        f"{done}/{len(run.steps)} steps done{also}. {who}.{reason}{thread}"
    )
