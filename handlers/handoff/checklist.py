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
from typing import Any
from zoneinfo import ZoneInfo

from bot import slack_once
from bot.catalog import Catalog, missing_env, reminder_offset
from bot.commands import Action
from bot.context import ActionContext, BotContext
from bot.cron import CronSchedule, FollowUp
from bot.oncall_roster import handoff_roster
from bot.reply_claims import RowReplyClaims
from bot.scheduler import Job
from handlers.handoff import blocks, store, ticking
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


CHECKLIST_POST = "mira_handoff_checklist"
REPLY_POST = "mira_handoff_reply"


def checklist_key(rotation: datetime) -> slack_once.PostKey:
    return slack_once.PostKey(CHECKLIST_POST, {"rotation": rotation.isoformat()})


def reply_key(handoff_id: int, key: str) -> slack_once.PostKey:
    return slack_once.PostKey(REPLY_POST, {"handoff_id": str(handoff_id), "key": key})


def reply_claims(bot: BotContext, handoff_id: int, key: str) -> RowReplyClaims:
    """The claim on one reply in the checklist's thread: its `handoff_replies` row."""
    return RowReplyClaims(bot.storage.pool, "handoff_replies", {"handoff_id": handoff_id, "key": key})


async def post_reply(bot: BotContext, record: HandoffRecord, key: str, text: str) -> bool:
    """A reply in the checklist's thread, posted at most once per `key` across replicas and restarts, and
    once even when Slack stored it but its answer was lost (bot/slack_once.py `post_once`)."""
    if record.ts is None or record.channel_id is None:
        return False
    outcome = await slack_once.post_once(
        bot,
        bot.budget,
        reply_claims(bot, record.id, key),
        record.channel_id,
        reply_key(record.id, key),
        bot.clock(),
        content={"text": text},
        fallback=text[:3000],
        thread_ts=record.ts,
    )
    return outcome.posted_now


# --- the weekly post ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostOutcome:
    """The rotation's checklist, and whether this call posted it (False: already posted, or being posted)."""

    record: HandoffRecord
    posted_now: bool


class ChecklistClaims:
    """The claim on a rotation's checklist post: its `handoffs` row (unique per rotation). The message is built
    (roster, evidence) only by the caller that posts it."""

    def __init__(self, bot: BotContext, rotation: datetime, posted_by: str | None) -> None:
        handoff = bot.catalog.handoff
        assert handoff is not None, "no handoff in the catalog"
        self.bot, self.rotation, self.posted_by, self.handoff = bot, rotation, posted_by, handoff
        self.channel = bot.settings.alerts_channel
        self.items = [item.model_dump() for item in handoff.checklist]
        self.row: HandoffRecord | None = None
        self.roster: dict[str, Any] | None = None
        self.evidence: dict[str, Any] | None = None
        self.posted: HandoffRecord | None = None

    async def claim(self, now: datetime) -> slack_once.ClaimState:
        record, ours = await store.claim(
            self.bot.storage.pool,
            self.rotation,
            channel=self.channel,
            items=self.items,
            owner=self.bot.replica,
            now=now,
        )
        self.row = record
        return slack_once.ClaimState(
            ours=ours, ts=record.ts, channel_id=record.channel_id, attempted_at=record.claimed_at
        )

    async def take(self, now: datetime, attempted_at: datetime | None) -> bool:
        assert attempted_at is not None
        taken = await store.take(
            self.bot.storage.pool,
            self.rotation,
            channel=self.channel,
            items=self.items,
            owner=self.bot.replica,
            now=now,
            attempted_at=attempted_at,
        )
        if taken is None:
            return False
        self.row = taken
        return True

    async def content(self) -> dict[str, Any]:
        assert self.row is not None
        await self._gather(self.bot.clock())
        draft = replace(self.row, roster=self.roster, evidence=self.evidence, posted_by=self.posted_by)
        text, message_blocks = await render(self.bot, draft)
        return {"text": text, "blocks": message_blocks}

    async def _gather(self, now: datetime) -> None:
        service = self.bot.catalog.handoff_service()
        self.roster = (
            await handoff_roster(self.bot, service, self.rotation)
            if service
            else {"problem": "no handoff service in the catalog"}
        )
        self.evidence = await handoff_evidence.gather(self.bot, self.handoff, self.rotation, now)

    async def mark_uncertain(self, now: datetime, claimed: datetime) -> None:
        assert self.row is not None
        await store.mark_uncertain(self.bot.storage.pool, self.row.id, now, claimed)

    async def release(self, now: datetime) -> None:
        assert self.row is not None
        with contextlib.suppress(Exception):
            await store.release(self.bot.storage.pool, self.row.id)  # so /oncall handoff can post at once

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        assert self.row is not None
        if self.roster is None or self.evidence is None:
            await self._gather(now)  # found from an earlier attempt: what it showed, as known now
        assert self.roster is not None and self.evidence is not None
        self.posted = await store.mark_posted(
            self.bot.storage.pool,
            self.row.id,
            channel_id=channel_id,
            ts=ts,
            roster=self.roster,
            evidence=self.evidence,
            posted_at=now,
            posted_by=self.posted_by,
        )


async def post_checklist(bot: BotContext, rotation: datetime, *, posted_by: str | None) -> PostOutcome:
    """Post the checklist of `rotation` unless it is posted (or being posted): the one post of that week, once
    even when Slack stored it but its answer was lost (bot/slack_once.py `post_once`)."""
    claims = ChecklistClaims(bot, rotation, posted_by)
    outcome = await slack_once.post_once(
        bot,
        bot.budget,
        claims,
        claims.channel,
        checklist_key(rotation),
        bot.clock(),
        content=claims.content,
        fallback=f"On-call handoff checklist for the rotation of {rotation:%Y-%m-%d %H:%M} UTC",
        stale=STALE_CLAIM,
    )
    if claims.posted is not None:
        if outcome.posted_now:
            log.info(
                "handoff checklist posted",
                extra={"rotation": rotation.isoformat(), "by": posted_by or "schedule"},
            )
        return PostOutcome(claims.posted, posted_now=outcome.posted_now)
    assert claims.row is not None
    return PostOutcome(claims.row, posted_now=False)


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
    refused = await ticking.refusal(ctx.bot, record, ctx.user_id, ticking=ticked)
    if refused is not None:
        if 1 <= number <= len(record.items):
            await ticking.refuse(ctx.bot, record, ctx.user_id, number, ticking=ticked)
        await ctx.reply.ephemeral(refused)
        await refresh_message(
            ctx.bot, record.id
        )  # the clicker's Slack ticked the box locally: show it as stored
        return
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
