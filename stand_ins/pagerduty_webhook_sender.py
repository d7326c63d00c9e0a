"""The recording PagerDuty's webhook echo: every state change made through its APIs, sent as a signed V3 webhook.

Split from :mod:`stand_ins.recording_pagerduty` because delivering webhooks is a client's job inside the fake
server, with a lifecycle of its own (a sender task and an HTTP client, started and drained with the server).

**Webhook echo.**  With :meth:`send_webhooks_to` (or ``webhook_url``/``webhook_secrets``), every state change made
through the APIs -- acknowledge, resolve, note, Events API trigger/acknowledge/resolve -- makes the server POST a
signed V3 webhook to that URL, the way PagerDuty would: ``{"event": {"id", "event_type", "resource_type":
"incident", "occurred_at", "agent", "client": null, "data"}}`` with the incident data object of PagerDuty's V3
docs (``incident.annotated`` carries an ``incident_note``), ``X-PagerDuty-Signature: v1=<hmac>[,v1=…]`` (one per
secret, :func:`bot.signing.sign_pagerduty_webhook`), ``X-Webhook-Id``, ``X-Webhook-Subscription``,
``User-Agent: PagerDuty-Webhook/V3.0``.  The body is a snapshot taken at the change; deliveries go out one at a
time in order, after the API answer, and each is recorded in :attr:`webhooks_sent` with the receiver's status.
The agent is the user whose ``From`` email was used (a known user, e.g. an assignee, else one synthesized from the
address); for Events API changes it is the incident's service.  No redelivery: a failed delivery is only recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from bot.signing import sign_pagerduty_webhook
from stand_ins.recording_base import RecordingServer

if TYPE_CHECKING:
    from stand_ins.pagerduty_records import _Incident

WEBHOOK_USER_AGENT = "PagerDuty-Webhook/V3.0"
#: PagerDuty waits this long for a webhook receiver to answer.
WEBHOOK_TIMEOUT = 5.0


@dataclass
class WebhookDelivery:
    """One V3 webhook the server sent: the exact bytes and headers, and what the receiver answered.

    ``status`` is the receiver's HTTP status (``None`` when there was no answer; then ``error`` says why).
    """

    event_type: str
    event_id: str
    webhook_id: str
    incident_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None

    @property
    def event(self) -> dict[str, Any]:
        """The decoded ``event`` object of the envelope."""
        event: dict[str, Any] = json.loads(self.body)["event"]
        return event


def _now_ms(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def real_time() -> datetime:
    return datetime.now(UTC)


class PagerDutyWebhookSender(RecordingServer):
    """The webhook half of :class:`stand_ins.recording_pagerduty.RecordingPagerDutyServer`."""

    subscription_id: str
    #: PagerDuty's clock, which dates incidents, notes and webhooks: real time, or the console's when it sets it.
    clock: Callable[[], datetime]
    _webhook_url: str | None
    _webhook_secrets: list[str]
    _sender: asyncio.Task[None] | None
    _http: httpx.AsyncClient | None
    _queue: asyncio.Queue[WebhookDelivery] | None
    _webhooks: list[WebhookDelivery]

    # ------------------------------------------------------------------------------------------ lifecycle

    async def _starting(self) -> None:
        """Start the webhook sender alongside the server."""
        self._queue = asyncio.Queue()
        self._http = httpx.AsyncClient(trust_env=False, timeout=WEBHOOK_TIMEOUT)
        self._sender = asyncio.create_task(self._send_webhooks(), name="recording-pagerduty-webhooks")

    async def _stopping(self) -> None:
        """Deliver queued webhooks (bounded), then stop the sender; runs after hung requests are released."""
        if self._queue is not None and self._sender is not None and not self._sender.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), WEBHOOK_TIMEOUT + 1.0)
        await self._stop_sender()

    async def _stop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def send_webhooks_to(self, url: str | None, secrets: Iterable[str] = ()) -> None:
        """Echo every state change as a V3 webhook to ``url`` (``None`` stops), signed with each secret.

        Several secrets give several ``v1=`` signatures, as during a rotation; no secret sends it unsigned.
        """
        self._webhook_url = url
        self._webhook_secrets = list(secrets)

    @property
    def webhook_url(self) -> str | None:
        return self._webhook_url

    @property
    def webhooks_sent(self) -> list[WebhookDelivery]:
        """Every webhook delivered (or attempted), in order, with the receiver's status (a copy)."""
        return list(self._webhooks)

    async def wait_for_webhooks(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 -- a per-call deadline is the point of this helper
        *,
        event_type: str | None = None,
    ) -> list[WebhookDelivery]:
        """Wait until ``count`` webhooks (of ``event_type``, if given) have been sent and answered."""
        cond = self._require_cond()

        def matching() -> list[WebhookDelivery]:
            return [w for w in self._webhooks if event_type is None or w.event_type == event_type]

        try:
            async with asyncio.timeout(timeout), cond:
                await cond.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            sent = ", ".join(f"{w.event_type} [{w.status or w.error}]" for w in self._webhooks) or "none"
            where = self._webhook_url or "nowhere (send_webhooks_to was not called)"
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {count} webhook(s)"
                + (f" of type {event_type}" if event_type else "")
                + f" to {where}; sent: {sent}"
            ) from None
        return matching()

    # ------------------------------------------------------------------------------------------- webhooks

    def _emit(
        self, event_type: str, incident: _Incident, data: dict[str, Any], agent: dict[str, Any]
    ) -> None:
        """Queue the V3 webhook for a change that just happened (a snapshot: later changes do not alter it)."""
        url = self._webhook_url
        if not url or self._queue is None:
            return
        event_id = str(uuid.uuid4())
        envelope = {
            "event": {
                "id": event_id,
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": _now_ms(self.clock()),
                "agent": agent,
                "client": None,
                "data": data,
            }
        }
        body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
        webhook_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": WEBHOOK_USER_AGENT,
            "X-Webhook-Id": webhook_id,
            "X-Webhook-Subscription": self.subscription_id,
        }
        if self._webhook_secrets:
            headers.update(sign_pagerduty_webhook(self._webhook_secrets, body))
        self._queue.put_nowait(
            WebhookDelivery(event_type, event_id, webhook_id, incident.id, url, body, headers)
        )

    async def _send_webhooks(self) -> None:
        """Deliver queued webhooks one at a time, in order (PagerDuty orders deliveries per incident)."""
        assert self._queue is not None
        queue = self._queue
        while True:
            delivery = await queue.get()
            try:
                assert self._http is not None
                response = await self._http.post(
                    delivery.url, content=delivery.body, headers=delivery.headers
                )
                delivery.status = response.status_code
            except httpx.HTTPError as exc:
                delivery.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            except Exception as exc:  # a broken receiver must not stop later deliveries
                delivery.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            finally:
                cond = self._require_cond()
                async with cond:
                    self._webhooks.append(delivery)
                    cond.notify_all()
                queue.task_done()
