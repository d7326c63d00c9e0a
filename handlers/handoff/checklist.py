"""The weekly on-call handoff: the runbook's checklist posted at the rotation, ticked in Slack, chased until done.

Mira runbook §1 On-Call Rotation: the primary rotates weekly (Monday 9 AM) and hands over with a five-item
checklist. At the rotation (cron and time zone from the catalog's `handoff`) a scheduler job posts the checklist in
ALERTS_CHANNEL, naming the outgoing and incoming primary, the secondary and the escalation contact from
PagerDuty, with the bot's evidence under each item (handlers/handoff_evidence.py). Exactly once: the scheduler
claims the slot, and the post itself is claimed by its rotation in Postgres (handlers/handoff/store.py), so two
replicas, a restart at 09:00 or a bot that starts at 09:40 (within `grace_minutes`) post it once; `/oncall handoff`
goes through the same claim. Ticks and unticks are stored with who and when, audited, and the message is edited in
place. Reminders (`+4h`, `17:00` by default) are scheduler jobs of their own, each reply claimed once, mentioning
the incoming on-call while items are open; the first completion posts a summary line.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from bot.catalog import Catalog, missing_env, reminder_offset
from bot.commands import Action
from bot.context import ActionContext, BotContext
from bot.cron import CronSchedule, FollowUp
from bot.oncall_roster import handoff_roster
from bot.scheduler import Job
from handlers.handoff import blocks, store
from handlers.handoff import evidence as handoff_evidence
from handlers.handoff.store import HandoffRecord

log = logging.getLogger(__name__)

# A claimed checklist not posted after this long: its poster died (gathering evidence takes seconds: probes are
# bounded by their timeouts, PagerDuty calls by the client's).
STALE_CLAIM = timedelta(minutes=5)
MESSAGE_EDITS = (
    5  # edits of one refresh before giving up on converging (each one re-reads the newest version)
)


def rotation_schedule(catalog: Catalog) -> CronSchedule | None:
    handoff = catalog.handoff
    return CronSchedule(handoff.cron, handoff.timezone) if handoff else None


def zone(catalog: Catalog) -> tzinfo:
    return ZoneInfo(catalog.handoff.timezone) if catalog.handoff else ZoneInfo("UTC")


def current_rotation(bot: BotContext) -> datetime | None:
    schedule = rotation_schedule(bot.catalog)
    return schedule.latest(bot.clock()) if schedule else None


def test_problem(bot: BotContext) -> str | None:
    """Why "Test PagerDuty integration" cannot run, in the words of the setting to make; None when it can."""
    service = bot.catalog.handoff_service()
    if service is None:
        return "no handoff service in the catalog (set `handoff.service`)"
    key = service.pagerduty.events_routing_key
    if not key:
        return f"no `pagerduty.events_routing_key` for {service.name} in the catalog"
    missing = missing_env(key)
    if missing:
        return "set " + ", ".join(missing) + f" (the Events API routing key of {service.display_name})"
    if not bot.settings.pagerduty_webhook_secrets:
        return "set PAGERDUTY_WEBHOOK_SECRETS: the webhook that must come back would be refused"
    return None


async def latest_test(bot: BotContext, handoff_id: int) -> blocks.TestResult | None:
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                """SELECT status, requested_by, requested_at, received_at - sent_at, detail
                   FROM handoff_pagerduty_tests WHERE handoff_id = %s ORDER BY id DESC LIMIT 1""",
                (handoff_id,),
            )
        ).fetchone()
    if row is None:
        return None
    status, requested_by, requested_at, round_trip, detail = row
    return blocks.TestResult(status, requested_by, requested_at, round_trip, detail)


async def render(bot: BotContext, record: HandoffRecord) -> tuple[str, list[dict[str, object]]]:
    return blocks.render_checklist(
        record,
        service=bot.catalog.handoff_service(),
        zone=zone(bot.catalog),
        test=await latest_test(bot, record.id),
        test_problem=test_problem(bot),
    )


async def refresh_message(bot: BotContext, handoff_id: int) -> None:
    """Edit the checklist message to its stored state. Two clicks on two replicas may edit in either order, so
    after an edit the version is read again and, when it moved meanwhile, the message is edited once more: the
    last edit always shows the newest state."""
    for _ in range(MESSAGE_EDITS):
        record = await store.by_id(bot.storage.pool, handoff_id)
        if record is None or record.ts is None or record.channel_id is None:
            return
        text, message_blocks = await render(bot, record)
        await bot.slack.chat_update(channel=record.channel_id, ts=record.ts, text=text, blocks=message_blocks)
        if await store.version(bot.storage.pool, handoff_id) == record.version:
            return
    log.warning("handoff message kept changing while being edited", extra={"handoff": handoff_id})


async def post_reply(bot: BotContext, record: HandoffRecord, key: str, text: str) -> bool:
    """A reply in the checklist's thread, posted at most once per `key` across replicas and restarts."""
    if record.ts is None or record.channel_id is None:
        return False
    if not await store.claim_reply(bot.storage.pool, record.id, key, bot.clock()):
        return False
    response = await bot.slack.chat_postMessage(
        channel=record.channel_id, thread_ts=record.ts, text=text, unfurl_links=False
    )
    await store.reply_posted(bot.storage.pool, record.id, key, str(response["ts"]))
    return True


# --- the weekly post ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostOutcome:
    """The rotation's checklist, and whether this call posted it (False: already posted, or being posted)."""

    record: HandoffRecord
    posted_now: bool


async def post_checklist(bot: BotContext, rotation: datetime, *, posted_by: str | None) -> PostOutcome:
    """Post the checklist of `rotation` unless it is posted (or being posted): the one post of that week."""
    handoff = bot.catalog.handoff
    assert handoff is not None, "no handoff in the catalog"
    now = bot.clock()
    record, claimed = await store.claim(
        bot.storage.pool,
        rotation,
        channel=bot.settings.alerts_channel,
        items=[item.model_dump() for item in handoff.checklist],
        owner=bot.replica,
        now=now,
        stale=STALE_CLAIM,
    )
    if not claimed:
        return PostOutcome(record, posted_now=False)
    try:
        service = bot.catalog.handoff_service()
        roster = (
            await handoff_roster(bot, service, rotation)
            if service
            else {"problem": "no handoff service in the catalog"}
        )
        evidence = await handoff_evidence.gather(bot, handoff, rotation, now)
        draft = replace(record, roster=roster, evidence=evidence, posted_by=posted_by)
        text, message_blocks = await render(bot, draft)
        response = await bot.slack.chat_postMessage(
            channel=record.channel, text=text, blocks=message_blocks, unfurl_links=False
        )
    except Exception:
        with contextlib.suppress(Exception):
            await store.release(bot.storage.pool, record.id)  # so /oncall handoff can post at once
        raise
    posted = await store.mark_posted(
        bot.storage.pool,
        record.id,
        channel_id=str(response["channel"]),
        ts=str(response["ts"]),
        roster=roster,
        evidence=evidence,
        posted_at=now,
        posted_by=posted_by,
    )
    log.info(
        "handoff checklist posted", extra={"rotation": rotation.isoformat(), "by": posted_by or "schedule"}
    )
    return PostOutcome(posted, posted_now=True)


async def remind(bot: BotContext, spec: str, rotation: datetime) -> None:
    """The reminder `spec` of `rotation`'s checklist, once, while items are open."""
    record = await store.by_rotation(bot.storage.pool, rotation)
    if record is None or record.ts is None or record.complete:
        return
    await post_reply(bot, record, f"reminder:{spec}", blocks.reminder_text(record, spec))


def jobs(bot: BotContext) -> list[Job]:
    """The weekly post and one job per reminder, each claimed per slot by the scheduler."""
    handoff = bot.catalog.handoff
    schedule = rotation_schedule(bot.catalog)
    if handoff is None or schedule is None:
        return []
    grace = timedelta(minutes=handoff.grace_minutes)

    async def weekly(slot: datetime) -> None:
        await post_checklist(bot, slot, posted_by=None)

    found = [Job("handoff.checklist", None, weekly, schedule=schedule.latest, catch_up=grace)]
    for spec in handoff.reminders:
        follow = FollowUp(schedule, *reminder_offset(spec))

        async def reminder(slot: datetime, spec: str = spec, follow: FollowUp = follow) -> None:
            await remind(bot, spec, follow.rotation_of(slot))

        found.append(Job(f"handoff.reminder.{spec}", None, reminder, schedule=follow.latest, catch_up=grace))
    return found


# --- ticks ------------------------------------------------------------------------------------------------------


def _clicked_item(ctx: ActionContext) -> tuple[int, bool] | None:
    """(item number, ticked?) from a checkbox click: the block says which item, the selection whether it is on."""
    action = (ctx.payload.get("actions") or [{}])[0]
    block_id = str(action.get("block_id") or "")
    number = block_id.removeprefix("handoff_item_")
    if not number.isdigit():
        return None
    return int(number), bool(action.get("selected_options"))


async def tick(ctx: ActionContext) -> None:
    """A checkbox on the checklist: store the tick (or untick) with who and when, audit it, edit the message,
    and post the summary when this click completed the checklist."""
    clicked = _clicked_item(ctx)
    record = (
        await store.by_message(ctx.bot.storage.pool, ctx.channel_id, ctx.message_ts)
        if ctx.message_ts and clicked
        else None
    )
    if clicked is None or record is None:
        await ctx.reply.ephemeral(
            "That checklist is no longer known to the bot; `/oncall checklist` shows this week's."
        )
        return
    number, ticked = clicked
    change = await store.set_tick(
        ctx.bot.storage.pool, record.id, number, ticked, actor=ctx.user_id, now=ctx.bot.clock()
    )
    if change is None:
        await ctx.reply.ephemeral(f"The checklist has no item {number}.")
        return
    await refresh_message(
        ctx.bot, record.id
    )  # also when unchanged: a stale client sees the stored state again
    if change.completed_now:
        await post_reply(ctx.bot, change.record, "complete", blocks.summary_text(change.record))


TICK = Action(action_id=blocks.TICK_ACTION, run=tick)
