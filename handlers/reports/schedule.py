"""Scheduled checks: one scheduler job per (service, report), one message per slot, diagnostics in its thread.

Exactly once, twice over. The scheduler's `job_runs` claim makes one replica run a slot (bot/scheduler.py); the
message itself is claimed in `report_posts` (handlers/reports/store.py) and posted through bot/slack_once.py's
`post_once`, so a replica taking the slot over after the job's lease expired, or a bot restarted mid-run, finds
the message (by its row, or by its metadata when Slack's answer was lost) instead of posting it again. The checks
are evaluated only by the caller that posts. The thread's diagnostics are claimed one by one the same way (posted with `diagnostic_blocks` through
`post_once` rather than `post_diagnostic`, which posts without a claim or metadata). A run that stopped half-way
(Slack answered 5xx, the poster crashed) is finished by a sweep (`finish_unfinished`), since the scheduler never
runs a finished slot again: looked up by its metadata, else posted, once.

Downtime: a slot missed while the bot was down is run when it starts, up to the report's `grace_minutes` after
the slot, and says "(late)". Later than that it is skipped — logged once, by the one replica that claims the slot
(the job's scheduler catch-up window is wider than the grace for exactly that), since a 09:00 check posted at 15:00
would describe the afternoon as the morning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import slack_once
from bot.catalog import Service
from bot.catalog.base import _ENV_REF
from bot.catalog.reports import Report
from bot.context import BotContext
from bot.reply_claims import RowReplyClaims
from bot.scheduler import Job
from handlers.diagnostics import DiagnosticResult, diagnostic_blocks, needs_csv, run_diagnostic, upload_csv
from handlers.reports import blocks, store
from handlers.reports.evaluate import evaluate
from handlers.reports.model import ReportRun
from handlers.reports.store import ReportSlot

log = logging.getLogger(__name__)

REPORT_POST = "mira_scheduled_report"
REPORT_REPLY = "mira_scheduled_report_diagnostic"
#: A run this long after its slot is a catch-up after downtime: it says "(late)". A normal run starts within a
#: scheduler tick (30 s) of its slot.
LATE_AFTER = timedelta(minutes=5)
#: A claimed report not posted after this long: its poster died (the checks are bounded by their timeouts:
#: probes 2 s, SLO and diagnostic queries 5 s each, run concurrently).
STALE_CLAIM = timedelta(minutes=5)
#: How far back the scheduler offers a slot to the job: past the grace, so that a skipped slot is logged once.
SKIP_NOTICE = timedelta(days=8)


def job_name(service: Service, report: Report) -> str:
    return f"report.{service.name}.{report.name}"


def channel_of(bot: BotContext, service: Service, report: Report) -> str:
    """`alerts` / `incidents`: the service's channel, else the bot-wide one; an unset `${VAR}`: alerts."""
    if report.channel == "incidents":
        return service.channels.incidents or bot.settings.incidents_channel
    if report.channel == "alerts" or _ENV_REF.search(report.channel):
        return service.channels.alerts or bot.settings.alerts_channel
    return report.channel


def post_key(slot: ReportSlot) -> slack_once.PostKey:
    return slack_once.PostKey(
        REPORT_POST, {"service": slot.service, "report": slot.report, "slot": slot.slot.isoformat()}
    )


def reply_key(slot: ReportSlot, query: str) -> slack_once.PostKey:
    return slack_once.PostKey(
        REPORT_REPLY,
        {"service": slot.service, "report": slot.report, "slot": slot.slot.isoformat(), "query": query},
    )


class ReportClaims:
    """The claim on one slot's message: its `report_posts` row. The checks are evaluated in `content`, by the
    one caller that posts, and what failed is stored before the post so a later finder knows it too."""

    def __init__(
        self, bot: BotContext, service: Service, report: Report, slot: datetime, channel: str
    ) -> None:
        self.bot, self.service, self.report, self.channel = bot, service, report, channel
        self.slot = ReportSlot(service.name, report.name, slot)
        self.pool = bot.storage.pool
        self.run: ReportRun | None = None

    async def claim(self, now: datetime) -> slack_once.ClaimState:
        ours, row = await store.claim(
            self.pool, self.slot, channel=self.channel, owner=self.bot.replica, now=now
        )
        return slack_once.ClaimState(
            ours=ours, ts=row.ts, channel_id=row.channel_id, attempted_at=row.claimed_at
        )

    async def take(self, now: datetime, attempted_at: datetime | None) -> bool:
        assert attempted_at is not None
        return await store.take(self.pool, self.slot, owner=self.bot.replica, now=now, was=attempted_at)

    async def content(self) -> dict[str, Any]:
        ran_at = self.bot.clock()
        lines = await evaluate(self.bot, self.service, self.report)
        self.run = ReportRun(
            service=self.service,
            report=self.report,
            slot=self.slot.slot,
            ran_at=ran_at,
            lines=lines,
            late=ran_at - self.slot.slot > LATE_AFTER,
            thread_queries=tuple(self.report.on_failure_thread),
        )
        await store.evaluated(self.pool, self.slot, [line.label for line in self.run.failed])
        text, message_blocks = blocks.render_report(self.run)
        return {"text": text, "blocks": message_blocks} if message_blocks else {"text": text}

    async def mark_uncertain(self, now: datetime, claimed: datetime) -> None:
        await store.restamp(self.pool, self.slot, was=now, claimed=claimed)

    async def release(self, now: datetime) -> None:
        await store.release(self.pool, self.slot, was=now)

    async def record(self, channel_id: str, ts: str, now: datetime) -> None:
        await store.posted(self.pool, self.slot, channel_id=channel_id, ts=ts, now=now)


def reply_claims(bot: BotContext, slot: ReportSlot, query: str) -> RowReplyClaims:
    """The claim on one diagnostic in the report's thread: its `report_replies` row."""
    service, report, slot_at = slot.key
    return RowReplyClaims(
        bot.storage.pool,
        "report_replies",
        {"service": service, "report": report, "slot": slot_at, "query": query},
    )


@dataclass(frozen=True)
class SlotOutcome:
    """What one run of a slot did: `status` as bot/slack_once.py's Posted says (`posted`, `already`, `found`,
    `busy`) or `skipped` (past the grace); `replies` the diagnostics this run posted in the thread."""

    status: str
    ts: str | None = None
    replies: tuple[str, ...] = ()


async def run_slot(bot: BotContext, service: Service, report: Report, slot: datetime) -> SlotOutcome:
    """The slot's message, once; then, when a check failed, the thread's diagnostics, once each."""
    now = bot.clock()
    if now - slot > report.grace:
        log.warning(
            "scheduled check skipped: the bot was not running within its grace after the slot",
            extra={
                "service": service.name,
                "report": report.name,
                "slot": slot.isoformat(),
                "grace_minutes": report.grace_minutes,
            },
        )
        return SlotOutcome("skipped")
    channel = channel_of(bot, service, report)
    claims = ReportClaims(bot, service, report, slot, channel)
    posted = await slack_once.post_once(
        bot,
        bot.budget,
        claims,
        channel,
        post_key(claims.slot),
        now,
        content=claims.content,
        fallback=f"{report.title}: see the bot's logs (the full message was refused by Slack)",
        stale=STALE_CLAIM,
    )
    if posted.ts is None or posted.channel_id is None:
        return SlotOutcome(posted.status)
    if posted.posted_now:
        log.info("scheduled check posted", extra={"service": service.name, "report": report.name})
    row = await store.row(bot.storage.pool, claims.slot)
    failed = row.failed if row is not None else None
    replies: list[str] = []
    if failed:
        for query in report.on_failure_thread:
            if await post_thread_diagnostic(bot, service, claims.slot, posted.channel_id, posted.ts, query):
                replies.append(query)
    return SlotOutcome(posted.status, posted.ts, tuple(replies))


async def post_thread_diagnostic(
    bot: BotContext, service: Service, slot: ReportSlot, channel_id: str, thread_ts: str, name: str
) -> bool:
    """One `/diag` query's result in the report's thread, once across replicas and restarts."""
    assert service.diagnostics is not None
    query = service.diagnostics.query(name)
    assert query is not None  # the catalog checks it at load

    results: list[DiagnosticResult] = []

    async def content() -> dict[str, Any]:
        result = await run_diagnostic(bot, service, query)
        results.append(result)
        text, result_blocks = diagnostic_blocks(result)
        return {"text": text, "blocks": result_blocks}

    outcome = await slack_once.post_once(
        bot,
        bot.budget,
        reply_claims(bot, slot, name),
        channel_id,
        reply_key(slot, name),
        bot.clock(),
        content=content,
        fallback=f"{query.title}: `/diag {service.name} {name}` shows it",
        thread_ts=thread_ts,
        stale=STALE_CLAIM,
    )
    if outcome.posted_now and results and needs_csv(results[0]):
        # The whole result as a file beside it; a crash right here loses the file, never repeats the message.
        await upload_csv(bot, channel_id, thread_ts, results[0])
    return outcome.posted_now


#: The longest grace a report may have (bot/catalog/reports.py): how far back the sweep looks.
LONGEST_GRACE = timedelta(hours=24)


async def finish_unfinished(bot: BotContext, now: datetime) -> int:
    """A sweep (every tick, every replica): finish the slots whose run stopped half-way — a message whose post
    got no answer (a 5xx, a timeout, a crash after Slack stored it: looked up by its metadata, else posted) or a
    failing report whose thread lacks a diagnostic. The scheduler does not run a finished slot again, so
    without this a post Slack never stored would be lost. Within the report's grace only; each step is claimed,
    so every replica may run it. The number of slots it finished."""
    finished = 0
    candidates = await store.unfinished(
        bot.storage.pool, since=now - LONGEST_GRACE, stale_before=now - STALE_CLAIM
    )
    for slot, posted, replied in candidates:
        service = bot.catalog.find(slot.service)
        report = next((r for r in service.reports if r.name == slot.report), None) if service else None
        if service is None or report is None or not report.enabled or now - slot.slot > report.grace:
            continue
        if posted and set(report.on_failure_thread) <= set(replied):
            continue
        outcome = await run_slot(bot, service, report, slot.slot)
        finished += outcome.status in ("posted", "found") or bool(outcome.replies)
    return finished


def jobs(bot: BotContext) -> list[Job]:
    """One job per report of every service, each slot claimed once by the scheduler."""
    found: list[Job] = []
    for service in bot.catalog.services:
        for report in (r for r in service.reports if r.enabled):

            async def run(
                slot: datetime, service_name: str = service.name, report_name: str = report.name
            ) -> None:
                # Read the catalog when the slot runs, not when the job was built: a reloaded catalog (the
                # console's demo environment, an operator's edit) is the one whose DSNs and channels apply.
                current = bot.catalog.find(service_name)
                wanted = (
                    next((r for r in current.reports if r.name == report_name), None) if current else None
                )
                if current is None or wanted is None or not wanted.enabled:
                    log.warning(
                        "scheduled check no longer in the catalog",
                        extra={"service": service_name, "report": report_name},
                    )
                    return
                await run_slot(bot, current, wanted, slot)

            found.append(
                Job(
                    job_name(service, report),
                    None,
                    run,
                    schedule=report.schedule.latest,
                    catch_up=max(report.grace, SKIP_NOTICE),
                )
            )
    return found
