"""A confirmed restart is told where the on-call looks: the service's alerts channel, and the thread of each open
PagerDuty incident of that service (read through `handlers.incidents`, the incidents capability's interface).

Each post is claimed once per run and place (bot/slack_once.py through the run's reply claims), so a double
click or a second replica announces once. A Slack failure is logged and never stops the restart.
"""

from __future__ import annotations

import logging

from bot import mrkdwn, slack_once
from bot.context import BotContext
from bot.replies import permalink
from handlers import incidents
from handlers.rollback import runner_store
from handlers.rollback.run import reply_key
from handlers.rollback.store import Run

log = logging.getLogger(__name__)


def _text(run: Run, link: str | None) -> str:
    thread = f" {mrkdwn.link(link, 'Follow it in its thread', trusted_label=True)}." if link else ""
    reason = f" Reason: {mrkdwn.outside(run.reason, 500)}." if run.reason else ""
    return (
        f":arrows_counterclockwise: <@{run.confirmed_by}> is restarting *{run.service.display_name}* "
        f"(restart #{run.id}, {len(run.steps)} steps: {', '.join(s.spec.title for s in run.steps)}).{reason}{thread}"
    )


async def _post(
    bot: BotContext, run: Run, where: str, channel: str, text: str, thread_ts: str | None
) -> None:
    try:
        await slack_once.post_once(
            bot,
            bot.budget,
            runner_store.reply_claims(bot, run.id, where),
            channel,
            reply_key(run.id, where),
            bot.clock(),
            content={"text": text},
            fallback=text[:3000],
            thread_ts=thread_ts,
        )
    except Exception:
        log.exception("restart announcement not posted", extra={"run": run.id, "where": where})


async def restart_confirmed(bot: BotContext, run: Run) -> None:
    text = _text(run, await permalink(bot.slack, run.channel, run.message_ts))
    alerts = run.service.channels.alerts or bot.settings.alerts_channel
    if alerts != run.channel:
        await _post(bot, run, "announce:alerts", alerts, text, None)
    for incident in await incidents.open_incidents(bot):
        if incident.service == run.service.name and incident.channel_id and incident.ts:
            await _post(bot, run, f"announce:incident:{incident.id}", incident.channel_id, text, incident.ts)
