"""Debounced root edits, the worker's periodic step: a burst of events marks an incident's root dirty
(fold.py, threads.mark_root_dirty) and one chat.update per root follows, within Slack's Tier 3 allowance for the
workspace.

In a storm the allowance (about 50 edits a minute for the workspace) is what bounds how soon each root shows
its incident's state: an edit showing an acknowledgement while the incident's resolve already waits in the outbox
spends one of them on a state about to change (with delivery passes side by side, tried in issue 16, the
2,000-event storm needed 56 edits in its first minute, and four resolves waited for the next). So an incident
whose later events wait, not claimed yet, is edited once they are delivered, at most DEBOUNCE_BACKLOG later,
showing them too.

Each edit renders the incident as its claim returns it, never as first listed: another replica may fold a newer
state in between (see `flush_roots`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from psycopg.rows import dict_row

from bot import slack_once
from bot.context import BotContext
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks
from handlers.incidents.events import view_of
from handlers.incidents.threads import mark_root_dirty

log = logging.getLogger(__name__)

#: A root is edited once its incident has been quiet DEBOUNCE_QUIET, or has waited DEBOUNCE_MAX; but while later
#: events of it wait in the outbox, not claimed yet, up to DEBOUNCE_BACKLOG, so that its edit shows them too.
DEBOUNCE_QUIET = timedelta(seconds=1)
DEBOUNCE_MAX = timedelta(seconds=5)
DEBOUNCE_BACKLOG = timedelta(seconds=30)


async def flush_roots(
    bot: BotContext, budget: ChannelBudget, now: datetime, skip: Collection[str] = ()
) -> int:
    """One chat.update per dirty root once its incident is quiet (or has waited long enough), the longest waiting
    first, as many as the workspace's edit allowance has left (`ChannelBudget.allow_update`, Slack's Tier 3): the
    rest stay dirty for a later pass, so edits never hold up delivery. An edit that fails marks the root dirty
    again, so it is retried on the next pass instead of lost. `skip`: incidents a pass is still delivering; one
    whose later events wait in the outbox, not claimed yet, waits for them up to DEBOUNCE_BACKLOG."""
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT * FROM incidents i WHERE root_dirty_since IS NOT NULL AND NOT (id = ANY(%(skip)s))
               AND ((last_event_at <= %(quiet)s OR root_dirty_since <= %(max)s) AND NOT EXISTS (
                        SELECT 1 FROM pd_webhooks w WHERE w.incident_id = i.id AND w.status = 'pending'
                        AND (w.claimed_until IS NULL OR w.claimed_until < %(now)s))
                    OR root_dirty_since <= %(backlog)s) ORDER BY root_dirty_since, id""",
            {
                "skip": list(skip),
                "quiet": now - DEBOUNCE_QUIET,
                "max": now - DEBOUNCE_MAX,
                "now": now,
                "backlog": now - DEBOUNCE_BACKLOG,
            },
        )
        dirty = await cursor.fetchall()
    edited = 0
    for listed in dirty:
        since = listed["root_dirty_since"]
        async with bot.storage.pool.connection() as conn:
            # The claim returns the incident as it is now. A fold that committed since the SELECT above kept the
            # older mark (COALESCE): editing the row as selected would show a state already past and clear the
            # mark of the newer one (a resolve never shown: seen with delivery passes side by side).
            claim = conn.cursor(row_factory=dict_row)
            await claim.execute(
                """UPDATE incidents SET root_dirty_since = NULL WHERE id = %s AND root_dirty_since = %s
                   RETURNING *""",
                (listed["id"], since),
            )
            row = await claim.fetchone()
            if row is None:
                continue
            roots = await (
                await conn.execute(
                    """SELECT channel_id, ts, in_digest FROM incident_roots
                       WHERE incident_id = %s AND ts IS NOT NULL""",
                    (row["id"],),
                )
            ).fetchall()
        view = view_of(bot, row)
        fallback = blocks.fallback_text(view)
        try:
            for channel_id, ts, in_digest in roots:
                text, attachments = blocks.render_root(view, now, from_digest=in_digest is not None)
                if not await budget.allow_update():
                    await _mark_dirty_at(bot, view.id, since)  # keeps its place in line
                    return edited
                await slack_once.update(
                    bot, budget, channel_id, ts, fallback=fallback, text=text, attachments=attachments
                )
                edited += 1
        except Exception as exc:
            if slack_once.permanently_refused(exc):  # even the fallback: another try would be refused too
                log.error("root edit refused by Slack", exc_info=True, extra={"incident": view.id})
                continue
            log.warning(
                "root edit failed; retrying on the next pass", exc_info=True, extra={"incident": view.id}
            )
            await mark_root_dirty(bot, view.id, now)
    return edited


async def _mark_dirty_at(bot: BotContext, incident_id: str, since: datetime) -> None:
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            "UPDATE incidents SET root_dirty_since = LEAST(COALESCE(root_dirty_since, %s), %s) WHERE id = %s",
            (since, since, incident_id),
        )
