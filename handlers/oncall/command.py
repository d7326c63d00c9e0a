"""/oncall: who is on call now, and this week's handoff checklist.

parse → (no authorization: reading, and posting the week's one checklist, change nothing in production) → act →
render (handlers/oncall/blocks.py).

* `/oncall [SERVICE]` — for each service (or the one named): the people PagerDuty has on call now (primary, secondary, further levels) as Slack
  mentions, and the runbook's escalation path (Mira §1: AI Squad → Backend Team → Engineering Manager; FA
  On-Call Procedures: primary 15 min, secondary 30 min, manager 1 h, VP 2 h).
* `/oncall handoff` — post the current rotation's checklist now, through the same once-per-rotation claim as the
  weekly job (handlers/handoff); when it exists already, a link to it.
* `/oncall checklist` — the current rotation's checklist: who ticked what, and what is still open.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from bot import mrkdwn
from bot.catalog import Catalog, Service
from bot.commands import Command, Subcommand, UsageError, did_you_mean
from bot.context import CommandContext
from bot.oncall_roster import SlackDirectory, roster_now
from bot.replies import permalink
from handlers import handoff
from handlers.oncall import blocks

SUBCOMMANDS = ("handoff", "checklist")


@dataclass(frozen=True)
class OnCallRequest:
    action: Literal["now", "handoff", "checklist"]
    #: `/oncall SERVICE`: only that service; None: every service.
    service: Service | None = None


def parse(text: str, catalog: Catalog) -> OnCallRequest:
    words = text.lower().split()
    if not words:
        return OnCallRequest("now")
    if len(words) == 1 and words[0] in SUBCOMMANDS:
        if catalog.handoff is None:
            raise UsageError(
                "The catalog has no `handoff` section, so there is no weekly checklist.", subcommand=words[0]
            )
        return OnCallRequest(words[0])  # type: ignore[arg-type]  # one of SUBCOMMANDS
    if len(words) == 1 and (service := catalog.find(words[0])) is not None:
        return OnCallRequest("now", service)
    # The closest of the subcommands and the services' names and aliases, for the "did you mean".
    choices = [*SUBCOMMANDS, *catalog.names(), *(alias for s in catalog.services for alias in s.aliases)]
    suggestion = did_you_mean(words[0], choices)
    if suggestion is not None and suggestion not in SUBCOMMANDS:
        found = catalog.find(suggestion)
        suggestion = found.name if found else suggestion
    raise UsageError(
        f"I don't understand `/oncall {text.strip()}`: it is not a service "
        f"({', '.join(catalog.names())}) nor one of {', '.join(SUBCOMMANDS)}.",
        suggestion=f"/oncall {suggestion}" if suggestion else None,
        subcommand=suggestion if suggestion in SUBCOMMANDS else None,
    )


def acknowledge(request: OnCallRequest, catalog: Catalog) -> str:
    if request.action == "handoff":
        return "Posting this week's handoff checklist…"
    if request.action == "checklist":
        return "Looking up this week's handoff checklist…"
    if request.service is not None:
        return f"Asking PagerDuty who is on call for {request.service.display_name}…"
    return f"Asking PagerDuty who is on call for {len(catalog.services)} services…"


async def run(request: OnCallRequest, ctx: CommandContext) -> None:
    if request.action == "handoff":
        await _handoff(ctx)
    elif request.action == "checklist":
        await _checklist(ctx)
    else:
        await _now(ctx, request.service)


async def _now(ctx: CommandContext, service: Service | None) -> None:
    bot = ctx.bot
    now = bot.clock()
    directory = SlackDirectory(bot)
    services = [service] if service is not None else bot.catalog.services
    rosters = await asyncio.gather(*(roster_now(bot, s, now, directory) for s in services))
    text, message_blocks = blocks.render_now(list(rosters), now)
    await ctx.reply.post(text, message_blocks)


async def _handoff(ctx: CommandContext) -> None:
    bot = ctx.bot
    rotation = handoff.current_rotation(bot)
    assert rotation is not None  # parse refused /oncall handoff without a handoff section
    outcome = await handoff.post_checklist(bot, rotation, posted_by=ctx.invocation.user_id)
    record = outcome.record
    zone = handoff.zone(bot.catalog)
    if record.ts is None:
        await ctx.reply.ephemeral(
            "This week's checklist is being posted right now; it will appear in a moment."
        )
        return
    link = await permalink(bot.slack, record.channel_id, record.ts)
    where = mrkdwn.link(link, f"in {record.channel}", trusted_label=True) if link else f"in {record.channel}"
    if outcome.posted_now:
        await ctx.reply.ephemeral(f"Posted this week's handoff checklist {where}.")
        return
    by = f"<@{record.posted_by}>" if record.posted_by else "the weekly schedule"
    posted = blocks.when(record.posted_at, zone) if record.posted_at else "earlier"
    await ctx.reply.ephemeral(
        f"This week's handoff checklist is already posted {where} (by {by}, {posted}): "
        f"{len(record.ticks)}/{len(record.items)} items done."
    )


async def _checklist(ctx: CommandContext) -> None:
    bot = ctx.bot
    rotation = handoff.current_rotation(bot)
    assert rotation is not None
    zone = handoff.zone(bot.catalog)
    record = await handoff.by_rotation(bot.storage.pool, rotation)
    if record is None or record.ts is None:
        await ctx.reply.ephemeral(
            f"No handoff checklist for the rotation of {blocks.when(rotation, zone)} yet: it is posted at the "
            "rotation, or now with `/oncall handoff`."
        )
        return
    link = await permalink(bot.slack, record.channel_id, record.ts)
    text, message_blocks = blocks.render_checklist_status(record, link, zone)
    await ctx.reply.post(text, message_blocks)


COMMAND = Command(
    name="/oncall",
    description="Who is on call now, and the weekly handoff checklist",
    usage_hint="[SERVICE | handoff | checklist]",
    subcommands=(
        Subcommand("SERVICE", "SERVICE", "who is on call for one service, and its escalation path"),
        Subcommand("handoff", "handoff", "post this week's handoff checklist now (or link the one posted)"),
        Subcommand("checklist", "checklist", "the status of this week's checklist"),
    ),
    examples=("/oncall", "/oncall ivy-v2", "/oncall handoff", "/oncall checklist"),
    parse=parse,
    acknowledge=acknowledge,
    run=run,
)
