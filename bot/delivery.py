"""The delivery worker: drains stored PagerDuty events (the outbox) into Slack, on every replica at once.

Each pass claims a batch of pending events with `FOR UPDATE SKIP LOCKED` and a lease (`claimed_until`), so replicas
share the work and an event whose worker died is picked up again when its lease ends (a pass renews it while it
runs, bot/delivery_lease.py). A batch is whole incidents,
the urgent first (a new incident, a change of state: `EventDelivery.urgent_event_types`), their events in order;
the capability folds the whole batch at once (`EventDelivery.fold`: its state in a few statements, not a dozen per
event), the events are delivered, and the delivered ones are marked in one statement at the end of the pass.
Events of one incident are handled in `occurred_at` order under a short Redis lock on the incident, by the one
worker holding its earliest pending events (`_not_mine`), so two replicas never interleave one thread; without
Redis the Postgres claims still prevent double posts. A failure leaves the event pending with a
backoff (429s have already been waited out within the channel's budget; a 5xx or a timeout is not resent blindly,
the post is looked up first on the next attempt, see bot/slack_once.py), and the incident's later events wait
behind it; after MAX_ATTEMPTS it is marked failed and logged. A payload Slack refuses as invalid is answered with a
text-only fallback where it is posted (bot/slack_once.py); one refused even so is marked failed at once, never
retried as is, and the incident's later events go on. Lease and stale-claim windows are settings
(DELIVERY_LEASE_SECONDS, STALE_CLAIM_SECONDS).
Then the periodic steps run: debounced root edits, storm digests, SLA timers. A pass that lasts (its posts wait
on Slack's per-channel pace) runs the capability's `alongside` steps every ALONGSIDE_EVERY meanwhile: the edits
that show the incidents' state do not wait for the pass to end. What an event means is the
incidents capability's business: the worker calls the hooks it registered (bot/capabilities.py, EventDelivery),
and runs on the shared worker loop (bot/worker.py). The clock is injected for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis.exceptions
from prometheus_client import Counter
from slack_sdk.errors import SlackApiError

from bot import delivery_lease
from bot.capabilities import EventDelivery
from bot.context import BotContext
from bot.scheduler import utc_now
from bot.worker import Worker
from integrations.pagerduty_webhooks import MalformedWebhook
from integrations.slack import SlackInvalidPayload, slack_error, slack_error_code

log = logging.getLogger(__name__)

#: A claim takes the next BATCH_INCIDENTS incidents (the urgent first) with up to PER_INCIDENT of each one's
#: events: an incident's waiting events travel together, so they are folded together and can share one thread
#: reply (a claim of the oldest events across incidents would hold one event of each and coalesce nothing).
BATCH_INCIDENTS = 50
PER_INCIDENT = 20
MAX_ATTEMPTS = 10
#: Incidents of a batch delivered at once, each in its own order. A pass is chains of Slack and Postgres round
#: trips (an incident's events one after another, each in its channels one after another): 8 at once left a
#: pass of 50 incidents waiting on round trips, not on the CPU (issue 16). The incidents capability bounds how
#: many of them post a new root at once (its storm count must see the roots claimed before it).
CONCURRENT_INCIDENTS = 32
#: How often the capability's `alongside` steps run while a pass's deliveries last (a fast pass runs none).
ALONGSIDE_EVERY = timedelta(seconds=2)

DELIVERIES = Counter(
    "mira_pagerduty_deliveries_total", "Stored PagerDuty events handled, by outcome.", ["outcome"]
)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(300, 2 ** min(attempts, 8)))


class DeliveryWorker(Worker):
    """`wake()` is called by the webhook route after storing: deliver now rather than at the next poll.
    Posts take their channel's slot in the process's one budget (`bot.budget`)."""

    name = "pagerduty-delivery"
    failure = "delivery pass failed; retrying"

    def __init__(
        self,
        bot: BotContext,
        hooks: EventDelivery,
        *,
        clock: Callable[[], datetime] = utc_now,
        poll: float = 1.0,
    ) -> None:
        super().__init__(poll=poll)
        self.bot = bot
        self.hooks = hooks
        self.clock = clock
        self.lease = timedelta(seconds=bot.settings.delivery_lease_seconds)
        # Incidents locked through `Storage.locks` because Redis did not answer.
        self._locked_in_postgres: set[str] = set()
        # Serialises this worker's own passes (the loop and the console's "run what is due now"); replicas are
        # kept apart by the claims, not by this.
        self._pass = asyncio.Lock()

    async def _claim(self, now: datetime) -> list[dict[str, Any]]:
        """Claim due events for one lease: whole incidents (their first PER_INCIDENT waiting events, in order),
        the urgent incidents first (`EventDelivery.urgent_event_types`: a new incident, a change of state) and
        the rest after. An event ranks with the most urgent event of its incident that follows it (a note queued
        before a resolve goes with the resolve), so an incident ranks by its most urgent waiting event and its
        claimed events are always its earliest. An event waits while an earlier event of its incident is backing off after a
        failure, so a thread never shows a later event before an earlier one."""
        async with self.bot.storage.pool.connection() as conn:
            cursor = await conn.execute(
                """WITH eligible AS (
                       SELECT id, incident_id, occurred_at,
                              min(CASE WHEN event_type = ANY(%(urgent)s) THEN 0 ELSE 1 END) OVER (
                                  PARTITION BY incident_id ORDER BY occurred_at DESC NULLS FIRST, id DESC) AS rank,
                              row_number() OVER (
                                  PARTITION BY incident_id ORDER BY occurred_at NULLS LAST, id) AS nth
                       FROM pd_webhooks p
                       WHERE status = 'pending' AND next_attempt_at <= %(now)s
                         AND (claimed_until IS NULL OR claimed_until < %(now)s)
                         AND NOT EXISTS (
                             SELECT 1 FROM pd_webhooks e
                             WHERE e.incident_id = p.incident_id AND e.status = 'pending'
                               AND e.next_attempt_at > %(now)s
                               AND (e.occurred_at, e.id) < (p.occurred_at, p.id))),
                   incidents AS (
                       SELECT incident_id FROM eligible WHERE nth = 1
                       ORDER BY rank, occurred_at NULLS LAST, id LIMIT %(incidents)s),
                   chosen AS (
                       SELECT e.id, e.rank FROM eligible e JOIN incidents USING (incident_id)
                       WHERE e.nth <= %(per_incident)s),
                   locked AS (
                       SELECT p.id, c.rank FROM pd_webhooks p JOIN chosen c ON c.id = p.id
                       FOR UPDATE OF p SKIP LOCKED)
                   UPDATE pd_webhooks w SET claimed_by = %(replica)s, claimed_until = %(until)s,
                          attempts = w.attempts + 1
                   FROM locked WHERE w.id = locked.id
                   RETURNING w.id, w.incident_id, w.occurred_at, w.body, w.attempts, locked.rank""",
                {
                    "urgent": list(self.hooks.urgent_event_types),
                    "now": now,
                    "incidents": BATCH_INCIDENTS,
                    "per_incident": PER_INCIDENT,
                    "replica": self.bot.replica,
                    "until": now + self.lease,
                },
            )
            columns = [c.name for c in cursor.description or []]
            return [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]

    async def _not_mine(self, by_incident: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Cut each incident's claimed events to those before its earliest pending event this worker does not
        hold (another worker claimed it, or claims it right now: concurrent claims can split an incident's
        events between workers), and return the rest to give back. So an incident is delivered only by the
        worker holding its earliest events, and a thread never shows a later event first."""
        if not by_incident:
            return []
        async with self.bot.storage.pool.connection() as conn:
            cursor = await conn.execute(
                """SELECT DISTINCT ON (incident_id) incident_id, occurred_at, id FROM pd_webhooks
                   WHERE incident_id = ANY(%s) AND status = 'pending' AND id <> ALL(%s)
                   ORDER BY incident_id, occurred_at, id""",
                (list(by_incident), [row["id"] for group in by_incident.values() for row in group]),
            )
            gaps = {str(incident): (at, id_) for incident, at, id_ in await cursor.fetchall()}
        given_back: list[dict[str, Any]] = []
        for incident_id, gap in gaps.items():
            group = by_incident[incident_id]
            keep = [
                r
                for r in group
                if gap[0] is None or (r["occurred_at"] is not None and (r["occurred_at"], r["id"]) < gap)
            ]
            given_back += [row for row in group if row not in keep]
            if keep:
                by_incident[incident_id] = keep
            else:
                del by_incident[incident_id]
        return given_back

    async def _delivered(self, rows: list[dict[str, Any]], now: datetime) -> None:
        """Mark the pass's delivered events in one statement."""
        if not rows:
            return
        DELIVERIES.labels("delivered").inc(len(rows))
        async with self.bot.storage.pool.connection() as conn:
            await conn.execute(
                """UPDATE pd_webhooks SET status = 'delivered', reason = NULL, next_attempt_at = %s,
                       claimed_until = NULL, delivered_at = %s
                   WHERE id = ANY(%s)""",
                (now, now, [row["id"] for row in rows]),
            )

    async def _finish(
        self, row: dict[str, Any], now: datetime, error: str | None, retry: bool = True
    ) -> None:
        if error is None:
            status, next_at = "delivered", now
        elif retry and row["attempts"] < MAX_ATTEMPTS:
            status, next_at = "pending", now + backoff(row["attempts"])
        else:
            status, next_at = "failed", now
            log.error("PagerDuty event given up", extra={"webhook": row["id"], "reason": error})
        DELIVERIES.labels(status if error is None or status == "failed" else "retry").inc()
        async with self.bot.storage.pool.connection() as conn:
            await conn.execute(
                """UPDATE pd_webhooks SET status = %s, reason = %s, next_attempt_at = %s, claimed_until = NULL,
                       delivered_at = CASE WHEN %s = 'delivered' THEN %s END
                   WHERE id = %s""",
                (status, error, next_at, status, now, row["id"]),
            )

    async def _release(self, rows: list[dict[str, Any]]) -> None:
        """Give the rows back at once (another worker holds the incident): not an attempt."""
        async with self.bot.storage.pool.connection() as conn:
            await conn.execute(
                "UPDATE pd_webhooks SET claimed_until = NULL, attempts = attempts - 1 WHERE id = ANY(%s)",
                ([row["id"] for row in rows],),
            )

    async def _incident_lock(self, incident_id: str) -> bool | None:
        """True: held; False: another worker holds it; None: neither Redis nor Postgres could say (the Postgres
        claims still protect). When Redis does not answer, the lock is a Postgres session advisory lock instead
        (`Storage.locks`), held until `_unlock` or until this process's lock connection ends."""
        try:
            return bool(
                await self.bot.storage.redis.set(
                    # As long as the events' lease: a lock left by a worker that died ends with its claims.
                    f"incident:{incident_id}:lock",
                    self.bot.replica,
                    nx=True,
                    px=int(self.lease.total_seconds() * 1000),
                )
            )
        except redis.exceptions.RedisError:
            locks = self.bot.storage.locks
            if locks is None:
                return None
            held = await locks.try_lock(f"incident:{incident_id}")
            if held:
                self._locked_in_postgres.add(incident_id)
            return held

    async def _unlock(self, incident_id: str) -> None:
        if incident_id in self._locked_in_postgres:
            self._locked_in_postgres.discard(incident_id)
            assert self.bot.storage.locks is not None
            await self.bot.storage.locks.unlock(f"incident:{incident_id}")
            return
        with contextlib.suppress(redis.exceptions.RedisError):
            await self.bot.storage.redis.delete(f"incident:{incident_id}:lock")

    async def _deliver_incident(
        self, rows: list[dict[str, Any]], now: datetime, folded: Any, delivered: list[dict[str, Any]]
    ) -> int:
        """Deliver one incident's events in order (its lock held by the pass); the delivered ones are added to
        `delivered`, marked together at the end of the pass. Returns the number handled."""
        handled = 0
        for index, row in enumerate(rows):
            handled += 1
            try:
                await self.hooks.deliver(self.bot, bytes(row["body"]), now, folded)
            except MalformedWebhook as exc:
                await self._finish(row, now, f"malformed: {exc}", retry=False)
                continue
            except SlackApiError as exc:
                if not isinstance(slack_error(exc), SlackInvalidPayload):
                    await self._failed(row, rows[index + 1 :], now, exc)
                    return handled
                # Refused even as the text-only fallback: no retry can change that, and the incident's
                # later events must not wait behind it.
                await self._finish(row, now, f"refused by Slack: {slack_error_code(exc)}", retry=False)
                continue
            except Exception as exc:
                await self._failed(row, rows[index + 1 :], now, exc)
                return handled
            delivered.append(row)
        return handled

    async def _failed(
        self, row: dict[str, Any], later: list[dict[str, Any]], now: datetime, exc: Exception
    ) -> None:
        """The event is tried again after its backoff, and its incident's later events wait behind it."""
        if not isinstance(exc, self.hooks.retry_quietly):
            log.warning("PagerDuty event not delivered yet", exc_info=exc, extra={"webhook": row["id"]})
        await self._finish(row, now, f"{type(exc).__name__}: {exc}"[:500])
        if later:
            await self._release(later)  # keep the thread in order behind the failure

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass: deliver what is due, then the periodic steps. Returns the number of events handled (events
        given back because another worker holds their incident do not count, so the loop waits for its next poll
        instead of claiming them again at once)."""
        async with self._pass:
            return await self._pass_once(now or self.clock())

    async def _pass_once(self, now: datetime) -> int:
        rows = await self._claim(now)
        by_incident: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # UPDATE … RETURNING does not keep the subquery's order: the urgent incidents first, each incident's
        # events in order (the budget serves a channel's posters first come, first served).
        for row in sorted(
            rows,
            key=lambda r: (r["rank"], r["occurred_at"] is None, r["occurred_at"] or now, r["id"]),
        ):
            by_incident[row["incident_id"]].append(row)
        given_back = await self._not_mine(by_incident)
        if given_back:
            await self._release(given_back)
        locks = await asyncio.gather(*(self._incident_lock(incident_id) for incident_id in by_incident))
        held = [incident_id for incident_id, locked in zip(by_incident, locks, strict=True) if locked]
        mine = {
            incident_id: group
            for (incident_id, group), locked in zip(by_incident.items(), locks, strict=True)
            if locked is not False
        }
        try:
            given_back = [
                row for incident_id, group in by_incident.items() if incident_id not in mine for row in group
            ]
            if given_back:
                await self._release(given_back)
            if mine:
                ids = [row["id"] for group in mine.values() for row in group]
                lock_keys = [f"incident:{i}:lock" for i in held if i not in self._locked_in_postgres]
                async with delivery_lease.kept(self.bot, ids, lock_keys, now, self.lease):
                    handled = await self._deliver_all(mine, now)
            else:
                handled = 0
        finally:
            await asyncio.gather(*(self._unlock(incident_id) for incident_id in held))
        for step in self.hooks.periodic:
            await step(self.bot, now)
        return handled

    async def _deliver_all(self, mine: dict[str, list[dict[str, Any]]], now: datetime) -> int:
        """Fold the batch (one call for all of it), deliver each incident's events, mark the delivered ones."""
        folded = None
        if self.hooks.fold is not None:
            try:
                folded = await self.hooks.fold(
                    self.bot, [bytes(row["body"]) for group in mine.values() for row in group], now
                )
            except Exception as exc:
                for group in mine.values():  # each incident waits behind its first event's backoff
                    await self._failed(group[0], group[1:], now, exc)
                return sum(len(group) for group in mine.values())
        delivered: list[dict[str, Any]] = []
        limit = asyncio.Semaphore(CONCURRENT_INCIDENTS)

        busy = set(mine)  # incidents whose deliveries are under way: the `alongside` steps leave them be

        async def one(incident_id: str, group: list[dict[str, Any]]) -> int:
            try:
                async with limit:
                    return await self._deliver_incident(group, now, folded, delivered)
            finally:
                busy.discard(incident_id)

        stop = asyncio.Event()
        side = asyncio.create_task(self._alongside(now, stop, busy)) if self.hooks.alongside else None
        try:
            handled = await asyncio.gather(*(one(incident_id, group) for incident_id, group in mine.items()))
        finally:
            stop.set()
            if side is not None:
                await side  # never cancelled mid-step: a step ends what it began (an edit, a post)
            try:
                if self.hooks.finish is not None and folded is not None:
                    await self.hooks.finish(self.bot, folded, now)
            finally:
                await self._delivered(delivered, now)
        return sum(handled)

    async def _alongside(self, now: datetime, stop: asyncio.Event, busy: set[str]) -> None:
        """While the pass's deliveries last, every ALONGSIDE_EVERY the capability's `alongside` steps (the edits
        that show the incidents' state): on the pass's clock moved on by the time elapsed, as slack_once does."""
        started = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ALONGSIDE_EVERY.total_seconds())
            if stop.is_set():
                return
            at = now + timedelta(seconds=time.monotonic() - started)
            for step in self.hooks.alongside:
                try:
                    await step(self.bot, at, frozenset(busy))
                except Exception:
                    log.warning("a step alongside the delivery failed; retrying", exc_info=True)

    async def run_pass(self) -> bool:
        # More may be waiting when this pass handled events; events given back do not count (see run_once).
        return bool(await self.run_once())
