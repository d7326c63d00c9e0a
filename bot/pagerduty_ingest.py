"""POST /pagerduty/webhook: verify the signature, store the event durably, answer 202. Nothing else.

PagerDuty waits 5 s for an answer, retries what was not acknowledged for up to 48 h, and disables a subscription
after repeated 4xx answers. So: a bad signature is 401 and stores nothing; anything signed is stored (unknown
event types, `service.*` events, services not in the catalog and even malformed JSON are kept, marked so the
delivery worker skips them) and answered 202; a redelivery (same `event.id`) is answered 202 with no second row;
and when Postgres cannot take the row the answer is 503, so PagerDuty retries instead of believing us. Slack is
never called here: the delivery worker drains the stored events (bot/delivery.py).

Per webhook the route does only what it must before the 202 (issue 16): one HMAC, one `json.loads`, the envelope
(integrations/pagerduty_envelope.py: the fields the row is filed by, not the whole V3 event the worker builds later
from the stored bytes), the classification, and its share of one group-committed INSERT of the body exactly as
received. It is a bare ASGI app with prebuilt answers, ahead of Starlette's middleware and router.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.types import Receive, Scope, Send

from bot.asgi import BodyTooLarge, Prebuilt, read_body, too_large
from bot.catalog import Catalog
from bot.context import BotContext
from bot.signing import verify_pagerduty_signature
from integrations.pagerduty_envelope import MalformedWebhook, WebhookEnvelope, parse_envelope

log = logging.getLogger(__name__)

PAGERDUTY_BODY_LIMIT = 256 * 1024  # PagerDuty drops larger payloads itself
#: The dedup_key prefix of the handoff's "Test PagerDuty integration" events. Their webhooks are stored (the test
#: waits for them) but not posted: a test incident in #incidents would only be noise.
HANDOFF_TEST_KEY_PREFIX = "mira-handoff-test-"


def storable(event: WebhookEnvelope | None) -> WebhookEnvelope | None:
    """The event, unless a field stored in a text column is one Postgres text cannot hold — a NUL character, or
    a lone surrogate (JSON may escape one, UTF-8 cannot encode it). No PagerDuty ID or name holds either, so such
    an event is kept raw as malformed (answered 202 like any signed body) instead of failing the insert — and
    every other webhook of its batch — with a 503 or a 500, which PagerDuty would retry for two days. The service
    name is in the list because an unknown one is quoted in the row's reason."""
    if event is None:
        return None
    for value in (
        event.event_id,
        event.event_type,
        event.incident_id,
        event.service_id,
        event.service_name,
        event.incident_key,
    ):
        if value is not None and ("\x00" in value or not (value.isascii() or _encodable(value))):
            return None
    return event


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def classify(event: WebhookEnvelope | None, catalog: Catalog) -> tuple[str, str | None]:
    """(status, reason): `pending` for the worker, or why it is only kept."""
    if event is None:
        return "malformed", "not a PagerDuty V3 envelope"
    if not event.event_type.startswith("incident.") or event.incident_id is None:
        return "ignored", f"{event.event_type} events are not posted"
    if (event.incident_key or "").startswith(HANDOFF_TEST_KEY_PREFIX):
        return "ignored", "a handoff test event (Test PagerDuty integration)"
    service_name = event.service_name
    if (event.service_id or service_name) and catalog.for_pagerduty(event.service_id, service_name) is None:
        return "ignored", f"service {service_name or event.service_id} is not in the catalog"
    return "pending", None


#: One statement whatever the batch size: the columns travel as arrays, so the text never changes and psycopg
#: prepares it once per connection (a VALUES list per batch size would be parsed and planned every time).
#: `received_at` and `next_attempt_at` are the bot's clock, the one the delivery worker claims by: a webhook
#: stamped with the database's now() would wait (or jump the queue) whenever the two clocks disagree.
#: The arrays go in binary (`%b`): psycopg's text array dumper quotes and hex-escapes every body in Python, 6 ms
#: for a batch of 200 webhooks against 0.4 ms in binary — the largest single cost of the ingest route's profile.
#: The rows go in by event id (`ORDER BY 2`): two replicas storing the same redelivered events in batches of
#: different orders would otherwise each wait on the other's uncommitted index entry (a deadlock, answered 503).
_INSERT = """
    INSERT INTO pd_webhooks (webhook_id, event_id, event_type, incident_id, service_id, occurred_at, body, status,
                             reason, incident_key, received_at, next_attempt_at)
    SELECT w.*, r.at, r.at FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                                       %b::timestamptz[], %b::bytea[], %b::text[], %b::text[], %b::text[]) AS w,
                                (SELECT %s::timestamptz AS at) AS r
    ORDER BY 2
    ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING
    RETURNING event_id"""
#: A batch never grows past this (one statement, one WAL flush for all of them).
MAX_BATCH = 200


@dataclass
class _Pending:
    row: tuple[Any, ...]
    event_id: str | None
    stored: asyncio.Future[bool]


class WebhookStore:
    """Stores webhooks durably, many per round trip when they arrive together (group commit).

    Each webhook waits until the statement holding it has committed, then learns whether it was new: the 202 still
    comes only after the row is on disk. The first webhook after a quiet moment is written at once, alone; the ones
    that arrive while a write is in flight go together in the next INSERT … ON CONFLICT DO NOTHING (from arrays), one
    round trip and one WAL flush for all of them. So nothing waits for a timer, and under a burst the cost per
    webhook falls instead of the queue growing: one INSERT per webhook gave a third of a bare endpoint's
    throughput (docs/PERFORMANCE.md, "ingest"). When the statement fails, every webhook in it gets the error (and
    PagerDuty a 503, so it retries them all).
    """

    def __init__(self, bot: BotContext) -> None:
        self.bot = bot
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def store(
        self,
        body: bytes,
        webhook_id: str | None,
        event: WebhookEnvelope | None,
        status: str,
        reason: str | None,
    ) -> bool:
        """True when the event is new and now stored (as `status`, from `classify`); False when it was stored
        before (a redelivery).

        A caller cancelled while it waits (its client hung up) cancels only its own future: the write it is part
        of goes on for the others, and the writer skips answering a future nobody waits for any more."""
        if event is None:
            row: tuple[Any, ...] = (webhook_id, None, None, None, None, None, body, status, reason, None)
        else:
            row = (
                webhook_id,
                event.event_id,
                event.event_type,
                event.incident_id,
                event.service_id,
                event.occurred_at,
                body,
                status,
                reason,
                event.incident_key,
            )
        pending = _Pending(row, event.event_id if event else None, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="pagerduty-webhook-store")
        return await pending.stored

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                new = await self._insert(batch)
            except Exception as exc:
                for pending in batch:
                    if not pending.stored.done():
                        pending.stored.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutdown): nobody learns "stored", so nobody answers 202
                for pending in [*batch, *self._queue]:
                    pending.stored.cancel()  # a no-op on a future already cancelled
                raise
            for pending, stored in zip(batch, new, strict=True):
                if not pending.stored.done():
                    pending.stored.set_result(stored)

    async def _insert(self, batch: list[_Pending]) -> list[bool]:
        """Which webhooks of the batch were new. An event id stored before, or seen earlier in the same batch,
        is a redelivery; a webhook without an event id (malformed) is always kept."""
        columns = [list(values) for values in zip(*(pending.row for pending in batch), strict=True)]
        async with self.bot.storage.autocommit(timeout=2.0) as conn:
            cursor = await conn.execute(_INSERT, [*columns, self.bot.clock()])
            inserted = {row[0] for row in await cursor.fetchall() if row[0] is not None}
        claimed: set[str] = set()
        new = []
        for pending in batch:
            if pending.event_id is None:
                new.append(True)
            elif pending.event_id in inserted and pending.event_id not in claimed:
                claimed.add(pending.event_id)
                new.append(True)
            else:
                new.append(False)
        return new


ACCEPTED = Prebuilt.json(202, {"status": "accepted"})
DUPLICATE = Prebuilt.json(202, {"status": "duplicate"})
BAD_SIGNATURE = Prebuilt.json(401, {"error": "invalid signature"})
NO_SECRETS = Prebuilt.json(401, {"error": "webhook signing secrets are not configured"})
UNAVAILABLE = Prebuilt.json(503, {"error": "database unavailable, retry"})
TOO_LARGE = too_large(PAGERDUTY_BODY_LIMIT)


class WebhookRoute:
    """POST /pagerduty/webhook as a bare ASGI app, ahead of Starlette (bot/server.py dispatches to it).

    Read the body (at most PAGERDUTY_BODY_LIMIT), the two headers, verify, parse the envelope once, classify,
    store, answer one of the prebuilt responses; `count` gets every answer's status for the requests metric.
    Anything unexpected is counted as a 500 and raised to uvicorn, which answers 500 as Starlette did.
    """

    def __init__(
        self,
        bot: BotContext,
        webhooks: WebhookStore,
        on_stored: Callable[[], None],
        count: Callable[[int], None],
    ) -> None:
        self.bot = bot
        self.webhooks = webhooks
        self.on_stored = on_stored
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(scope, receive, PAGERDUTY_BODY_LIMIT)
            if body is None:
                return  # the client hung up before its body arrived: nobody to answer
            signature = webhook_id = None
            for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
                if name == b"x-pagerduty-signature" and signature is None:
                    signature = value.decode("latin-1")
                elif name == b"x-webhook-id" and webhook_id is None:
                    webhook_id = value.decode("latin-1")
            response = await self.ingest(body, signature, webhook_id)
        except BodyTooLarge:
            response = TOO_LARGE
        except Exception:
            self.count(500)
            raise
        self.count(response.status)
        await response.send(send)

    async def ingest(self, body: bytes, signature: str | None, webhook_id: str | None) -> Prebuilt:
        secrets = [secret.get_secret_value() for secret in self.bot.settings.pagerduty_webhook_secrets]
        if not secrets:
            log.warning("PagerDuty webhook refused: PAGERDUTY_WEBHOOK_SECRETS is not set")
            return NO_SECRETS
        if not verify_pagerduty_signature(secrets, body, signature):
            return BAD_SIGNATURE
        try:
            event: WebhookEnvelope | None = parse_envelope(body)
        except MalformedWebhook as exc:
            log.warning("malformed PagerDuty webhook stored raw", extra={"reason": str(exc)})
            event = None
        event = storable(event)
        status, reason = classify(event, self.bot.catalog)
        try:
            stored = await self.webhooks.store(body, webhook_id, event, status, reason)
        except (psycopg.Error, PoolTimeout, OSError):
            log.error(
                "PagerDuty webhook not stored: database unavailable; answering 503 so PagerDuty retries",
                exc_info=True,
            )
            return UNAVAILABLE
        if stored and status == "pending":  # only a pending row is work for the delivery worker
            self.on_stored()
        return ACCEPTED if stored else DUPLICATE
