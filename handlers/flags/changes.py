"""Changing feature flags: record a change, claim it once, apply it, audit it, revert it.

Shared by `/flag` and the rollback engine's flag steps, so every flag change — typed by a person or run by a
rollback — goes through one audited path. A change is a row in `flag_changes`; every status move is a conditional
UPDATE (`… WHERE status = 'pending'`), so a double click, a Slack retry or a second replica applies it once.
Values cross this module as the strings the services read from their environment ("true", "30", "https://…").

Reading what a flag is now and planning a change live in :mod:`handlers.flags.current`; their names are
re-exported here, so callers keep one module for the whole change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bot.audit import audit
from bot.catalog import Flag, Service
from bot.context import BotContext
from handlers.flags.current import (
    CurrentValue,
    FlagStoreNotConfigured,
    PlannedFlag,
    backend_for,
    current_values,
    plan,
    to_wire,
)
from integrations.flag_backends import BackendResponse, FlagBackendError

__all__ = [
    "CONFIRM_WITHIN",
    "ApplyResult",
    "CurrentValue",
    "FlagChange",
    "FlagStoreNotConfigured",
    "PlannedFlag",
    "alerts_channel",
    "announcement",
    "apply",
    "backend_for",
    "cancel",
    "claim",
    "current_values",
    "load_change",
    "plan",
    "items_json",
    "record_change",
    "restart_command",
    "to_wire",
]

log = logging.getLogger(__name__)

CONFIRM_WITHIN = timedelta(minutes=15)


@dataclass
class FlagChange:
    id: int
    service: Service
    kind: str
    label: str | None
    requested_by: str
    status: str
    items: list[PlannedFlag]
    reverts: int | None = None
    created_at: datetime | None = None
    #: A revert's flags that a later change (or someone outside the bot) changed since: flag → what is there now.
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def risky(self) -> bool:
        return any(item.flag.risk == "high" for item in self.items)

    def describe(self, *, qualified: bool = False) -> str:
        """The items; `qualified` names each flag with its service (`ivy-v2:AI_BURST_LIMIT 10 → 5`)."""
        prefix = f"{self.service.name}:" if qualified else ""
        return ", ".join(item.describe(prefix) for item in self.items)

    @property
    def needs_restart(self) -> bool:
        """A flag the service reads only at start (`applies_on: restart`) is among the changed ones."""
        return any(item.flag.applies_on == "restart" for item in self.items)


def items_json(items: Sequence[PlannedFlag], conflicts: Mapping[str, Any] | None = None) -> Jsonb:
    return Jsonb(
        [
            {"flag": i.flag.name, "before": i.before.as_json(), "after": i.after}
            | ({"conflict": conflicts[i.flag.name]} if conflicts and i.flag.name in conflicts else {})
            for i in items
        ]
    )


async def record_change(
    bot: BotContext,
    service: Service,
    *,
    kind: str,
    label: str | None,
    requested_by: str,
    requested_in: str | None,
    items: Sequence[PlannedFlag],
    pending: bool,
    reverts: int | None = None,
    conflicts: Mapping[str, dict[str, Any]] | None = None,
) -> FlagChange:
    """Insert the change: `pending` (waits for Confirm) or already `applying` (claimed by the requester). Its
    times are the bot's clock, the one the confirmation window is judged by (`claim`)."""
    status = "pending" if pending else "applying"
    now = bot.clock()
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                """INSERT INTO flag_changes (service, kind, label, requested_by, requested_in, status, changes,
                                             reverts, decided_by, decided_at, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN NULL ELSE %s END, %s)
                   RETURNING id, created_at""",
                (
                    service.name,
                    kind,
                    label,
                    requested_by,
                    requested_in,
                    status,
                    items_json(items, conflicts),
                    reverts,
                    None if pending else requested_by,
                    pending,
                    now,
                    now,
                ),
            )
        ).fetchone()
    assert row is not None
    change = FlagChange(
        row[0],
        service,
        kind,
        label,
        requested_by,
        status,
        list(items),
        reverts,
        row[1],
        dict(conflicts or {}),
    )
    await audit(
        bot.storage.pool,
        actor=requested_by,
        action="flag.request",
        outcome="pending" if pending else "requested",
        service=service.name,
        target=str(change.id),
        before={i.flag.name: i.before.as_json() for i in items},
        after={i.flag.name: i.after for i in items},
        detail={"kind": kind, "label": label, "reverts": reverts, "conflicts": dict(conflicts or {}) or None},
    )
    return change


def _items_from_json(service: Service, raw: list[dict[str, Any]]) -> list[PlannedFlag]:
    items = []
    for entry in raw:
        flag = service.flag(entry["flag"])
        if (
            flag is None
        ):  # the catalog lost the flag since: keep a typed stand-in so the change can still be shown
            flag = Flag(name=entry["flag"], type="string", backend="postgres_table")
        before = entry["before"]
        current = CurrentValue(flag, before["present"], before["value"], before["known"], False)
        items.append(PlannedFlag(flag, current, entry["after"]))
    return items


async def load_change(bot: BotContext, change_id: int) -> tuple[FlagChange, dict[str, Any]] | None:
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute("SELECT * FROM flag_changes WHERE id = %s", (change_id,))
        row = await cursor.fetchone()
    if row is None:
        return None
    service = bot.catalog.find(row["service"])
    if service is None:
        return None
    change = FlagChange(
        row["id"],
        service,
        row["kind"],
        row["label"],
        row["requested_by"],
        row["status"],
        _items_from_json(service, row["changes"]),
        row["reverts"],
        row["created_at"],
        {entry["flag"]: entry["conflict"] for entry in row["changes"] if entry.get("conflict")},
    )
    return change, row


async def claim(bot: BotContext, change_id: int, actor: str) -> bool:
    """pending → applying, once, and only within the confirmation window (by the bot's clock, which also wrote
    `created_at`). True for the one caller that won."""
    now = bot.clock()
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE flag_changes SET status = 'applying', decided_by = %s, decided_at = %s
               WHERE id = %s AND status = 'pending' AND created_at > %s""",
            (actor, now, change_id, now - CONFIRM_WITHIN),
        )
        return cursor.rowcount == 1


async def cancel(bot: BotContext, change_id: int, actor: str) -> bool:
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE flag_changes SET status = 'cancelled', decided_by = %s, decided_at = %s
               WHERE id = %s AND status = 'pending'""",
            (actor, bot.clock(), change_id),
        )
        won = cursor.rowcount == 1
    if won:
        await audit(
            bot.storage.pool, actor=actor, action="flag.cancel", outcome="cancelled", target=str(change_id)
        )
    return won


@dataclass
class ApplyResult:
    change: FlagChange
    applied: list[PlannedFlag] = field(default_factory=list)
    error: FlagBackendError | None = None
    responses: list[BackendResponse] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def _response_json(response: BackendResponse) -> dict[str, Any]:
    limit = response.rate_limit
    return {
        "status": response.status,
        "summary": response.summary,
        "rate_limit": None if limit is None else {"limit": limit.limit, "remaining": limit.remaining},
    }


async def apply(bot: BotContext, change: FlagChange, actor: str) -> ApplyResult:
    """Send a claimed (`applying`) change to its backends: one request per backend and operation (set, unset).

    The stored values and the change's status follow what the backends accepted; a failure stops there, is
    audited with the backend's words, and leaves the flags the backend refused as they were.
    """
    result = ApplyResult(change)
    groups: dict[tuple[str, bool], list[PlannedFlag]] = {}
    for item in change.items:
        groups.setdefault((item.flag.backend, item.after is None), []).append(item)
    for (kind, unset), items in groups.items():
        try:
            backend = backend_for(bot, change.service, kind)
            if unset:
                response = await backend.unset([i.flag.name for i in items], actor=actor)
            else:
                response = await backend.set({i.flag.name: str(i.after) for i in items}, actor=actor)
        except FlagStoreNotConfigured as exc:
            result.error = FlagBackendError(str(exc))
        except FlagBackendError as exc:
            result.error = exc
        if result.error is not None:
            await _audit_items(bot, change, items, actor, "failed", {"error": str(result.error)})
            break
        result.applied.extend(items)
        result.responses.append(response)
        await _remember(bot, change, items, actor)
        await _audit_items(bot, change, items, actor, "ok", _response_json(response))
    status = "applied" if result.ok else "failed"
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """UPDATE flag_changes SET status = %s, applied_at = CASE WHEN %s THEN %s END, backend_response = %s
               WHERE id = %s""",
            (
                status,
                result.ok,
                bot.clock(),
                Jsonb(
                    {
                        "responses": [_response_json(r) for r in result.responses],
                        "error": None if result.ok else str(result.error),
                    }
                ),
                change.id,
            ),
        )
    change.status = status
    return result


async def _remember(bot: BotContext, change: FlagChange, items: Sequence[PlannedFlag], actor: str) -> None:
    async with bot.storage.pool.connection() as conn:
        for item in items:
            await conn.execute(
                """INSERT INTO flag_values (service, flag, value, change_id, set_by, set_at)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (service, flag) DO UPDATE SET value = EXCLUDED.value, change_id = EXCLUDED.change_id,
                       set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at""",
                (change.service.name, item.flag.name, item.after, change.id, actor, bot.clock()),
            )


async def _audit_items(
    bot: BotContext, change: FlagChange, items: Sequence[PlannedFlag], actor: str, outcome: str, detail: Any
) -> None:
    for item in items:
        await audit(
            bot.storage.pool,
            actor=actor,
            action="flag.unset" if item.after is None else "flag.set",
            outcome=outcome,
            service=change.service.name,
            target=item.flag.name,
            before=item.before.as_json(),
            after=item.after,
            detail={"change": change.id, "backend": detail},
        )


def alerts_channel(bot: BotContext, service: Service) -> str:
    return service.channels.alerts or bot.settings.alerts_channel


def announcement(change: FlagChange, actor: str) -> str:
    """The one line the alerts channel gets, naming the service with every flag (a channel may hear of several
    services, and two have an OPENAI_MODEL): "<@U…> set ivy-v2:IVY_MODAL_HEURISTICS true → false (change 42,
    revert: /flag revert 42)", and the restart it still needs."""
    what = {
        "set": "set",
        "unset": "unset",
        "preset": f"applied preset {change.label} on {change.service.display_name}:",
        "rollout": f"moved the {change.service.display_name} rollout to {change.label}:",
        "revert": f"reverted change {change.reverts} on {change.service.display_name}:",
        "rollback": f"set, as {change.label} of {change.service.display_name},",
    }[change.kind]
    line = f"<@{actor}> {what} {change.describe(qualified=True)} (change {change.id}, revert: `/flag revert {change.id}`)"
    kept = [name for name in change.conflicts if name not in {item.flag.name for item in change.items}]
    if kept:
        line += f" — kept {', '.join(f'{change.service.name}:{name}' for name in kept)} (changed since)"
    if change.needs_restart:
        line += f" — needs a restart to apply: `{restart_command(change.service)}`"
    return line


def restart_command(service: Service) -> str:
    """The command that applies a restart-only flag (AI Assistant SOP-002 step 4), run by `next_step.run`."""
    return f"/restart {service.name}"
