"""Who is on call, from PagerDuty's `GET /oncalls`, with each person as a Slack mention.

One request per service: its escalation policy when the catalog names one (every level: primary, secondary, the
escalation contacts), else its schedule (the people it puts on call, at the levels PagerDuty reports). Both filters
together would be ANDed by PagerDuty and drop the levels that use other schedules, so the policy wins.

PagerDuty's on-call entries carry user references without emails; the email comes from `GET /users/{id}` and the
Slack user from `users.lookupByEmail`. Anyone who cannot be matched keeps their PagerDuty name, so a roster is
never empty because Slack and PagerDuty disagree on an address.

Mira runbook §1 On-Call Rotation (primary AI Squad, secondary Backend Team, escalation Engineering Manager); FA
On-Call Procedures → Escalation Path (primary 15 min, secondary 30 min, manager 1 h, VP 2 h).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import mrkdwn
from bot.catalog import Service, missing_env
from bot.context import BotContext
from integrations.pagerduty import PagerDutyError

log = logging.getLogger(__name__)

#: How far either side of a handoff the roster looks: the outgoing on-call is who covers the minute before the
#: rotation, the incoming who covers the minute after.
HANDOFF_MARGIN = timedelta(minutes=1)


@dataclass(frozen=True)
class OnCall:
    """One on-call entry: a person at an escalation level, from `start` to `end` (None: always on call)."""

    name: str
    pagerduty_id: str | None
    slack_id: str | None
    level: int
    start: datetime | None
    end: datetime | None

    def covers(self, when: datetime) -> bool:
        return (self.start is None or self.start <= when) and (self.end is None or when < self.end)

    @property
    def mention(self) -> str:
        """mrkdwn: a mention of the Slack ID Slack gave us, else the PagerDuty name, escaped (outside text)."""
        return f"<@{self.slack_id}>" if self.slack_id else mrkdwn.escape(self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pagerduty_id": self.pagerduty_id,
            "slack_id": self.slack_id,
            "level": self.level,
            "end": self.end.isoformat() if self.end else None,
        }


@dataclass(frozen=True)
class Roster:
    """A service's on-call entries over a window, or why they are unknown (`problem`)."""

    service: Service
    entries: tuple[OnCall, ...] = ()
    problem: str | None = None
    source: str | None = None  # "escalation policy PXXXX" / "schedule PXXXX"

    def at(self, when: datetime, level: int | None = None) -> list[OnCall]:
        """Who covers `when` (at `level`, if given), one entry per person and level."""
        seen: set[tuple[str | None, str, int]] = set()
        found = []
        for entry in sorted(self.entries, key=lambda e: (e.level, e.name)):
            key = (entry.pagerduty_id, entry.name, entry.level)
            if entry.covers(when) and (level is None or entry.level == level) and key not in seen:
                seen.add(key)
                found.append(entry)
        return found


def pagerduty_target(service: Service) -> tuple[str, str] | str:
    """("escalation_policy" | "schedule", id), or why the service has none (the setting to make)."""
    refs = service.pagerduty
    for kind, value in (("escalation_policy", refs.escalation_policy_id), ("schedule", refs.schedule_id)):
        if value and not missing_env(value):
            return kind, value
    wanted = [v for v in (refs.escalation_policy_id, refs.schedule_id) if v]
    names = [name for value in wanted for name in missing_env(value)]
    if names:
        return "set " + " or ".join(names)
    return f"no PagerDuty escalation policy or schedule for {service.name} in the catalog"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class SlackDirectory:
    """PagerDuty user → Slack user ID, looked up once per user (GET /users/{id}, then users.lookupByEmail)."""

    def __init__(self, bot: BotContext) -> None:
        self.bot = bot
        self._found: dict[str, str | None] = {}

    async def slack_id(self, pagerduty_id: str) -> str | None:
        if pagerduty_id not in self._found:
            self._found[pagerduty_id] = await self._lookup(pagerduty_id)
        return self._found[pagerduty_id]

    async def _lookup(self, pagerduty_id: str) -> str | None:
        if self.bot.pagerduty is None:
            return None
        try:
            email = await self.bot.pagerduty.user_email(pagerduty_id)
        except PagerDutyError:
            log.warning("could not read an on-call's email from PagerDuty", exc_info=True)
            return None
        if not email:
            return None
        try:
            answer = await self.bot.slack.users_lookupByEmail(email=email)
        except SlackApiError:
            return None  # users_not_found: no Slack account with that address; the PagerDuty name stands
        user_id = (answer.get("user") or {}).get("id")
        return str(user_id) if user_id else None


async def fetch_roster(
    bot: BotContext,
    service: Service,
    since: datetime,
    until: datetime,
    directory: SlackDirectory | None = None,
) -> Roster:
    """The service's on-call entries overlapping [since, until], with Slack IDs."""
    target = pagerduty_target(service)
    if isinstance(target, str):
        return Roster(service, problem=target)
    if bot.pagerduty is None:
        return Roster(service, problem="set PAGERDUTY_API_TOKEN")
    kind, target_id = target
    try:
        if kind == "escalation_policy":
            raw = await bot.pagerduty.oncalls(escalation_policy_ids=[target_id], since=since, until=until)
        else:
            raw = await bot.pagerduty.oncalls(schedule_ids=[target_id], since=since, until=until)
    except PagerDutyError as exc:
        return Roster(service, problem=str(exc), source=f"{kind.replace('_', ' ')} {target_id}")
    directory = directory or SlackDirectory(bot)
    users = {str((e.get("user") or {}).get("id")) for e in raw if (e.get("user") or {}).get("id")}
    slack_ids = dict(zip(users, await asyncio.gather(*(directory.slack_id(u) for u in users)), strict=True))
    entries = []
    for entry in raw:
        user = entry.get("user") or {}
        user_id = user.get("id")
        level = entry.get("escalation_level")
        entries.append(
            OnCall(
                name=str(user.get("summary") or user.get("name") or user_id or "someone"),
                pagerduty_id=str(user_id) if user_id else None,
                slack_id=slack_ids.get(str(user_id)) if user_id else None,
                level=level if isinstance(level, int) and level > 0 else 1,
                start=_time(entry.get("start")),
                end=_time(entry.get("end")),
            )
        )
    return Roster(service, tuple(entries), source=f"{kind.replace('_', ' ')} {target_id}")


async def roster_now(bot: BotContext, service: Service, now: datetime, directory: SlackDirectory) -> Roster:
    return await fetch_roster(bot, service, now, now + HANDOFF_MARGIN, directory)


async def handoff_roster(bot: BotContext, service: Service, rotation: datetime) -> dict[str, Any]:
    """Outgoing and incoming primary, the incoming secondary and escalation contacts, as stored with the checklist
    (so later edits of the message show who was handed over, not who is on call by then)."""
    roster = await fetch_roster(bot, service, rotation - HANDOFF_MARGIN, rotation + HANDOFF_MARGIN)
    before, after = rotation - HANDOFF_MARGIN, rotation + HANDOFF_MARGIN
    return {
        "service": service.name,
        "source": roster.source,
        "problem": roster.problem,
        "outgoing": [e.to_json() for e in roster.at(before, level=1)],
        "incoming": [e.to_json() for e in roster.at(after, level=1)],
        "secondary": [e.to_json() for e in roster.at(after, level=2)],
        "escalation": [e.to_json() for e in roster.at(after) if e.level >= 3],
    }


async def is_primary_on_call(bot: BotContext, user_id: str, service: Service, now: datetime) -> bool:
    """Whether `user_id` is the service's primary on-call in PagerDuty right now — the person paged, who may act on
    the service (confirm its rollback) even when not among its owners. Unknown (no PagerDuty, an error): no."""
    if bot.pagerduty is None or isinstance(pagerduty_target(service), str):
        return False
    roster = await roster_now(bot, service, now, SlackDirectory(bot))
    return any(entry.slack_id == user_id for entry in roster.at(now, level=1))
