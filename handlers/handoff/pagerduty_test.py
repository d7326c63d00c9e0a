"""The handoff's "Test PagerDuty integration" button: the whole alerting loop, end to end, on demand.

Pressing it sends an Events API v2 trigger with the handoff service's routing key (catalog) and a dedup_key of our
own, then waits for PagerDuty's `incident.triggered` webhook whose `incident_key` is that dedup_key to be stored by
this bot (any replica's /pagerduty/webhook). The round trip — trigger sent to webhook stored, both on the
database's clock — is reported in the checklist's thread, and the test incident is resolved through the Events
API. No webhook by the deadline (catalog `pagerduty_test_timeout_seconds`) means the loop is broken, and the
thread says so.

Slack gets its ack at once (Bolt acks before this runs); the waiting happens after it. The test is a row in
`handoff_pagerduty_tests`: one running test per checklist (a partial unique index), so a double click or the same
click on a second replica starts nothing; each outcome is a conditional UPDATE from `waiting`, so it is reported
once; and the waiter holds a short lease, so when its replica dies the scheduler's sweep on any replica finishes
the test (or declares it broken at its deadline). Every test is audited.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from bot.audit import audit
from bot.commands import Action
from bot.context import ActionContext, BotContext
from bot.pagerduty_ingest import HANDOFF_TEST_KEY_PREFIX
from handlers import incidents
from handlers.handoff import blocks, store
from handlers.handoff import checklist as handoff
from handlers.handoff import evidence as handoff_evidence
from integrations.pagerduty import PagerDutyError, send_event

POLL_SECONDS = 0.5  # the round trip is measured on the database's clock, not by this poll
LEASE = timedelta(seconds=30)
SENDING_STALE = timedelta(minutes=2)  # a test still "sending" this long after the click: its replica died


def _timeout(bot: BotContext) -> timedelta:
    seconds = bot.catalog.handoff.pagerduty_test_timeout_seconds if bot.catalog.handoff else 120
    return timedelta(seconds=seconds)


async def _test(bot: BotContext, test_id: int) -> dict[str, Any] | None:
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute("SELECT * FROM handoff_pagerduty_tests WHERE id = %s", (test_id,))
        return await cursor.fetchone()


async def _event(bot: BotContext, action: str, dedup_key: str, **fields: Any) -> dict[str, Any]:
    service = bot.catalog.handoff_service()
    assert service is not None and service.pagerduty.events_routing_key
    return await send_event(
        bot.settings.pagerduty_events_url,
        routing_key=service.pagerduty.events_routing_key,
        action=action,
        dedup_key=dedup_key,
        **fields,
    )


async def _resolve(bot: BotContext, dedup_key: str) -> str | None:
    """Resolve the test incident (Events API `resolve` with its dedup_key); PagerDuty's words on failure."""
    try:
        await _event(bot, "resolve", dedup_key)
    except PagerDutyError as exc:
        return str(exc)
    return None


async def start(ctx: ActionContext) -> None:
    bot = ctx.bot
    value = ctx.value or ""
    record = await store.by_id(bot.storage.pool, int(value)) if value.isdigit() else None
    if record is None or record.ts is None:
        await ctx.reply.ephemeral(
            "That checklist is no longer known to the bot; `/oncall checklist` shows this week's."
        )
        return
    problem = handoff.test_problem(bot)
    service = bot.catalog.handoff_service()
    if problem or service is None:
        await ctx.reply.ephemeral(f":warning: The PagerDuty test cannot run: {problem}.")
        return
    now = bot.clock()
    timeout = _timeout(bot)
    dedup_key = f"{HANDOFF_TEST_KEY_PREFIX}{uuid.uuid4()}"
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                """INSERT INTO handoff_pagerduty_tests
                       (handoff_id, service, dedup_key, requested_by, status, requested_at, deadline, claimed_until)
                   VALUES (%s, %s, %s, %s, 'sending', %s, %s, %s)
                   ON CONFLICT DO NOTHING RETURNING id""",
                (record.id, service.name, dedup_key, ctx.user_id, now, now + timeout, now + LEASE),
            )
        ).fetchone()
        running = None
        if row is None:
            running = await (
                await conn.execute(
                    """SELECT requested_by, requested_at FROM handoff_pagerduty_tests
                       WHERE handoff_id = %s AND status IN ('sending', 'waiting')""",
                    (record.id,),
                )
            ).fetchone()
    if row is None:
        who = f" (started by <@{running[0]}> at {blocks.when(running[1])})" if running else ""
        await ctx.reply.ephemeral(
            f"A PagerDuty test is already running{who}; its result will be posted in the thread."
        )
        return
    test_id = int(row[0])
    await audit(
        bot.storage.pool,
        actor=ctx.user_id,
        action="handoff.pagerduty_test",
        outcome="pending",
        service=service.name,
        target=dedup_key,
        detail={"handoff_id": record.id, "test_id": test_id},
    )
    await handoff.post_reply(
        bot,
        record,
        f"pagerduty_test:{test_id}:start",
        blocks.test_started_text(ctx.user_id, service, timeout),
    )
    await handoff.refresh_message(bot, record.id)
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            # The bot's clock, as the webhook's received_at is (bot/pagerduty_ingest.py): one clock for the round trip.
            "UPDATE handoff_pagerduty_tests SET sent_at = %s WHERE id = %s",
            (bot.clock(), test_id),
        )
    try:
        await _event(
            bot,
            "trigger",
            dedup_key,
            summary=f"[Mira Bot] Handoff test of the PagerDuty integration, requested in Slack by {ctx.user_id}",
            source="mira-bot handoff checklist",
            severity="info",
            custom_details={"handoff_rotation": record.rotation.isoformat(), "requested_by": ctx.user_id},
        )
    except PagerDutyError as exc:
        await _finish(bot, test_id, "failed", detail=str(exc), now=bot.clock(), from_status="sending")
        return
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """UPDATE handoff_pagerduty_tests SET status = 'waiting', claimed_until = %s
               WHERE id = %s AND status = 'sending'""",
            (bot.clock() + LEASE, test_id),
        )
    await wait(bot, test_id, timeout)


async def wait(bot: BotContext, test_id: int, timeout: timedelta) -> None:
    """Poll the stored webhooks until the test's own arrives, the test is finished elsewhere, or it times out
    (by the bot's clock, or by this process's own elapsed time when that clock is held still in a test)."""
    started = time.monotonic()
    while not await check(bot, test_id, bot.clock(), waiter=True):
        if time.monotonic() - started > timeout.total_seconds():
            await check(bot, test_id, bot.clock(), waiter=True, expired=True)
            return
        await asyncio.sleep(POLL_SECONDS)


async def check(
    bot: BotContext, test_id: int, now: datetime, *, waiter: bool = False, expired: bool = False
) -> bool:
    """Look once: report the test when its webhook is stored, or broken past its deadline. True when the test is
    finished (here or elsewhere); otherwise the waiter renews its lease."""
    test = await _test(bot, test_id)
    if test is None or test["status"] != "waiting":
        return True
    match = await incidents.trigger_with_key(bot, test["dedup_key"])
    if match is not None:
        await _finish(
            bot,
            test_id,
            "ok",
            now=now,
            webhook_id=match.webhook_id,
            received_at=match.received_at,
            incident_id=match.incident_id,
        )
        return True
    if expired or now >= test["deadline"]:
        await _finish(bot, test_id, "broken", now=now)
        return True
    if waiter:
        async with bot.storage.pool.connection() as conn:
            await conn.execute(
                "UPDATE handoff_pagerduty_tests SET claimed_until = %s WHERE id = %s AND status = 'waiting'",
                (now + LEASE, test_id),
            )
    return False


async def _finish(
    bot: BotContext,
    test_id: int,
    status: str,
    *,
    now: datetime,
    from_status: str = "waiting",
    detail: str | None = None,
    webhook_id: int | None = None,
    received_at: datetime | None = None,
    incident_id: str | None = None,
) -> None:
    """Move the test out of `from_status` — only one caller wins — then report it in the thread and resolve the
    test incident."""
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """UPDATE handoff_pagerduty_tests
               SET status = %s, detail = %s, webhook_id = %s, received_at = %s, incident_id = %s, finished_at = %s,
                   claimed_until = NULL
               WHERE id = %s AND status = %s RETURNING *""",
            (status, detail, webhook_id, received_at, incident_id, now, test_id, from_status),
        )
        test = await cursor.fetchone()
    if test is None:
        return  # another waiter or replica finished it
    timeout = test["deadline"] - test["requested_at"]
    if status == "ok":
        resolve_error = await _resolve(bot, test["dedup_key"])
        round_trip = received_at - test["sent_at"] if received_at and test["sent_at"] else timedelta(0)
        text = blocks.test_ok_text(round_trip, incident_id, resolve_error)
    elif status == "broken":
        text = blocks.test_broken_text(timeout, await _resolve(bot, test["dedup_key"]))
    else:
        text = blocks.test_failed_text(detail or "no answer")
        if from_status == "sending":  # the trigger's fate is unknown: make sure no test incident stays open
            await _resolve(bot, test["dedup_key"])
    await audit(
        bot.storage.pool,
        actor=test["requested_by"],
        action="handoff.pagerduty_test",
        outcome="ok" if status == "ok" else "failed",
        service=test["service"],
        target=test["dedup_key"],
        after={"status": status, "round_trip_s": (received_at - test["sent_at"]).total_seconds()}
        if status == "ok" and received_at and test["sent_at"]
        else {"status": status},
        detail={"handoff_id": test["handoff_id"], "test_id": test_id, "words": detail},
    )
    record = await store.by_id(bot.storage.pool, test["handoff_id"])
    if record is not None:
        await handoff.post_reply(bot, record, f"pagerduty_test:{test_id}:result", text)
        if status == "ok" and "alerts" in (record.evidence or {}):
            # The test's webhook came back: item 3 ("Verify all alerts are functioning", "no webhook received
            # yet" at the post) shows it, as item 4 shows the test.
            alerts = await handoff_evidence.last_webhooks(bot, checked_after="the PagerDuty test", at=now)
            await store.update_evidence(bot.storage.pool, record.id, "alerts", alerts)
        else:
            await store.bump(bot.storage.pool, record.id)
        await handoff.refresh_message(bot, record.id)


async def sweep(bot: BotContext, now: datetime) -> int:
    """Finish the tests whose waiter is gone (lease over) or whose deadline passed; run on every scheduler tick
    of every replica. Returns how many were looked at."""
    async with bot.storage.pool.connection() as conn:
        waiting = await (
            await conn.execute(
                """SELECT id FROM handoff_pagerduty_tests
                   WHERE status = 'waiting' AND (claimed_until IS NULL OR claimed_until < %s OR deadline <= %s)""",
                (now, now),
            )
        ).fetchall()
        stuck = await (
            await conn.execute(
                "SELECT id FROM handoff_pagerduty_tests WHERE status = 'sending' AND requested_at < %s",
                (now - SENDING_STALE,),
            )
        ).fetchall()
    for (test_id,) in waiting:
        await check(bot, test_id, now)
    for (test_id,) in stuck:
        await _finish(
            bot,
            test_id,
            "failed",
            now=now,
            from_status="sending",
            detail="the bot stopped before PagerDuty answered the test event",
        )
    return len(waiting) + len(stuck)


TEST = Action(action_id=blocks.TEST_ACTION, run=start)
