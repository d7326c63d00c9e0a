"""Rollback runs in Postgres: the request, its steps, and every state move as one conditional UPDATE.

A rollback is the most dangerous thing the bot does, so "exactly once" is enforced here and nowhere else:
- confirming moves the run `pending → running` only while it is pending and not expired (`… WHERE status =
  'pending' AND expires_at > now`), so a double click, a Slack retry or a second replica confirms it once;
- a runner drives a run only under a lease (`lease_owner`, `lease_until`); a run whose runner died is taken over
  when the lease lapses;
- a step is claimed `pending → running` before its effect, so no step starts twice. A flag or deploy step found
  `running` by a new runner was interrupted mid-call: it is marked failed for a human to Retry or Abort, because
  whether the hook was called cannot be known. Waits, verifications and manual sign-offs simply resume.
The runner's moves (its lease, each step, the run's end) are in :mod:`handlers.rollback.runner_store`, the
humans' decisions on a confirmed run (Retry, Skip, Mark done, Abort, sign-off) in
:mod:`handlers.rollback.step_store`; this module holds the request and its confirmation. A unique index allows
one open run (pending, running or failed) per service, rollback or restart, so a second request is refused by
Postgres, however many replicas take requests (`OpenRunExists`).
Times come from the caller's clock (injected in tests), never from `now()` in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bot.audit import audit
from bot.catalog import RollbackPlan, RollbackStep, Service
from bot.context import BotContext

FINISHED = ("done", "cancelled", "expired", "aborted")


@dataclass
class Step:
    position: int  # 1-based, as people count
    spec: RollbackStep
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    result: str | None
    detail: dict[str, Any] | None
    checked_at: datetime | None
    approved_by: str | None
    reminded_at: datetime | None

    def elapsed(self, now: datetime) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or now) - self.started_at


@dataclass(frozen=True)
class Problem:
    """What the preflight found missing for one step (`position`), in words that say what to set."""

    position: int
    problem: str


@dataclass
class Run:
    id: int
    service: Service
    plan: str
    reason: str | None
    requested_by: str
    requested_in: str | None
    status: str
    created_at: datetime
    expires_at: datetime
    confirmed_by: str | None
    confirmed_at: datetime | None
    ended_by: str | None
    finished_at: datetime | None
    channel: str | None
    message_ts: str | None
    lease_owner: str | None
    lease_until: datetime | None
    steps: list[Step]
    kind: str = "rollback"  # or "restart": a Level-1 restart, one Confirm
    preflight: list[Problem] = field(default_factory=list)

    @property
    def noun(self) -> str:
        return "Restart" if self.kind == "restart" else "Rollback"

    @property
    def command(self) -> str:
        """How to ask for it again."""
        if self.kind == "restart":
            return f"/restart {self.service.name}"
        return f"/rollback {self.service.name} {self.plan}"

    @property
    def requires_two_people(self) -> bool:
        """Rollbacks keep the two-person rule; a restart is the Level-1 on-call's own action."""
        return self.kind == "rollback" and self.service.requires_two_people

    @property
    def current(self) -> Step | None:
        """The first step not done or skipped: the one running, failed or next."""
        return next((s for s in self.steps if s.status not in ("done", "skipped")), None)

    def step(self, position: int) -> Step | None:
        return next((s for s in self.steps if s.position == position), None)


class OpenRunExists(Exception):
    """Another rollback or restart of the same service is pending, running or stopped on a failed step."""

    def __init__(self, run_id: int | None) -> None:
        super().__init__(f"run {run_id} is open")
        self.run_id = run_id


async def create(
    bot: BotContext,
    service: Service,
    plan: RollbackPlan,
    *,
    reason: str | None,
    requested_by: str,
    requested_in: str | None,
    now: datetime,
    kind: str = "rollback",
    preflight: list[Problem] | None = None,
) -> int:
    """Record a pending request with a copy of the plan's steps and what its preflight found; audited.
    OpenRunExists when the service already has an open run (the unique index decides, atomically)."""
    expires_at = now + timedelta(minutes=service.rollback_expires_minutes)
    problems = [{"position": p.position, "problem": p.problem} for p in preflight or []]
    try:
        return await _insert(
            bot, service, plan, reason, requested_by, requested_in, now, expires_at, kind, problems
        )
    except psycopg.errors.UniqueViolation:
        raise OpenRunExists(await open_run_id(bot, service)) from None


async def _insert(
    bot: BotContext,
    service: Service,
    plan: RollbackPlan,
    reason: str | None,
    requested_by: str,
    requested_in: str | None,
    now: datetime,
    expires_at: datetime,
    kind: str,
    problems: list[dict[str, Any]],
) -> int:
    async with bot.storage.pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                """INSERT INTO rollback_runs (service, plan, reason, requested_by, requested_in, created_at,
                                              expires_at, kind, preflight)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (
                    service.name,
                    plan.name,
                    reason,
                    requested_by,
                    requested_in,
                    now,
                    expires_at,
                    kind,
                    Jsonb(problems),
                ),
            )
        ).fetchone()
        assert row is not None
        run_id = int(row[0])
        for position, step in enumerate(plan.steps, start=1):
            await conn.execute(
                """INSERT INTO rollback_steps (run_id, position, kind, title, spec)
                   VALUES (%s, %s, %s, %s, %s)""",
                (run_id, position, step.kind, step.title, Jsonb(step.model_dump(mode="json"))),
            )
        await audit(
            conn,
            actor=requested_by,
            action=f"{kind}.request",
            outcome="pending",
            service=service.name,
            target=str(run_id),
            after={"plan": plan.name, "steps": [s.title for s in plan.steps]},
            detail={"reason": reason, "expires_at": expires_at.isoformat(), "preflight": problems},
        )
    return run_id


async def set_preflight(bot: BotContext, run_id: int, problems: list[Problem]) -> bool:
    """A pending request's preflight, checked again; False when it is no longer pending."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE rollback_runs SET preflight = %s WHERE id = %s AND status = 'pending'",
            (Jsonb([{"position": p.position, "problem": p.problem} for p in problems]), run_id),
        )
        return cursor.rowcount == 1


async def attach_message(bot: BotContext, run_id: int, channel: str, ts: str) -> None:
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            "UPDATE rollback_runs SET channel = %s, message_ts = %s WHERE id = %s", (channel, ts, run_id)
        )


def _step(row: dict[str, Any]) -> Step:
    return Step(
        position=row["position"],
        spec=RollbackStep.model_validate(row["spec"]),
        status=row["status"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        result=row["result"],
        detail=row["detail"],
        checked_at=row["checked_at"],
        approved_by=row["approved_by"],
        reminded_at=row["reminded_at"],
    )


async def load(bot: BotContext, run_id: int) -> Run | None:
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute("SELECT * FROM rollback_runs WHERE id = %s", (run_id,))
        row = await cursor.fetchone()
        if row is None:
            return None
        await cursor.execute("SELECT * FROM rollback_steps WHERE run_id = %s ORDER BY position", (run_id,))
        steps = [_step(s) for s in await cursor.fetchall()]
    service = bot.catalog.find(row["service"])
    if service is None:
        return None
    return Run(
        id=row["id"],
        service=service,
        plan=row["plan"],
        reason=row["reason"],
        requested_by=row["requested_by"],
        requested_in=row["requested_in"],
        status=row["status"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        confirmed_by=row["confirmed_by"],
        confirmed_at=row["confirmed_at"],
        ended_by=row["ended_by"],
        finished_at=row["finished_at"],
        channel=row["channel"],
        message_ts=row["message_ts"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        steps=steps,
        kind=row["kind"],
        preflight=[Problem(int(p["position"]), str(p["problem"])) for p in row["preflight"] or []],
    )


async def latest(bot: BotContext, service: Service | None) -> Run | None:
    """The active run if there is one, else the most recent confirmed or requested one."""
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                """SELECT id FROM rollback_runs WHERE (%s::text IS NULL OR service = %s)
                   ORDER BY status IN ('running', 'failed') DESC, id DESC LIMIT 1""",
                (service.name if service else None, service.name if service else None),
            )
        ).fetchone()
    return await load(bot, int(row[0])) if row else None


async def open_run_id(bot: BotContext, service: Service) -> int | None:
    """The service's open run (pending, running or failed), if any: the one the unique index keeps single."""
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT id FROM rollback_runs WHERE service = %s AND status IN ('pending', 'running', 'failed')",
                (service.name,),
            )
        ).fetchone()
    return int(row[0]) if row else None


# --- decisions on a pending request ---------------------------------------------------------------------------


async def confirm(bot: BotContext, run: Run, actor: str, now: datetime) -> bool:
    """pending → running, once, before expiry and only while its preflight found nothing missing. True for the
    one caller that won. (One open run per service is held from the request on, so confirming cannot collide.)"""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE rollback_runs SET status = 'running', confirmed_by = %s, confirmed_at = %s
               WHERE id = %s AND status = 'pending' AND expires_at > %s AND preflight = '[]'::jsonb""",
            (actor, now, run.id, now),
        )
        won = cursor.rowcount == 1
    if won:
        await audit(
            bot.storage.pool,
            actor=actor,
            action=f"{run.kind}.confirm",
            outcome="ok",
            service=run.service.name,
            target=str(run.id),
            detail={"requested_by": run.requested_by},
        )
    return won


async def end_pending(bot: BotContext, run: Run, actor: str, status: str, now: datetime) -> bool:
    """pending → cancelled (a person) or expired (the clock); audited once."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE rollback_runs SET status = %s, ended_by = %s, finished_at = %s
               WHERE id = %s AND status = 'pending' AND (%s <> 'expired' OR expires_at <= %s)""",
            (status, actor, now, run.id, status, now),
        )
        won = cursor.rowcount == 1
    if won:
        await audit(
            bot.storage.pool,
            actor=actor,
            action=f"{run.kind}.{'cancel' if status == 'cancelled' else 'expire'}",
            outcome=status,
            service=run.service.name,
            target=str(run.id),
        )
    return won


async def due_expiries(bot: BotContext, now: datetime) -> list[int]:
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id FROM rollback_runs WHERE status = 'pending' AND expires_at <= %s ORDER BY id", (now,)
        )
        return [int(row[0]) for row in await cursor.fetchall()]
