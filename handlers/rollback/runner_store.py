"""The runner's side of a confirmed rollback in Postgres: its lease, each step's moves, the run's end.

Split from :mod:`handlers.rollback.store` (the request, its confirmation and the humans' decisions) because these
moves have one caller, the runner (:mod:`handlers.rollback.run`, driven by :mod:`bot.rollback_worker`), and one
rule of their own: a runner acts on a run only while it holds the lease (`lease_owner`, `lease_until`), and every
move is a conditional UPDATE, so a step is claimed `pending → running` once, its outcome is recorded once, and
the summary is posted once, however many replicas run. Times come from the caller's clock, never `now()` in SQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from bot.audit import audit
from bot.context import BotContext
from bot.reply_claims import RowReplyClaims
from handlers.rollback.store import Run, Step

# --- the runner's lease and step moves -------------------------------------------------------------------------


async def runnable(bot: BotContext, now: datetime, owner: str) -> list[int]:
    """Running rollbacks this runner holds or may take over."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT id FROM rollback_runs WHERE status = 'running'
                 AND (lease_until IS NULL OR lease_until < %s OR lease_owner = %s) ORDER BY id""",
            (now, owner),
        )
        return [int(row[0]) for row in await cursor.fetchall()]


async def take_lease(bot: BotContext, run_id: int, owner: str, now: datetime, lease: timedelta) -> str | None:
    """Hold the run for `lease`; returns the previous owner ("" when it was this runner or nobody), None when
    another runner holds it."""
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                """UPDATE rollback_runs r SET lease_owner = %s, lease_until = %s
                   FROM (SELECT id, lease_owner FROM rollback_runs WHERE id = %s FOR UPDATE) AS previous
                   WHERE r.id = previous.id AND r.status = 'running'
                     AND (r.lease_until IS NULL OR r.lease_until < %s OR r.lease_owner = %s)
                   RETURNING previous.lease_owner""",
                (owner, now + lease, run_id, now, owner),
            )
        ).fetchone()
    if row is None:
        return None
    return "" if row[0] in (None, owner) else str(row[0])


async def renew_lease(bot: BotContext, run_id: int, owner: str, until: datetime) -> None:
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            "UPDATE rollback_runs SET lease_until = %s WHERE id = %s AND lease_owner = %s",
            (until, run_id, owner),
        )


async def release_leases(bot: BotContext, owner: str) -> None:
    """Let another runner pick this runner's rollbacks up at once (on shutdown); the owner stays recorded."""
    async with bot.storage.pool.connection() as conn:
        await conn.execute("UPDATE rollback_runs SET lease_until = NULL WHERE lease_owner = %s", (owner,))


async def start_step(bot: BotContext, run: Run, step: Step, now: datetime) -> bool:
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE rollback_steps SET status = 'running', attempts = attempts + 1, started_at = %s,
                   finished_at = NULL, result = NULL
               WHERE run_id = %s AND position = %s AND status = 'pending'""",
            (now, run.id, step.position),
        )
        won = cursor.rowcount == 1
    if won:
        step.status, step.started_at, step.finished_at, step.result = "running", now, None, None
        step.attempts += 1
        await _audit_step(bot, run, step, "started")
    return won


async def finish_step(
    bot: BotContext, run: Run, step: Step, status: str, result: str, now: datetime, detail: Any = None
) -> bool:
    """running → done | failed; a failure also moves the run to `failed`, so nothing continues past it. False
    when the step was no longer running (a person skipped it, marked it done or aborted the run meanwhile)."""
    async with bot.storage.pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            """UPDATE rollback_steps SET status = %s, result = %s, finished_at = %s, detail = %s
               WHERE run_id = %s AND position = %s AND status = 'running'""",
            (status, result, now, Jsonb(detail), run.id, step.position),
        )
        if cursor.rowcount != 1:
            return False
        if status == "failed":
            await conn.execute(
                "UPDATE rollback_runs SET status = 'failed' WHERE id = %s AND status = 'running'", (run.id,)
            )
    step.status, step.result, step.finished_at, step.detail = status, result, now, detail
    await _audit_step(bot, run, step, "ok" if status == "done" else "failed")
    return True


async def mark_checked(bot: BotContext, run: Run, step: Step, now: datetime) -> None:
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            "UPDATE rollback_steps SET checked_at = %s WHERE run_id = %s AND position = %s",
            (now, run.id, step.position),
        )
    step.checked_at = now


async def claim_reminder(bot: BotContext, run: Run, step: Step, now: datetime) -> bool:
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE rollback_steps SET reminded_at = %s
               WHERE run_id = %s AND position = %s AND status = 'running' AND reminded_at IS NULL""",
            (now, run.id, step.position),
        )
        return cursor.rowcount == 1


async def finish_run(bot: BotContext, run: Run, now: datetime) -> bool:
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE rollback_runs SET status = 'done', finished_at = %s, lease_until = NULL
               WHERE id = %s AND status = 'running'
                 AND NOT EXISTS (SELECT 1 FROM rollback_steps WHERE run_id = %s AND status NOT IN ('done', 'skipped'))""",
            (now, run.id, run.id),
        )
        won = cursor.rowcount == 1
    if won:
        run.status, run.finished_at = "done", now
        await audit(
            bot.storage.pool,
            actor=run.confirmed_by or run.requested_by,
            action=f"{run.kind}.done",
            outcome="ok",
            service=run.service.name,
            target=str(run.id),
        )
    return won


async def claim_summary(bot: BotContext, run: Run) -> bool:
    """The #incidents summary is posted once, by whoever ends the run."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE rollback_runs SET summary_posted = true WHERE id = %s AND NOT summary_posted", (run.id,)
        )
        return cursor.rowcount == 1


async def status_of(bot: BotContext, run_id: int) -> str | None:
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute("SELECT status FROM rollback_runs WHERE id = %s", (run_id,))
        ).fetchone()
    return str(row[0]) if row else None


async def _audit_step(bot: BotContext, run: Run, step: Step, outcome: str) -> None:
    await audit(
        bot.storage.pool,
        actor=run.confirmed_by or run.requested_by,
        action=f"{run.kind}.step",
        outcome=outcome,
        service=run.service.name,
        target=f"{run.id}/{step.position}",
        after={
            "kind": step.spec.kind,
            "title": step.spec.title,
            "status": step.status,
            "result": step.result,
        },
        detail={"attempt": step.attempts},
    )


# --- thread replies, each claimed once (bot/slack_once.py `post_once`) ------------------------------------------


def reply_claims(bot: BotContext, run_id: int, key: str) -> RowReplyClaims:
    """The claim on one reply in a rollback's thread: its `rollback_replies` row, `(run, key)`."""
    return RowReplyClaims(bot.storage.pool, "rollback_replies", {"run_id": run_id, "key": key})
