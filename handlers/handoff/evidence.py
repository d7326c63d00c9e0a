"""What the bot shows under each handoff item, so ticking it is informed (Mira runbook §1 Handoff Checklist).

* incidents — "Review open incidents from previous week": the incidents still open in the bot's incident store,
  each linked to its Slack thread, and how many the past week had;
* health — "Check system health dashboards": a fresh /health of every service, kept in `health_runs`;
* alerts — "Verify all alerts are functioning": when the last PagerDuty webhook arrived, per service;
* runbook — "Review this runbook for updates": a link to the runbook and the date it was last changed.

("Test PagerDuty integration" has a button instead; its result is read when the message is rendered.)
Gathered once, when the checklist is posted, and stored with it: the message shows what the handover was based
on, and ticking an item never re-runs probes. One failing source does not stop the post: it shows its error.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from typing import Any

from bot.background import describe_error
from bot.catalog import Handoff, missing_env
from bot.context import BotContext
from bot.replies import permalink
from handlers import health as service_health
from handlers import incidents

log = logging.getLogger(__name__)

OPEN_INCIDENTS_SHOWN = 10
WEEK = timedelta(days=7)


async def open_incidents(bot: BotContext, rotation: datetime, now: datetime) -> dict[str, Any]:
    rows = await incidents.open_incidents(bot)
    week = await incidents.triggered_between(bot, rotation - WEEK, rotation)
    shown = rows[:OPEN_INCIDENTS_SHOWN]
    links = await asyncio.gather(*(permalink(bot.slack, row.channel_id, row.ts) for row in shown))
    services = {s.name: s.display_name for s in bot.catalog.services}
    return {
        "open": [
            {
                "id": row.id,
                "number": row.number,
                "title": row.title or "(untitled incident)",
                "status": row.status,
                "service": services.get(row.service or "", row.service),
                "triggered_at": row.triggered_at.isoformat() if row.triggered_at else None,
                "link": link,
            }
            for row, link in zip(shown, links, strict=True)
        ],
        "open_total": len(rows),
        # Which week the counts are about, and when the open ones were counted: the message names both.
        "last_week": {
            "triggered": week.triggered,
            "resolved": week.resolved,
            "start": (rotation - WEEK).isoformat(),
            "end": rotation.isoformat(),
        },
        "as_of": now.isoformat(),
    }


async def health(bot: BotContext, now: datetime) -> dict[str, Any]:
    services = await service_health.check_services(tuple(bot.catalog.services), bot)
    run_id = await service_health.record_run(
        bot,
        services,
        checked_at=now,
        requested_by="handoff",
        scope=None,
        channel=bot.settings.alerts_channel,
    )
    return {
        "checked_at": now.isoformat(),
        "run_id": run_id,
        "services": [
            {
                "name": h.service.name,
                "display_name": h.service.display_name,
                "status": h.status.value,
                "problems": [
                    {"probe": p.name, "status": p.status.value, "detail": p.detail}
                    for p in h.probes
                    if p.status.value != "ok"
                ],
            }
            for h in services
        ],
    }


async def last_webhooks(
    bot: BotContext, *, checked_after: str | None = None, at: datetime | None = None
) -> dict[str, Any]:
    """The newest stored PagerDuty webhook per catalog service (by PagerDuty service ID, else its name).
    `checked_after` names what made the bot look again after the post (a PagerDuty test), `at` when."""
    newest = await incidents.last_webhooks(bot)
    found: dict[str, Any] = {}
    if checked_after and at is not None:
        found = {"checked_after": checked_after, "checked_at": at.isoformat()}
    return {
        **found,
        "services": [
            {
                "name": s.name,
                "display_name": s.display_name,
                "last_webhook_at": newest[s.name][0].isoformat() if s.name in newest else None,
                "event_type": newest[s.name][1] if s.name in newest else None,
            }
            for s in bot.catalog.services
        ],
    }


def runbook(bot: BotContext, handoff: Handoff) -> dict[str, Any]:
    for service in bot.catalog.services:
        for ref in service.runbooks:
            if ref.file == handoff.runbook:
                url = ref.url if ref.url and not missing_env(ref.url) else None
                updated = ref.last_updated
                return {
                    "title": ref.title,
                    "file": ref.file,
                    "url": url,
                    "url_missing": missing_env(ref.url) if ref.url else [],
                    "last_updated": updated.isoformat() if isinstance(updated, date) else updated,
                }
    return {
        "title": handoff.runbook,
        "file": handoff.runbook,
        "url": None,
        "url_missing": [],
        "last_updated": None,
    }


async def _guarded(what: str, job: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await job
        return result
    except Exception as exc:
        log.exception("handoff evidence failed", extra={"evidence": what})
        return {"error": describe_error(exc)}


async def gather(bot: BotContext, handoff: Handoff, rotation: datetime, now: datetime) -> dict[str, Any]:
    """Every kind of evidence the checklist's items ask for, gathered concurrently."""
    kinds = {item.evidence for item in handoff.checklist if item.evidence}
    jobs: dict[str, Any] = {}
    if "incidents" in kinds:
        jobs["incidents"] = open_incidents(bot, rotation, now)
    if "health" in kinds:
        jobs["health"] = health(bot, now)
    if "alerts" in kinds:
        jobs["alerts"] = last_webhooks(bot)
    results = await asyncio.gather(*(_guarded(kind, job) for kind, job in jobs.items()))
    evidence: dict[str, Any] = dict(zip(jobs, results, strict=True))
    if "runbook" in kinds:
        evidence["runbook"] = runbook(bot, handoff)
    evidence["gathered_at"] = now.isoformat()
    return evidence
