"""POST /pagerduty/webhook: verify the signature, store the event durably, answer 202. Nothing else.

PagerDuty waits 5 s for an answer, retries what was not acknowledged for up to 48 h, and disables a subscription
after repeated 4xx answers. So: a bad signature is 401 and stores nothing; anything signed is stored (unknown
event types, `service.*` events, services not in the catalog and even malformed JSON are kept, marked so the
delivery worker skips them) and answered 202; a redelivery (same `event.id`) is answered 202 with no second row;
and when Postgres cannot take the row the answer is 503, so PagerDuty retries instead of believing us. Slack is
never called here: the delivery worker drains the stored events (bot/delivery.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.catalog import Catalog
from bot.context import BotContext
from bot.signing import verify_pagerduty_signature
from integrations.pagerduty_webhooks import MalformedWebhook, WebhookEvent, parse_webhook

log = logging.getLogger(__name__)

PAGERDUTY_BODY_LIMIT = 256 * 1024  # PagerDuty drops larger payloads itself


def classify(event: WebhookEvent | None, catalog: Catalog) -> tuple[str, str | None]:
    """(status, reason): `pending` for the worker, or why it is only kept."""
    if event is None:
        return "malformed", "not a PagerDuty V3 envelope"
    if not event.event_type.startswith("incident.") or event.incident_id is None:
        return "ignored", f"{event.event_type} events are not posted"
    snapshot = event.incident
    service_name = snapshot.service_name if snapshot else None
    if (event.service_id or service_name) and catalog.for_pagerduty(event.service_id, service_name) is None:
        return "ignored", f"service {service_name or event.service_id} is not in the catalog"
    return "pending", None


async def store(bot: BotContext, body: bytes, webhook_id: str | None, event: WebhookEvent | None) -> bool:
    """Insert the delivery; False when the event was already stored (a redelivery)."""
    status, reason = classify(event, bot.catalog)
    async with bot.storage.autocommit(timeout=2.0) as conn:
        cursor = await conn.execute(
            """INSERT INTO pd_webhooks (webhook_id, event_id, event_type, incident_id, service_id, occurred_at,
                                        body, status, reason)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING""",
            (
                webhook_id,
                event.event_id if event else None,
                event.event_type if event else None,
                event.incident_id if event else None,
                event.service_id if event else None,
                event.occurred_at if event else None,
                body,
                status,
                reason,
            ),
        )
        return cursor.rowcount == 1


async def ingest(request: Request, bot: BotContext, on_stored: Callable[[], None]) -> Response:
    body = await request.body()  # bounded by the BodyLimit middleware
    secrets = [secret.get_secret_value() for secret in bot.settings.pagerduty_webhook_secrets]
    if not secrets:
        log.warning("PagerDuty webhook refused: PAGERDUTY_WEBHOOK_SECRETS is not set")
        return JSONResponse({"error": "webhook signing secrets are not configured"}, status_code=401)
    if not verify_pagerduty_signature(secrets, body, request.headers.get("x-pagerduty-signature")):
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    try:
        event: WebhookEvent | None = parse_webhook(body)
    except MalformedWebhook as exc:
        log.warning("malformed PagerDuty webhook stored raw", extra={"reason": str(exc)})
        event = None
    try:
        stored = await store(bot, body, request.headers.get("x-webhook-id"), event)
    except (psycopg.Error, PoolTimeout, OSError):
        log.error(
            "PagerDuty webhook not stored: database unavailable; answering 503 so PagerDuty retries",
            exc_info=True,
        )
        return JSONResponse({"error": "database unavailable, retry"}, status_code=503)
    if stored:
        on_stored()
    return JSONResponse({"status": "accepted" if stored else "duplicate"}, status_code=202)
