"""The humans' decisions on a confirmed run, each one conditional UPDATE in a transaction with its audit row.

Retry (a failed step again), Skip (with a reason), Mark done (the step was done outside the bot), Abort (the
rest skipped) and a manual step's sign-off. Skip and Mark done act only on the run's current step — the first
not done or skipped — and only when it is failed, or running a step that merely waits (a wait, a watch, a
verify's polling, a manual step): a flag change or deploy hook mid-call is never declared skipped or done under
its runner. Each moves a failed run back to running, so the runner continues with the next step. Times come
from the caller's clock. The person is recorded in `approved_by` (the result's text carries no markup: it is
escaped when shown, and the mention is added then).
"""

from __future__ import annotations

from datetime import datetime

from bot.audit import audit
from bot.context import BotContext
from handlers.rollback.store import Run

#: Steps that only wait while running, so a person may end them (Skip, Mark done, Abort) under their runner.
WAITING_KINDS = ("wait", "watch", "manual", "verify")


async def retry(bot: BotContext, run: Run, position: int, actor: str) -> bool:
    """A failed step back to pending and the run back to running, together, once."""
    async with bot.storage.pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            """UPDATE rollback_runs SET status = 'running' WHERE id = %s AND status = 'failed'""", (run.id,)
        )
        if cursor.rowcount != 1:
            return False
        cursor = await conn.execute(
            """UPDATE rollback_steps SET status = 'pending', result = NULL, started_at = NULL, finished_at = NULL,
                   checked_at = NULL
               WHERE run_id = %s AND position = %s AND status = 'failed'""",
            (run.id, position),
        )
        if cursor.rowcount != 1:
            await conn.rollback()
            return False
        await audit(
            conn,
            actor=actor,
            action=f"{run.kind}.retry",
            outcome="ok",
            service=run.service.name,
            target=f"{run.id}/{position}",
        )
    return True


async def _end_step(
    bot: BotContext,
    run: Run,
    position: int,
    actor: str,
    now: datetime,
    status: str,
    result: str,
    what: str,
    reason: str | None,
) -> bool:
    async with bot.storage.pool.connection() as conn, conn.transaction():
        # Only the current step (none before it unfinished), failed or running a step that only waits, of a run
        # still running or failed.
        cursor = await conn.execute(
            """UPDATE rollback_steps SET status = %(status)s, result = %(result)s, approved_by = %(actor)s,
                   finished_at = %(now)s, started_at = COALESCE(started_at, %(now)s)
               WHERE run_id = %(run)s AND position = %(position)s
                 AND (status = 'failed' OR (status = 'running' AND kind IN ('wait', 'watch', 'manual', 'verify')))
                 AND NOT EXISTS (SELECT 1 FROM rollback_steps e WHERE e.run_id = %(run)s AND e.position < %(position)s
                                 AND e.status NOT IN ('done', 'skipped'))
                 AND EXISTS (SELECT 1 FROM rollback_runs WHERE id = %(run)s AND status IN ('running', 'failed'))""",
            {
                "status": status,
                "result": result,
                "actor": actor,
                "now": now,
                "run": run.id,
                "position": position,
            },
        )
        if cursor.rowcount != 1:
            return False
        await conn.execute(
            "UPDATE rollback_runs SET status = 'running' WHERE id = %s AND status = 'failed'", (run.id,)
        )
        before = run.step(position)
        await audit(
            conn,
            actor=actor,
            action=f"{run.kind}.{what}",
            outcome="ok",
            service=run.service.name,
            target=f"{run.id}/{position}",
            before={"status": before.status if before else None},
            after={"status": status, "result": result},
            detail={"reason": reason},
        )
    return True


async def skip(bot: BotContext, run: Run, position: int, actor: str, reason: str, now: datetime) -> bool:
    """The current step skipped with a reason, once; the run goes on with the next step."""
    return await _end_step(bot, run, position, actor, now, "skipped", f"skipped: {reason}", "skip", reason)


async def mark_done(bot: BotContext, run: Run, position: int, actor: str, now: datetime) -> bool:
    """The current step recorded as done by hand outside the bot, once; the run goes on with the next step."""
    return await _end_step(
        bot,
        run,
        position,
        actor,
        now,
        "done",
        "marked done: done outside the bot",
        "mark_done",
        None,
    )


async def abort(bot: BotContext, run: Run, actor: str, now: datetime) -> bool:
    """running | failed → aborted; steps not finished are skipped. A step mid-call finishes first (its runner
    checks the run's status before the next step)."""
    async with bot.storage.pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            """UPDATE rollback_runs SET status = 'aborted', ended_by = %s, finished_at = %s
               WHERE id = %s AND status IN ('running', 'failed')""",
            (actor, now, run.id),
        )
        if cursor.rowcount != 1:
            return False
        await conn.execute(
            """UPDATE rollback_steps SET status = 'skipped', finished_at = COALESCE(finished_at, %s)
               WHERE run_id = %s AND (status IN ('pending', 'failed')
                                      OR (status = 'running' AND kind IN ('wait', 'watch', 'manual', 'verify')))""",
            (now, run.id),
        )
        await audit(
            conn,
            actor=actor,
            action=f"{run.kind}.abort",
            outcome="aborted",
            service=run.service.name,
            target=str(run.id),
        )
    return True


async def approve(bot: BotContext, run: Run, position: int, actor: str, now: datetime) -> bool:
    """A manual step's sign-off: running → done, once."""
    async with bot.storage.pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            """UPDATE rollback_steps SET status = 'done', approved_by = %s, finished_at = %s,
                   result = 'signed off'
               WHERE run_id = %s AND position = %s AND kind = 'manual' AND status = 'running'
                 AND EXISTS (SELECT 1 FROM rollback_runs WHERE id = %s AND status = 'running')""",
            (actor, now, run.id, position, run.id),
        )
        if cursor.rowcount != 1:
            return False
        await audit(
            conn,
            actor=actor,
            action=f"{run.kind}.approve",
            outcome="ok",
            service=run.service.name,
            target=f"{run.id}/{position}",
        )
    return True
