"""`health_runs`: every /health run (and the handoff's health evidence) kept as evidence, with where it was posted.

The runs of requests that finish together, and the message coordinates of those answered meanwhile, are written in
one statement (group commit, bot/group_commit.py). A crowd typing `/health` during an outage made two statements
per request, a sixth of the event loop's samples in the ack benchmark's profile (docs/PERFORMANCE.md, "ack");
batched, a burst costs one statement per batch. Each caller still learns its own run's id only after its row has
committed, and a failing statement fails each of its callers, so /health's "this run was not recorded" note
stays true.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any, NamedTuple

from bot.context import BotContext
from bot.group_commit import GroupCommit
from bot.replies import PostedMessage
from handlers.health.probing import ServiceHealth

log = logging.getLogger(__name__)

#: One statement for a batch: the message coordinates of the runs answered since the last batch (an UPDATE) and
#: the new runs (an INSERT), so the two writes of a /health share round trips with the other requests' (the UPDATE
#: only ever names runs committed by earlier statements, so the two parts never touch the same row). The ids come
#: from the sequence beside each row's position (WITH ORDINALITY), so each caller gets its own row's id: INSERT …
#: RETURNING promises no order. One text whatever the batch (arrays), so psycopg prepares it once.
_WRITE_RUNS = """
    WITH attached AS (
        UPDATE health_runs AS h SET message_channel = m.channel, message_ts = m.ts
        FROM unnest(%b::bigint[], %b::text[], %b::text[]) AS m(id, channel, ts)
        WHERE h.id = m.id
    ), run AS (
        SELECT nextval(pg_get_serial_sequence('health_runs', 'id')) AS id, r.*
        FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::text[])
             WITH ORDINALITY AS r(requested_by, scope, channel, started_at, finished_at, results, position)
    ), inserted AS (
        INSERT INTO health_runs (id, requested_by, scope, channel, started_at, finished_at, results)
        SELECT id, requested_by, scope, channel, started_at, finished_at, results::jsonb FROM run
    )
    SELECT id FROM run ORDER BY position"""
#: How long one batch may take. The batches are written one after another, so a statement that hangs (Postgres
#: frozen, not refusing) would hold every /health behind it, each waiting for its row before it answers: cut, its
#: runs are answered as "not recorded" and the next batch tries again.
WRITE_TIMEOUT = 5.0
#: Enough for POST_ACK_CONCURRENCY (bot/background.py) /health runs finishing together, several times over.
MAX_BATCH = 100


class _Run(NamedTuple):
    requested_by: str
    scope: str | None
    channel: str
    started_at: datetime
    finished_at: datetime
    results: str  # JSON


class _Attached(NamedTuple):
    """Where a run's answer was posted."""

    run_id: int
    channel: str
    ts: str


def results_json(services: tuple[ServiceHealth, ...]) -> dict[str, Any]:
    return {
        health.service.name: {
            "status": health.status.value,
            "probes": [
                {
                    "name": p.name,
                    "status": p.status.value,
                    "latency_ms": p.latency_ms,
                    "detail": p.detail,
                    **({"body": p.body} if p.body else {}),
                }
                for p in health.probes
            ],
        }
        for health in services
    }


def _columns(rows: list[Any], width: int) -> list[list[Any]]:
    return [list(values) for values in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def _write_runs(bot: BotContext, writes: list[_Run | _Attached]) -> list[int | None]:
    """Each run's id, and None for each attached message, in the order of `writes`."""
    runs = [w for w in writes if isinstance(w, _Run)]
    attached = [w for w in writes if isinstance(w, _Attached)]
    async with asyncio.timeout(WRITE_TIMEOUT), bot.storage.autocommit(timeout=2.0) as conn:
        cursor = await conn.execute(_WRITE_RUNS, [*_columns(attached, 3), *_columns(runs, len(_Run._fields))])
        ids = iter([int(row[0]) for row in await cursor.fetchall()])
    return [next(ids) if isinstance(w, _Run) else None for w in writes]


def _batch(bot: BotContext) -> GroupCommit[_Run | _Attached, int | None]:
    return bot.batches.get("health_runs", lambda writes: _write_runs(bot, writes), MAX_BATCH)


async def record_run(
    bot: BotContext,
    services: tuple[ServiceHealth, ...],
    *,
    checked_at: datetime,
    requested_by: str,
    scope: str | None,
    channel: str,
) -> int | None:
    """Keep the run as evidence; its id, or None when the bot's database is unavailable. Best effort: /health must
    answer even then, so the failure is logged and the caller notes it in the message."""
    run = _Run(requested_by, scope, channel, checked_at, bot.clock(), json.dumps(results_json(services)))
    try:
        return await _batch(bot).submit(run)
    except Exception:
        log.warning("could not record the health run", exc_info=True)
        return None


async def attach_message(bot: BotContext, run_id: int, message: PostedMessage) -> None:
    """Where the run's answer is, so later features can link to it (best effort, like the run itself)."""
    try:
        await _batch(bot).submit(_Attached(run_id, message.channel, message.ts))
    except Exception:
        log.warning("could not attach the message to its health run", exc_info=True)
