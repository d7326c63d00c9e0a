"""PagerDuty incidents in Slack: one living root per incident and channel, one reply per event, SLA nudges,
post-mortem drafts, storm digests, and the buttons that act in PagerDuty.

The delivery worker (bot/delivery.py) hands this module the stored events of one incident at a time, oldest
`occurred_at` first. Every Slack effect is claimed in Postgres before it happens — a root by
`(incident, channel)`, a reply by `(event, channel)`, a timer by `fired_at` — so a redelivery, a retry after a
crash or a second replica never posts twice. A claim whose post began but has no `ts` after STALE_CLAIM_SECONDS
was abandoned by a worker that died: the message is looked up in Slack by its metadata before it is posted again
(bot/slack_once.py). The root shows the incident as of its newest `occurred_at`, so events
that arrive out of order (a resolve before its trigger) still leave the right root. Root edits are debounced:
a burst of events marks the root dirty and one chat.update follows (`flush_roots`).

Runbooks: Mira §1 Responsibilities (watch #mira-copilot-alerts, respond within 15 minutes, resolve critical issues
within 1 hour, post-mortem); Mira LLM outage "Post update in #incidents"; FA On-Call "Acknowledge within 5 minutes",
P0 "Schedule post-mortem within 48 hours"; the escalation paths in each runbook.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from slack_sdk.errors import SlackApiError

from bot import slack_once
from bot.context import BotContext
from bot.mrkdwn import outside
from bot.slack_budget import ChannelBudget
from handlers.incidents import blocks
from handlers.incidents.model import IncidentView, TimelineEntry
from integrations.pagerduty import PagerDutyError
from integrations.pagerduty_webhooks import IncidentSnapshot, WebhookEvent, parse_webhook

log = logging.getLogger(__name__)

DEBOUNCE_QUIET = timedelta(seconds=1)  # a root is edited once its incident has been quiet this long…
DEBOUNCE_MAX = timedelta(seconds=5)  # …or has waited this long
POSTMORTEM_WITHIN = timedelta(hours=48)
STORM_WINDOW = timedelta(minutes=1)
STORM_QUIET = timedelta(minutes=1)  # a storm has passed when its digest got nothing new for this long
DIGEST_EDIT_EVERY = timedelta(seconds=2)
PROMOTE_PER_PASS = 5  # after a storm, incidents leave the digest for their own root a few at a time
MENTIONS = 10  # a nudge mentions this many assignees, then counts the rest
#: incidents.number is a bigint (migration 0008); PagerDuty's number is an integer JSON may make any size.
BIGINT = range(-(2**63), 2**63)


class RetryLater(Exception):
    """Another worker holds a claim that is not stale yet; the event stays pending and is tried again."""


def _without_nul(value: Any) -> Any:
    """Postgres text and jsonb cannot hold NUL characters; PagerDuty text never has them, a hostile payload might."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    return value


def _snapshot_json(snapshot: IncidentSnapshot) -> dict[str, Any]:
    return _without_nul(_snapshot_fields(snapshot))  # type: ignore[no-any-return]


def _snapshot_fields(snapshot: IncidentSnapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "number": snapshot.number,
        "title": snapshot.title,
        "status": snapshot.status,
        "urgency": snapshot.urgency,
        "priority": snapshot.priority,
        "service_id": snapshot.service_id,
        "service_name": snapshot.service_name,
        "assignees": [{"id": p.id, "name": p.name, "email": p.email} for p in snapshot.assignees],
        "escalation_policy": snapshot.escalation_policy,
        "conference_url": snapshot.conference_url,
        "conference_number": snapshot.conference_number,
        "html_url": snapshot.html_url,
        "created_at": snapshot.created_at.isoformat() if snapshot.created_at else None,
    }


def view_of(bot: BotContext, row: dict[str, Any]) -> IncidentView:
    snap = row["snapshot"]
    service = bot.catalog.find(row["service"]) if row.get("service") else None
    return IncidentView(
        id=row["id"],
        number=snap.get("number"),
        title=snap.get("title") or "(untitled incident)",
        status=row.get("status"),
        urgency=snap.get("urgency"),
        priority=snap.get("priority"),
        service_name=service.display_name if service else (snap.get("service_name") or "unknown service"),
        assignees=tuple(a.get("name") or a.get("id") or "?" for a in snap.get("assignees") or []),
        escalation_policy=snap.get("escalation_policy"),
        conference_url=snap.get("conference_url"),
        conference_number=snap.get("conference_number"),
        html_url=snap.get("html_url"),
        triggered_at=row.get("triggered_at"),
        acknowledged_at=row.get("acknowledged_at"),
        resolved_at=row.get("resolved_at"),
        service=service,
    )


async def _incident(conn: AsyncConnection[Any], incident_id: str) -> dict[str, Any] | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute("SELECT * FROM incidents WHERE id = %s", (incident_id,))
    return await cursor.fetchone()


# --- state ------------------------------------------------------------------------------------------------------

_STATUS_BY_EVENT = {
    "incident.triggered": "triggered",
    "incident.acknowledged": "acknowledged",
    "incident.unacknowledged": "triggered",
    "incident.resolved": "resolved",
    "incident.reopened": "triggered",
}


async def priority_before(conn: AsyncConnection[Any], event: WebhookEvent) -> str | None:
    """The incident's priority just before `event`, from the events that happened earlier — not from the newest
    snapshot, which may already be later than this event when events arrive out of order."""
    cursor = await conn.execute(
        """SELECT body FROM pd_webhooks WHERE incident_id = %s AND occurred_at < %s AND event_id <> %s
           AND status IN ('pending', 'delivered') ORDER BY occurred_at DESC, id DESC LIMIT 20""",
        (event.incident_id, event.occurred_at, event.event_id),
    )
    for (body,) in await cursor.fetchall():
        earlier = parse_webhook(bytes(body))
        if earlier.incident is not None:
            return earlier.incident.priority
    return None


async def apply_event(
    bot: BotContext, event: WebhookEvent, now: datetime
) -> tuple[dict[str, Any], str | None, bool]:
    """Fold the event into the incident's row; return (the row, the priority before this event, whether what the
    root shows changed)."""
    assert event.incident_id is not None
    async with bot.storage.pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"incident:{event.incident_id}",))
        row = await _incident(conn, event.incident_id)
        previous_priority = await priority_before(conn, event)
        snapshot = event.incident
        newer = row is None or event.occurred_at >= row["snapshot_at"]
        if row is None:
            service = bot.catalog.for_pagerduty(event.service_id, snapshot.service_name if snapshot else None)
            data = _snapshot_json(snapshot) if snapshot else {"id": event.incident_id}
            status = (snapshot.status if snapshot else None) or _STATUS_BY_EVENT.get(
                event.event_type, "triggered"
            )
            await conn.execute(
                """INSERT INTO incidents (id, service, number, title, status, urgency, priority, snapshot, snapshot_at,
                                          triggered_at, last_event_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    event.incident_id,
                    service.name if service else None,
                    _storable_number(data.get("number")),
                    data.get("title"),
                    status,
                    data.get("urgency"),
                    data.get("priority"),
                    Jsonb(data),
                    event.occurred_at,
                    _triggered_at(event),
                    now,
                ),
            )
        elif newer and snapshot is not None:
            data = _snapshot_json(snapshot)
            await conn.execute(
                """UPDATE incidents SET snapshot = %s, snapshot_at = %s, number = %s, title = %s, urgency = %s,
                       priority = %s, status = COALESCE(%s, status),
                       triggered_at = COALESCE(triggered_at, %s), last_event_at = %s
                   WHERE id = %s""",
                (
                    Jsonb(data),
                    event.occurred_at,
                    _storable_number(data.get("number")),
                    data.get("title"),
                    data.get("urgency"),
                    data.get("priority"),
                    snapshot.status,
                    snapshot.created_at,
                    now,
                    event.incident_id,
                ),
            )
        else:
            await conn.execute(
                "UPDATE incidents SET last_event_at = %s WHERE id = %s", (now, event.incident_id)
            )
        when = event.occurred_at
        if event.event_type == "incident.triggered":
            await conn.execute(
                "UPDATE incidents SET triggered_at = LEAST(COALESCE(triggered_at, %s), %s) WHERE id = %s",
                (when, when, event.incident_id),
            )
        elif event.event_type == "incident.acknowledged":
            await conn.execute(
                "UPDATE incidents SET acknowledged_at = COALESCE(acknowledged_at, %s) WHERE id = %s",
                (when, event.incident_id),
            )
        elif event.event_type == "incident.resolved":
            await conn.execute(
                "UPDATE incidents SET resolved_at = GREATEST(COALESCE(resolved_at, %s), %s) WHERE id = %s",
                (when, when, event.incident_id),
            )
        elif event.event_type == "incident.reopened" and newer:
            await conn.execute("UPDATE incidents SET resolved_at = NULL WHERE id = %s", (event.incident_id,))
        if newer and snapshot is None and event.event_type in _STATUS_BY_EVENT:
            await conn.execute(
                "UPDATE incidents SET status = %s, snapshot_at = %s WHERE id = %s",
                (_STATUS_BY_EVENT[event.event_type], when, event.incident_id),
            )
        updated = await _incident(conn, event.incident_id)
    assert updated is not None
    return updated, previous_priority, row is None or _shown(row) != _shown(updated)


def _storable_number(number: Any) -> int | None:
    """The incident number for its column, or None when a bigint cannot hold it: the snapshot (jsonb) keeps it
    and the incident is delivered all the same, instead of failing its INSERT on every attempt."""
    return number if isinstance(number, int) and number in BIGINT else None


def _shown(row: dict[str, Any]) -> tuple[Any, ...]:
    """What the root displays, to tell whether an event changed it."""
    return (row["status"], row["snapshot"], row["triggered_at"], row["acknowledged_at"], row["resolved_at"])


def _triggered_at(event: WebhookEvent) -> datetime | None:
    """When the incident began: PagerDuty's created_at, else the trigger event's own time, else unknown yet."""
    if event.incident and event.incident.created_at:
        return event.incident.created_at
    return event.occurred_at if event.event_type == "incident.triggered" else None


def channels_for(bot: BotContext, view: IncidentView) -> list[str]:
    """Alerts and incidents channel: the service's own when the catalog names them, else the bot-wide ones."""
    service = view.service
    alerts = (service.channels.alerts if service else None) or bot.settings.alerts_channel
    incidents = (service.channels.incidents if service else None) or bot.settings.incidents_channel
    if service and service.channels.incidents_urgency == "high" and view.urgency == "low":
        return [alerts]
    return list(dict.fromkeys([alerts, incidents]))


# --- Slack effects, each claimed once ---------------------------------------------------------------------------


ROOT_POST = "mira_incident_root"
REPLY_POST = "mira_incident_reply"
DIGEST_POST = "mira_storm_digest"


def root_key(incident_id: str, channel: str) -> slack_once.PostKey:
    return slack_once.PostKey(ROOT_POST, {"incident_id": incident_id, "channel": channel})


def reply_key(key: str, channel: str) -> slack_once.PostKey:
    return slack_once.PostKey(REPLY_POST, {"key": key, "channel": channel})


def digest_key(digest_id: int) -> slack_once.PostKey:
    return slack_once.PostKey(DIGEST_POST, {"digest_id": str(digest_id)})


@dataclass
class Root:
    channel: str
    channel_id: str | None
    ts: str | None
    in_digest: int | None
    posted_now: bool = False


async def _root_row(bot: BotContext, incident_id: str, channel: str) -> dict[str, Any] | None:
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            "SELECT * FROM incident_roots WHERE incident_id = %s AND channel = %s", (incident_id, channel)
        )
        return await cursor.fetchone()


async def _in_storm(bot: BotContext, channel: str, now: datetime) -> bool:
    threshold = bot.settings.storm_threshold
    if threshold <= 0:
        return False
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT count(*) FROM incident_roots
               WHERE channel = %s AND claimed_at > %s AND in_digest IS NULL""",
            (channel, now - STORM_WINDOW),
        )
        row = await cursor.fetchone()
        open_digest = await (
            await conn.execute(
                "SELECT 1 FROM storm_digests WHERE channel = %s AND ended_at IS NULL", (channel,)
            )
        ).fetchone()
    return open_digest is not None or (row is not None and row[0] >= threshold)


async def _join_digest(bot: BotContext, incident_id: str, channel: str, now: datetime) -> int | None:
    """Represent the incident in the channel's open storm digest (opening one if needed)."""
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """INSERT INTO storm_digests (channel, started_at, dirty_since) VALUES (%s, %s, %s)
               ON CONFLICT (channel) WHERE ended_at IS NULL DO NOTHING""",
            (channel, now, now),
        )
        digest = await (
            await conn.execute(
                "SELECT id FROM storm_digests WHERE channel = %s AND ended_at IS NULL", (channel,)
            )
        ).fetchone()
        assert digest is not None
        cursor = await conn.execute(
            """INSERT INTO incident_roots (incident_id, channel, claimed_by, claimed_at, in_digest)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            (incident_id, channel, bot.replica, now, digest[0]),
        )
        if cursor.rowcount == 1:
            await conn.execute(
                "UPDATE storm_digests SET dirty_since = COALESCE(dirty_since, %s) WHERE id = %s",
                (now, digest[0]),
            )
            return int(digest[0])
    return None


async def ensure_root(
    bot: BotContext,
    budget: ChannelBudget,
    view: IncidentView,
    channel: str,
    now: datetime,
    *,
    own_thread: bool,
) -> Root:
    """The incident's root in `channel`, posted once. During a storm a new incident joins the digest instead,
    unless it needs its own thread now (`own_thread`: someone acted on it)."""
    row = await _root_row(bot, view.id, channel)
    if row is None and not own_thread and await _in_storm(bot, channel, now):
        digest = await _join_digest(bot, view.id, channel, now)
        if digest is not None:
            return Root(channel, None, None, digest)
        row = await _root_row(bot, view.id, channel)
    if row is not None and row["ts"]:
        return Root(channel, row["channel_id"], row["ts"], row["in_digest"])
    if row is not None and row["in_digest"] and not own_thread:
        return Root(channel, None, None, row["in_digest"])
    if row is None:
        async with bot.storage.pool.connection() as conn:
            cursor = await conn.execute(
                """INSERT INTO incident_roots (incident_id, channel, claimed_by, claimed_at, posting_at)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (view.id, channel, bot.replica, now, now),
            )
            if cursor.rowcount != 1:
                raise RetryLater(f"root of {view.id} in {channel} is being posted")
    else:
        found = await _recover_root(bot, budget, view.id, channel, row, now)
        if found is not None:
            return found
        async with bot.storage.pool.connection() as conn:
            cursor = await conn.execute(
                """UPDATE incident_roots SET posting_at = %s, claimed_by = %s
                   WHERE incident_id = %s AND channel = %s AND ts IS NULL AND posting_at IS NOT DISTINCT FROM %s""",
                (now, bot.replica, view.id, channel, row["posting_at"]),
            )
            if cursor.rowcount != 1:
                raise RetryLater(f"root of {view.id} in {channel} is being posted")
        if row["posting_at"] is not None:
            # Ours now, and looked up once more right before posting again: a late-applied post may have landed
            # between the first lookup and the claim.
            found = await _recover_root(bot, budget, view.id, channel, row, now, look=True)
            if found is not None:
                return found
    text, attachments = blocks.render_root(view, now)
    started = time.monotonic()
    try:
        response = await slack_once.post(
            bot,
            budget,
            channel,
            root_key(view.id, channel),
            fallback=blocks.fallback_text(view),
            text=text,
            attachments=attachments,
        )
    except Exception as exc:
        await _root_post_failed(bot, view.id, channel, now, exc, time.monotonic() - started)
        raise
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """UPDATE incident_roots SET channel_id = %s, ts = %s, posted_at = %s, claimed_by = %s
               WHERE incident_id = %s AND channel = %s""",
            (response["channel"], response["ts"], now, bot.replica, view.id, channel),
        )
    return Root(
        channel, str(response["channel"]), str(response["ts"]), row["in_digest"] if row else None, True
    )


async def _recover_root(
    bot: BotContext,
    budget: ChannelBudget,
    incident_id: str,
    channel: str,
    row: dict[str, Any],
    now: datetime,
    *,
    look: bool = False,
) -> Root | None:
    """A root whose post started (`posting_at`) but has no `ts`: still being posted (RetryLater), or abandoned —
    then it is looked up in Slack by its metadata and recorded if it was posted after all. `look`: look it up
    whatever the claim's age (the caller holds the claim)."""
    attempted = row["posting_at"]
    if attempted is None:
        return None  # never attempted: a digest member getting its own thread
    if not look and attempted > now - slack_once.stale_window(bot):
        raise RetryLater(f"root of {incident_id} in {channel} is being posted")
    found = await slack_once.find_top_level(bot, budget, channel, root_key(incident_id, channel), attempted)
    if found is None:
        return None
    channel_id, ts = found
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """UPDATE incident_roots SET channel_id = %s, ts = %s, posted_at = %s
               WHERE incident_id = %s AND channel = %s AND ts IS NULL""",
            (channel_id, ts, now, incident_id, channel),
        )
    return Root(channel, channel_id, ts, row["in_digest"])


async def _root_post_failed(
    bot: BotContext, incident_id: str, channel: str, now: datetime, exc: BaseException, elapsed: float
) -> None:
    """Slack refused: the next attempt posts at once. Outcome unknown: Slack may still apply the post after the
    client gave up, so the attempt turns stale — and the root is looked up — only once that can no longer happen
    (`slack_once.uncertain_claim_time`)."""
    attempted = (
        None if slack_once.surely_not_posted(exc) else slack_once.uncertain_claim_time(bot, now, elapsed)
    )
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """UPDATE incident_roots SET posting_at = %s
               WHERE incident_id = %s AND channel = %s AND ts IS NULL AND posting_at = %s""",
            (attempted, incident_id, channel, now),
        )


async def post_once(
    bot: BotContext,
    budget: ChannelBudget,
    key: str,
    kind: str,
    incident_id: str,
    root: Root,
    now: datetime,
    text: str,
    blocks_: list[dict[str, Any]] | None = None,
    *,
    fallback: str,
) -> bool:
    """A reply in the root's thread, posted once per `key` (an event id, or e.g. `nudge:PABC123`). False when it
    was posted already; RetryLater while another worker is posting it. `fallback` is posted instead if Slack
    refuses the reply as invalid (bot/slack_once.py)."""
    assert root.ts is not None and root.channel_id is not None
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """INSERT INTO incident_replies (event_id, channel, incident_id, kind, claimed_at)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            (key, root.channel, incident_id, kind, now),
        )
        existing = None
        if cursor.rowcount != 1:
            existing = await (
                await conn.execute(
                    "SELECT ts, claimed_at FROM incident_replies WHERE event_id = %s AND channel = %s",
                    (key, root.channel),
                )
            ).fetchone()
            if existing is None:
                raise RetryLater(f"reply {key} in {root.channel} was given up just now")
    if existing is not None:
        ts, claimed_at = existing
        if ts:
            return False
        if claimed_at > now - slack_once.stale_window(bot):
            raise RetryLater(f"reply {key} in {root.channel} is being posted")
        # Abandoned by a worker that died: posted after all?
        found = await slack_once.find_in_thread(bot, root.channel_id, root.ts, reply_key(key, root.channel))
        async with bot.storage.pool.connection() as conn:
            if found is not None:
                await conn.execute(
                    """UPDATE incident_replies SET ts = %s, posted_at = %s
                       WHERE event_id = %s AND channel = %s AND ts IS NULL""",
                    (found, now, key, root.channel),
                )
                return False
            taken = await conn.execute(
                """UPDATE incident_replies SET claimed_at = %s
                   WHERE event_id = %s AND channel = %s AND ts IS NULL AND claimed_at = %s""",
                (now, key, root.channel, claimed_at),
            )
            if taken.rowcount != 1:
                raise RetryLater(f"reply {key} in {root.channel} is being posted")
        # Ours now, and looked up once more right before posting again: a late-applied post may have landed
        # between the first lookup and the claim.
        found = await slack_once.find_in_thread(bot, root.channel_id, root.ts, reply_key(key, root.channel))
        if found is not None:
            async with bot.storage.pool.connection() as conn:
                await conn.execute(
                    """UPDATE incident_replies SET ts = %s, posted_at = %s
                       WHERE event_id = %s AND channel = %s AND ts IS NULL""",
                    (found, now, key, root.channel),
                )
            return False
    started = time.monotonic()
    try:
        response = await slack_once.post(
            bot,
            budget,
            root.channel_id,
            reply_key(key, root.channel),
            fallback=fallback,
            text=text,
            blocks=blocks_,
            thread_ts=root.ts,
        )
    except Exception as exc:
        await _reply_post_failed(bot, key, root.channel, now, exc, time.monotonic() - started)
        raise
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            "UPDATE incident_replies SET ts = %s, posted_at = %s WHERE event_id = %s AND channel = %s",
            (response["ts"], now, key, root.channel),
        )
    return True


async def _reply_post_failed(
    bot: BotContext, key: str, channel: str, now: datetime, exc: BaseException, elapsed: float
) -> None:
    """Slack refused: the claim is dropped and the next attempt posts. Outcome unknown: the claim turns stale once
    Slack can no longer apply the post late (`slack_once.uncertain_claim_time`); then the next attempt looks the
    reply up in the thread before posting."""
    async with bot.storage.pool.connection() as conn:
        if slack_once.surely_not_posted(exc):
            await conn.execute(
                """DELETE FROM incident_replies
                   WHERE event_id = %s AND channel = %s AND ts IS NULL AND claimed_at = %s""",
                (key, channel, now),
            )
        else:
            await conn.execute(
                """UPDATE incident_replies SET claimed_at = %s
                   WHERE event_id = %s AND channel = %s AND ts IS NULL AND claimed_at = %s""",
                (slack_once.uncertain_claim_time(bot, now, elapsed), key, channel, now),
            )


# --- timers -------------------------------------------------------------------------------------------------------


async def _set_timer(bot: BotContext, incident_id: str, kind: str, due: datetime) -> None:
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """INSERT INTO incident_timers (incident_id, kind, due_at) VALUES (%s, %s, %s)
               ON CONFLICT DO NOTHING""",
            (incident_id, kind, due),
        )


async def _cancel_timers(bot: BotContext, incident_id: str, kinds: tuple[str, ...], now: datetime) -> None:
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            """UPDATE incident_timers SET cancelled_at = %s
               WHERE incident_id = %s AND kind = ANY(%s) AND fired_at IS NULL AND cancelled_at IS NULL""",
            (now, incident_id, list(kinds)),
        )


def _is_high(view: IncidentView) -> bool:
    return view.urgency == "high" or (view.priority or "").upper() == "P1"


async def _schedule(bot: BotContext, view: IncidentView, event: WebhookEvent, now: datetime) -> None:
    escalation = view.service.escalation if view.service else None
    ack_within = timedelta(minutes=escalation.ack_within_minutes if escalation else 15)
    resolve_within = timedelta(minutes=escalation.resolve_within_minutes if escalation else 60)
    started = view.triggered_at or event.occurred_at
    if view.status == "triggered" and view.acknowledged_at is None:
        await _set_timer(bot, view.id, "ack_nudge", started + ack_within)
    if view.status != "resolved" and _is_high(view):
        await _set_timer(bot, view.id, "resolve_reminder", started + resolve_within)
    if event.event_type == "incident.acknowledged":
        await _cancel_timers(bot, view.id, ("ack_nudge",), now)
    if event.event_type == "incident.resolved":
        await _cancel_timers(bot, view.id, ("ack_nudge", "resolve_reminder"), now)
        await _set_timer(bot, view.id, "postmortem_reminder", (view.resolved_at or now) + POSTMORTEM_WITHIN)


# --- delivery -----------------------------------------------------------------------------------------------------


async def _resolution(bot: BotContext, incident_id: str) -> str | None:
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                """SELECT detail FROM incident_actions WHERE incident_id = %s AND action = 'resolve'
                   AND detail IS NOT NULL ORDER BY id DESC LIMIT 1""",
                (incident_id,),
            )
        ).fetchone()
    return str(row[0]) if row else None


async def deliver(bot: BotContext, budget: ChannelBudget, body: bytes, now: datetime) -> None:
    """Deliver one stored event: fold it into the incident, make sure each channel has its root, reply once."""
    event = parse_webhook(body)
    row, previous_priority, changed = await apply_event(bot, event, now)
    view = view_of(bot, row)
    triggered = event.event_type == "incident.triggered"
    for channel in channels_for(bot, view):
        root = await ensure_root(bot, budget, view, channel, now, own_thread=not triggered)
        if changed and not root.posted_now and root.ts:
            await _mark_dirty(bot, view.id, now)
        if triggered or root.ts is None:
            if root.in_digest:
                await _mark_digest_dirty(bot, root.in_digest, now)
            continue
        resolution = await _resolution(bot, view.id) if event.event_type == "incident.resolved" else None
        text = blocks.reply_text(event, previous_priority, resolution)
        fallback = blocks.fallback_text(view, "update")
        for part, part_text in enumerate(blocks.reply_parts(text), 1):
            # A reply too long for one message is several, each claimed once: the first by the event's id.
            key = event.event_id if part == 1 else f"{event.event_id}#{part}"
            await post_once(
                bot, budget, key, event.event_type, view.id, root, now, part_text, fallback=fallback
            )
        if event.event_type == "incident.resolved":
            await post_postmortem(bot, budget, view, root, now)
    await _schedule(bot, view, event, now)


async def _mark_dirty(bot: BotContext, incident_id: str, now: datetime) -> None:
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            "UPDATE incidents SET root_dirty_since = COALESCE(root_dirty_since, %s) WHERE id = %s",
            (now, incident_id),
        )


async def _mark_digest_dirty(bot: BotContext, digest_id: int, now: datetime) -> None:
    async with bot.storage.pool.connection() as conn:
        await conn.execute(
            "UPDATE storm_digests SET dirty_since = COALESCE(dirty_since, %s) WHERE id = %s", (now, digest_id)
        )


async def timeline(bot: BotContext, incident_id: str) -> list[TimelineEntry]:
    """The incident's story from its stored events, for the post-mortem draft."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT body FROM pd_webhooks WHERE incident_id = %s AND status IN ('pending', 'delivered')
               ORDER BY occurred_at, id""",
            (incident_id,),
        )
        rows = await cursor.fetchall()
    entries = []
    resolution = await _resolution(bot, incident_id)
    for (body,) in rows:
        event = parse_webhook(bytes(body))
        text = (
            "Triggered"
            if event.event_type == "incident.triggered"
            else blocks.reply_text(
                event, None, resolution if event.event_type == "incident.resolved" else None
            )
        )
        entries.append(TimelineEntry(event.occurred_at, _plain(text)))
    return entries


def _plain(text: str) -> str:
    parts = text.split(" ", 1)
    return parts[1] if parts[0].startswith(":") and parts[0].endswith(":") and len(parts) > 1 else text


async def post_postmortem(
    bot: BotContext, budget: ChannelBudget, view: IncidentView, root: Root, now: datetime
) -> None:
    text, draft = blocks.render_postmortem(view, await timeline(bot, view.id))
    await post_once(
        bot,
        budget,
        f"postmortem:{view.id}",
        "postmortem",
        view.id,
        root,
        now,
        text,
        draft,
        fallback=blocks.fallback_text(view, "post-mortem draft"),
    )


# --- debounced root edits, digests, timers: the worker's periodic steps ------------------------------------------


async def flush_roots(bot: BotContext, budget: ChannelBudget, now: datetime) -> int:
    """One chat.update per dirty root once its incident is quiet (or has waited long enough). An edit that fails
    marks the root dirty again, so it is retried on the next pass instead of lost."""
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT * FROM incidents WHERE root_dirty_since IS NOT NULL
               AND (last_event_at <= %s OR root_dirty_since <= %s)""",
            (now - DEBOUNCE_QUIET, now - DEBOUNCE_MAX),
        )
        dirty = await cursor.fetchall()
    edited = 0
    for row in dirty:
        async with bot.storage.pool.connection() as conn:
            claimed = await conn.execute(
                "UPDATE incidents SET root_dirty_since = NULL WHERE id = %s AND root_dirty_since = %s",
                (row["id"], row["root_dirty_since"]),
            )
            if claimed.rowcount != 1:
                continue
            roots = await (
                await conn.execute(
                    "SELECT channel_id, ts FROM incident_roots WHERE incident_id = %s AND ts IS NOT NULL",
                    (row["id"],),
                )
            ).fetchall()
        view = view_of(bot, row)
        text, attachments = blocks.render_root(view, now)
        fallback = blocks.fallback_text(view)
        try:
            for channel_id, ts in roots:
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
            await _mark_dirty(bot, view.id, now)
    return edited


async def flush_digests(bot: BotContext, budget: ChannelBudget, now: datetime) -> None:
    """Post or edit each dirty storm digest (at most every DIGEST_EDIT_EVERY), and end the storms that passed,
    giving their still-open incidents their own roots."""
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute("SELECT * FROM storm_digests WHERE ended_at IS NULL OR dirty_since IS NOT NULL")
        digests = await cursor.fetchall()
    for digest in digests:
        if digest["dirty_since"] is not None and (
            digest["ts"] is None or digest["dirty_since"] <= now - DIGEST_EDIT_EVERY
        ):
            await _render_digest(bot, budget, digest, now)
        if digest["ended_at"] is None and await _storm_passed(bot, digest, now):
            await _end_storm(bot, budget, digest, now)


async def _digest_views(bot: BotContext, digest_id: int) -> list[IncidentView]:
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT i.* FROM incidents i JOIN incident_roots r ON r.incident_id = i.id
               WHERE r.in_digest = %s ORDER BY i.triggered_at NULLS LAST, i.id""",
            (digest_id,),
        )
        return [view_of(bot, row) for row in await cursor.fetchall()]


async def _render_digest(
    bot: BotContext, budget: ChannelBudget, digest: dict[str, Any], now: datetime
) -> None:
    async with bot.storage.pool.connection() as conn:
        claimed = await conn.execute(
            "UPDATE storm_digests SET dirty_since = NULL WHERE id = %s AND dirty_since = %s",
            (digest["id"], digest["dirty_since"]),
        )
        if claimed.rowcount != 1:
            return
    try:
        await _show_digest(bot, budget, digest, now)
    except Exception as exc:
        if slack_once.permanently_refused(exc):  # even the fallback: another try would be refused too
            log.error("storm digest refused by Slack", exc_info=True, extra={"digest": digest["id"]})
            return
        await _mark_digest_dirty(bot, digest["id"], now)  # edited on a later pass instead of lost
        if not isinstance(exc, RetryLater):
            log.warning("storm digest not shown yet", exc_info=True, extra={"digest": digest["id"]})


async def _show_digest(bot: BotContext, budget: ChannelBudget, digest: dict[str, Any], now: datetime) -> None:
    """Post the digest once (claimed by `posting_at`, found by its metadata after a crash), or edit it."""
    views = await _digest_views(bot, digest["id"])
    text, digest_blocks = blocks.render_digest(views)
    fallback = blocks.digest_fallback(views)
    channel_id, ts = digest["channel_id"], digest["ts"]
    key = digest_key(digest["id"])
    if ts is None and digest["posting_at"] is not None:
        if digest["posting_at"] > now - slack_once.stale_window(bot):
            raise RetryLater(f"digest {digest['id']} is being posted")
        found = await slack_once.find_top_level(bot, budget, digest["channel"], key, digest["posting_at"])
        if found is not None:
            channel_id, ts = found
            async with bot.storage.pool.connection() as conn:
                await conn.execute(
                    "UPDATE storm_digests SET channel_id = %s, ts = %s WHERE id = %s",
                    (channel_id, ts, digest["id"]),
                )
    if ts is None:
        async with bot.storage.pool.connection() as conn:
            taken = await conn.execute(
                """UPDATE storm_digests SET posting_at = %s
                   WHERE id = %s AND ts IS NULL AND posting_at IS NOT DISTINCT FROM %s""",
                (now, digest["id"], digest["posting_at"]),
            )
            if taken.rowcount != 1:
                raise RetryLater(f"digest {digest['id']} is being posted")
        if digest["posting_at"] is not None:
            # Ours now: looked up once more right before posting again (a late-applied post may just have landed).
            found = await slack_once.find_top_level(bot, budget, digest["channel"], key, digest["posting_at"])
            if found is not None:
                async with bot.storage.pool.connection() as conn:
                    await conn.execute(
                        "UPDATE storm_digests SET channel_id = %s, ts = %s WHERE id = %s",
                        (found[0], found[1], digest["id"]),
                    )
                await slack_once.update(
                    bot, budget, found[0], found[1], fallback=fallback, text=text, blocks=digest_blocks
                )
                return
        started = time.monotonic()
        try:
            response = await slack_once.post(
                bot, budget, digest["channel"], key, fallback=fallback, text=text, blocks=digest_blocks
            )
        except Exception as exc:
            attempted = (
                None
                if slack_once.surely_not_posted(exc)
                else slack_once.uncertain_claim_time(bot, now, time.monotonic() - started)
            )
            async with bot.storage.pool.connection() as conn:
                await conn.execute(
                    "UPDATE storm_digests SET posting_at = %s WHERE id = %s AND ts IS NULL AND posting_at = %s",
                    (attempted, digest["id"], now),
                )
            raise
        async with bot.storage.pool.connection() as conn:
            await conn.execute(
                "UPDATE storm_digests SET channel_id = %s, ts = %s WHERE id = %s",
                (response["channel"], response["ts"], digest["id"]),
            )
        return
    await slack_once.update(bot, budget, channel_id, ts, fallback=fallback, text=text, blocks=digest_blocks)


async def _storm_passed(bot: BotContext, digest: dict[str, Any], now: datetime) -> bool:
    async with bot.storage.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT max(claimed_at) FROM incident_roots WHERE in_digest = %s", (digest["id"],)
            )
        ).fetchone()
    last = row[0] if row and row[0] else digest["started_at"]
    return bool(last <= now - STORM_QUIET)


async def _end_storm(bot: BotContext, budget: ChannelBudget, digest: dict[str, Any], now: datetime) -> None:
    """The storm passed: give the still-open incidents of the digest their own roots, a few per pass so the
    worker keeps delivering new events meanwhile, and close the digest once none is left."""
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            """SELECT i.* FROM incidents i JOIN incident_roots r ON r.incident_id = i.id
               WHERE r.in_digest = %s AND r.ts IS NULL AND i.status <> 'resolved'
               ORDER BY i.triggered_at NULLS LAST, i.id LIMIT %s""",
            (digest["id"], PROMOTE_PER_PASS),
        )
        waiting = await cursor.fetchall()
        if not waiting:
            await conn.execute(
                "UPDATE storm_digests SET ended_at = %s WHERE id = %s AND ended_at IS NULL",
                (now, digest["id"]),
            )
            return
    for row in waiting:
        try:
            await ensure_root(bot, budget, view_of(bot, row), digest["channel"], now, own_thread=True)
        except RetryLater:
            continue  # another worker is posting it


async def fire_timers(bot: BotContext, budget: ChannelBudget, now: datetime) -> list[tuple[str, str]]:
    """Nudges and reminders that are due: each claimed by `fired_at` and finished by `done_at`, so it fires once
    across replicas; a claim whose worker died (older than the stale window, not done) is taken over, and its
    reply, keyed by timer, is still posted only once."""
    async with bot.storage.pool.connection() as conn:
        cursor = await conn.execute(
            """UPDATE incident_timers SET fired_at = %s
               WHERE done_at IS NULL AND cancelled_at IS NULL AND due_at <= %s
                 AND (fired_at IS NULL OR fired_at <= %s)
               RETURNING incident_id, kind""",
            (now, now, now - slack_once.stale_window(bot)),
        )
        due = await cursor.fetchall()
    fired = []
    for incident_id, kind in due:
        try:
            if await _fire_timer(bot, budget, incident_id, kind, now):
                fired.append((incident_id, kind))
        except Exception as exc:
            if not isinstance(exc, RetryLater):
                log.warning(
                    "timer not fired yet", exc_info=True, extra={"incident": incident_id, "kind": kind}
                )
            continue  # taken over once its claim is stale
        async with bot.storage.pool.connection() as conn:
            await conn.execute(
                "UPDATE incident_timers SET done_at = %s WHERE incident_id = %s AND kind = %s",
                (now, incident_id, kind),
            )
    return fired


async def _fire_timer(
    bot: BotContext, budget: ChannelBudget, incident_id: str, kind: str, now: datetime
) -> bool:
    async with bot.storage.pool.connection() as conn:
        row = await _incident(conn, incident_id)
    if row is None:
        return False
    view = view_of(bot, row)
    text = await _timer_text(bot, view, kind, now)
    if text is None:
        return False
    for channel in channels_for(bot, view):
        root = await ensure_root(bot, budget, view, channel, now, own_thread=True)
        await post_once(
            bot,
            budget,
            f"{kind}:{incident_id}",
            kind,
            incident_id,
            root,
            now,
            text,
            fallback=blocks.fallback_text(view, "reminder"),
        )
    return True


async def _assignee_email(bot: BotContext, assignee: dict[str, Any]) -> str | None:
    """Webhooks carry user references without emails: ask PagerDuty's users API when we can."""
    if assignee.get("email"):
        return str(assignee["email"])
    if bot.pagerduty is None or not assignee.get("id"):
        return None
    try:
        return await bot.pagerduty.user_email(assignee["id"])
    except PagerDutyError:
        log.warning("could not read an assignee's email from PagerDuty", exc_info=True)
        return None


async def _slack_mentions(bot: BotContext, view: IncidentView, row_snapshot: dict[str, Any]) -> str:
    everyone = row_snapshot.get("assignees") or []
    mentions = []
    for assignee in everyone[:MENTIONS]:  # each one is a PagerDuty and a Slack lookup
        email = await _assignee_email(bot, assignee)
        user = None
        if email:
            try:
                user = (await bot.slack.users_lookupByEmail(email=email))["user"]["id"]
            except SlackApiError:
                user = None
        # The mention is built from the Slack ID Slack gave us; a PagerDuty name is outside text.
        name = assignee.get("name") or assignee.get("id") or "?"
        mentions.append(f"<@{user}>" if user else outside(name, blocks.NAME_CHARS))
    more = f" and {len(everyone) - len(mentions)} more" if len(everyone) > len(mentions) else ""
    return ", ".join(mentions) + more if mentions else "the on-call"


async def _timer_text(bot: BotContext, view: IncidentView, kind: str, now: datetime) -> str | None:
    async with bot.storage.pool.connection() as conn:
        row = await _incident(conn, view.id)
    assert row is not None
    if kind == "ack_nudge":
        if view.acknowledged_at is not None or view.status != "triggered":
            return None
        who = await _slack_mentions(bot, view, row["snapshot"])
        minutes = view.service.escalation.ack_within_minutes if view.service else 15
        return (
            f":bell: {who}: not acknowledged {minutes} minutes after it triggered. The runbook asks for a "
            "response within that time; acknowledge it or escalate."
        )
    if kind == "resolve_reminder":
        if view.status == "resolved":
            return None
        path = (
            " → ".join(level.name for level in view.service.escalation.levels)
            if view.service
            else "the manager"
        )
        return (
            f":hourglass_flowing_sand: Open for {blocks.duration(view.triggered_at, now)}, past the 1-hour "
            f"resolution SLA for high urgency. Escalation path: {path}."
        )
    if kind == "postmortem_reminder":
        async with bot.storage.pool.connection() as conn:
            marked = await (
                await conn.execute(
                    "SELECT 1 FROM incident_actions WHERE incident_id = %s AND action = 'postmortem_scheduled'",
                    (view.id,),
                )
            ).fetchone()
        if marked:
            return None
        return (
            ":spiral_calendar_pad: Resolved 48 hours ago and no post-mortem is marked as scheduled. "
            "Schedule it, then press *Post-mortem scheduled* on the draft above."
        )
    return None
