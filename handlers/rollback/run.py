"""Running a confirmed rollback: each step through its real integration, reported in the request's thread.

`advance` is called by the rollback worker while it holds the run's lease. It runs steps in order until one has to
wait (a `wait` step's watch, a manual sign-off) or fails; the root message is updated after every move and each
step start and result is a thread reply. Slack being slow or down never fails a step: the Postgres state is the
truth, and the messages catch up at the next move.

Step kinds (the runbooks' rollback procedures, from the catalog):
- `flag`: through `handlers.flags.changes`, the same audited path as `/flag`;
- `deploy`: `integrations.deploy_hooks` (signed webhook or GitHub workflow_dispatch, then the status URL);
- `verify`, `wait`, `watch`: :mod:`handlers.rollback.checks` (health polled until ok; time only; health every
  minute and the SLOs at the end of N minutes);
- `manual`: a named person does it by hand (the step's instruction) and signs off in the thread; reminded once
  after MANUAL_REMINDER.
A person may also Skip the current step (with a reason), Mark it done, Retry a failed one or Abort
(:mod:`handlers.rollback.step_store`); a step ended that way while its check ran is not reported twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta

from bot import slack_once
from bot.catalog import missing_env
from bot.context import BotContext
from bot.permissions import mentions, owners_of
from bot.replies import permalink
from bot.slack_budget import UNPACED
from handlers import flags as flag_changes
from handlers.flags import FlagStoreNotConfigured, to_wire
from handlers.rollback import blocks, checks, runner_store, thread_blocks
from handlers.rollback import store as rollbacks
from handlers.rollback.checks import Outcome
from handlers.rollback.store import Run, Step
from integrations import deploy_hooks
from integrations.flag_backends import FlagBackendError

log = logging.getLogger(__name__)

MANUAL_REMINDER = timedelta(minutes=30)


# --- talking in the thread ------------------------------------------------------------------------------------------


REPLY_POST = "mira_rollback_reply"


def reply_key(run_id: int, key: str) -> slack_once.PostKey:
    return slack_once.PostKey(REPLY_POST, {"run_id": str(run_id), "key": key})


async def say(bot: BotContext, run: Run, text: str, message_blocks: list | None = None, *, key: str) -> None:
    """A reply in the run's thread, posted once per `key` (a step started or finished, a sign-off request or
    reminder, a takeover, a confirm, retry or abort) through the once-only protocol (bot/slack_once.py
    `post_once`): across replicas and restarts, and when Slack stored it but its answer was lost (never resent
    blindly; looked up in the thread by its metadata). A Slack failure is logged, never fatal to the run."""
    if run.channel is None or run.message_ts is None:
        return
    try:
        outcome = await slack_once.post_once(
            bot,
            UNPACED,  # a step's replies keep the step's timing; Retry-After still honoured
            runner_store.reply_claims(bot, run.id, key),
            run.channel,
            reply_key(run.id, key),
            bot.clock(),
            content={"text": text, "blocks": message_blocks},
            fallback=text[:3000],
            thread_ts=run.message_ts,
        )
        if outcome.status == "busy":
            log.info("rollback thread reply is being posted elsewhere", extra={"run": run.id, "key": key})
    except Exception:
        log.warning("rollback thread reply not posted", exc_info=True, extra={"run": run.id, "key": key})


def _step_key(step: Step, what: str) -> str:
    return f"step:{step.position}:{step.attempts}:{what}"


async def refresh_root(bot: BotContext, run: Run, now: datetime) -> None:
    if run.channel is None or run.message_ts is None:
        return
    text, message_blocks = blocks.render_run(run, now)
    try:
        await bot.slack.chat_update(channel=run.channel, ts=run.message_ts, text=text, blocks=message_blocks)
    except Exception:
        log.warning("rollback root not updated", exc_info=True, extra={"run": run.id})


async def post_summary(bot: BotContext, run: Run) -> None:
    """The Mira runbook's "Post update in #incidents channel", once per run, linking the thread."""
    if not await runner_store.claim_summary(bot, run):
        return
    channel = run.service.channels.incidents or bot.settings.incidents_channel
    try:
        text = thread_blocks.summary(run, await permalink(bot.slack, run.channel, run.message_ts))
        await slack_once.post_once(
            bot,
            bot.budget,
            runner_store.reply_claims(bot, run.id, "summary"),
            channel,
            reply_key(run.id, "summary"),
            bot.clock(),
            content={"text": text},
            fallback=text[:3000],
        )
    except Exception:
        log.exception("rollback summary not posted", extra={"run": run.id})


def approvers_of(bot: BotContext, run: Run, step: Step) -> tuple[list[str], list[str]]:
    """Who may sign off a manual step: its named approvers, else the service's owners."""
    if step.spec.approvers.configured:
        return step.spec.approvers.users, step.spec.approvers.groups
    return owners_of(bot, run.service)


# --- the steps ------------------------------------------------------------------------------------------------------


async def _flag_step(bot: BotContext, run: Run, step: Step) -> Outcome:
    spec = step.spec
    values = spec.flags
    if spec.rollout_stage:
        assert run.service.rollout is not None
        values = dict(run.service.rollout.stages[spec.rollout_stage])
    missing = missing_env(values)
    if missing:
        return Outcome("failed", f"not configured: set {', '.join(missing)}")
    try:
        planned = await flag_changes.plan(bot, run.service, {name: to_wire(v) for name, v in values.items()})
        items = [item for item in planned if not item.noop]
        already = ", ".join(
            f"{item.flag.name} is already {item.before.display()}" for item in planned if item.noop
        )
        if not items:  # nothing to change is recorded as nothing, as `/flag` does
            return Outcome("done", f"nothing to change: {already}")
        change = await flag_changes.record_change(
            bot,
            run.service,
            kind="rollback",
            label=f"rollback #{run.id} step {step.position}",
            requested_by=run.confirmed_by or run.requested_by,
            requested_in=run.channel,
            items=items,
            pending=False,
        )
    except (FlagStoreNotConfigured, FlagBackendError) as exc:
        return Outcome("failed", str(exc))
    applied = await flag_changes.apply(bot, change, run.confirmed_by or run.requested_by)
    if not applied.ok:
        return Outcome("failed", f"{applied.error} (flag change {change.id})")
    kept = f"; {already}" if already else ""
    return Outcome(
        "done", f"{change.describe()} (flag change {change.id}, revert: `/flag revert {change.id}`){kept}"
    )


async def _deploy_step(bot: BotContext, run: Run, step: Step) -> Outcome:
    hook = step.spec.hook
    assert hook is not None
    missing = missing_env(hook)
    secret = os.environ.get(hook.secret_env) if hook.secret_env else None
    if hook.secret_env and not secret:
        missing.append(hook.secret_env)
    if missing:
        return Outcome("failed", f"the deploy hook is not configured: set {', '.join(missing)}")
    call = deploy_hooks.HookCall(
        kind=hook.kind,
        url=hook.url,
        inputs=hook.inputs,
        secret=secret,
        idempotency_key=f"rollback-{run.id}-step-{step.position}-attempt-{step.attempts}",
        context={
            "service": run.service.name,
            "plan": run.plan,
            "rollback": run.id,
            "step": step.position,
            "title": step.spec.title,
            "requested_by": run.requested_by,
            "confirmed_by": run.confirmed_by,
        },
        status_url=hook.status_url,
        timeout_s=hook.timeout_s,
        poll_s=hook.poll_s,
    )
    try:
        answer = await deploy_hooks.trigger(bot.http, call)
    except deploy_hooks.DeployHookError as exc:
        return Outcome("failed", str(exc))
    return Outcome("done", answer.summary)


async def _manual_step(bot: BotContext, run: Run, step: Step, now: datetime, started_now: bool) -> Outcome:
    approvers = mentions(*approvers_of(bot, run, step)) or "nobody is configured (fail closed)"
    if started_now:
        text, message_blocks = thread_blocks.signoff_request(run, step, approvers)
        await say(bot, run, text, message_blocks, key=_step_key(step, "signoff"))
    elif (
        step.started_at
        and now - step.started_at >= MANUAL_REMINDER
        and await runner_store.claim_reminder(bot, run, step, now)
    ):
        await say(
            bot,
            run,
            thread_blocks.signoff_reminder(run, step, approvers, now - step.started_at),
            key=_step_key(step, "reminder"),
        )
    return Outcome("waiting")


async def _execute(bot: BotContext, run: Run, step: Step, now: datetime, started_now: bool) -> Outcome:
    kind = step.spec.kind
    if kind in ("flag", "deploy") and not started_now:
        # Found running by this pass: its runner stopped mid-call. Whether the change was made cannot be known.
        return Outcome(
            "failed",
            "interrupted: the bot stopped while this step ran, so it may or may not have taken effect. "
            "Check, then Retry the step or Abort.",
        )
    try:
        if kind == "flag":
            return await _flag_step(bot, run, step)
        if kind == "deploy":
            return await _deploy_step(bot, run, step)
        if kind == "verify":
            return await checks.verify(bot, run, step, now)
        if kind == "wait":
            return checks.wait(step, now)
        if kind == "watch":
            return await checks.watch(bot, run, step, now)
        return await _manual_step(bot, run, step, now, started_now)
    except Exception as exc:
        log.exception("rollback step crashed", extra={"run": run.id, "step": step.position})
        return Outcome("failed", f"unexpected error: {type(exc).__name__}")


# --- the run --------------------------------------------------------------------------------------------------------


async def advance(bot: BotContext, run_id: int, clock: Callable[[], datetime], previous_owner: str) -> None:
    """Run steps from the current one until a step waits, fails or the run ends. Called under the run's lease.

    The root is edited when a step starts and when the run stops or ends; each step's start and result is a
    thread reply.
    """
    run = await rollbacks.load(bot, run_id)
    if run is None:
        return
    if previous_owner:
        current = run.current
        where = f"{current.position}:{current.attempts}" if current else "end"
        await say(
            bot,
            run,
            thread_blocks.resumed(run, current, previous_owner),
            key=f"resumed:{where}:{previous_owner}",
        )
    while True:
        if await runner_store.status_of(bot, run.id) != "running":
            return  # aborted meanwhile
        step = run.current
        if step is None:
            if await runner_store.finish_run(bot, run, clock()):
                await refresh_root(bot, run, clock())
                await post_summary(bot, run)
            return
        started_now = False
        if step.status == "pending":
            if not await runner_store.start_step(bot, run, step, clock()):
                return
            started_now = True
            await refresh_root(bot, run, clock())
            await say(bot, run, thread_blocks.step_started(run, step), key=_step_key(step, "started"))
        if step.status != "running":
            return
        outcome = await _execute(bot, run, step, clock(), started_now)
        if outcome.status == "waiting":
            return
        if not await runner_store.finish_step(
            bot, run, step, outcome.status, outcome.result, clock(), outcome.detail
        ):
            # Ended by a person meanwhile (skipped, marked done, aborted): their reply said so; go on from there.
            reloaded = await rollbacks.load(bot, run.id)
            if reloaded is None:
                return
            run = reloaded
            continue
        text, message_blocks = thread_blocks.step_finished(run, step, clock())
        await say(bot, run, text, message_blocks, key=_step_key(step, outcome.status))
        if outcome.status == "failed":
            run.status = "failed"
            await refresh_root(bot, run, clock())
            return


async def expire(bot: BotContext, run_id: int, now: datetime) -> None:
    """A request nobody confirmed in time: marked expired, its buttons removed, and said so."""
    run = await rollbacks.load(bot, run_id)
    if run is None or not await rollbacks.end_pending(bot, run, "scheduler", "expired", now):
        return
    run.status = "expired"
    await refresh_root(bot, run, now)
