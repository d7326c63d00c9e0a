"""A delivery pass that outlives its lease, and a second worker delivering the same events beside it: every post
still once. Two real runtimes on one Postgres, one Redis and the recording Slack server; the clocks are injected
(each pass's `now`, and the first worker's monotonic source stepping to say how long its pass has been running).

This is the race behind `tests/faults/test_replicas.py` posting a post-mortem draft twice now and then: worker A's
pass, several seconds along, claims a post; worker B, whose pass began after A's lease ended, finds the claim
without a `ts`. When the claim is stamped with A's pass start it already looks older than STALE_CLAIM_SECONDS,
so B looks the post up (Slack has not stored it yet), takes the claim over and posts it too. A pass now renews
its lease and its incidents' locks while it runs (bot/delivery_lease.py): B finds the events still A's.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from bot.settings import Settings
from stand_ins.recording_slack import RecordingSlackServer
from tests.faults.incident_stream import check_slack, incident_stream
from tests.harness import BotUnderTest
from tests.test_delivery_batches import send_events
from tests.test_incidents import SECRET_NEW

LEASE = 1.0  # seconds: the events' lease and the incident's Redis lock, which B must outwait for real
STALE = 4.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)],
            "storm_threshold": 0,
            "slack_posts_per_second": 1000.0,
            "delivery_lease_seconds": LEASE,
            "stale_claim_seconds": STALE,
        }
    )


class PassRunningFor:
    """A monotonic source for worker A: the pass's first reading (its start) is 0, every later one `seconds`:
    by the time it delivers an event, its pass has been running that long."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.read = seconds, False

    def __call__(self) -> float:
        if not self.read:
            self.read = True
            return 0.0
        return self.seconds


def _key(body: dict[str, Any]) -> str:
    """The `key` a post's metadata names (an event id, `postmortem:<incident>`…)."""
    return str(((body.get("metadata") or {}).get("event_payload") or {}).get("key", ""))


async def test_a_post_claimed_late_in_a_pass_that_outlived_its_lease_is_not_posted_again_by_another_worker(
    replicas: tuple[BotUnderTest, BotUnderTest], slack: RecordingSlackServer
) -> None:
    a, b = replicas
    start = datetime.now(UTC) - timedelta(minutes=3)
    stream = incident_stream(1, start=start)
    trigger, resolve = stream[0], stream[-1]
    await send_events(a, [trigger])
    t0 = datetime.now(UTC) + timedelta(seconds=1)
    assert await a.runtime.delivery.run_once(t0) == 1  # the roots, in both channels
    await send_events(a, [resolve])

    # A's pass starts at t1 and reaches the resolve 5 s later; its first post (the resolve's reply in the alerts
    # thread) reaches Slack, which stores it only when released.
    t1 = t0 + timedelta(seconds=10)
    a.runtime.bot.monotonic = PassRunningFor(5.0)
    slack.apply_late("chat.postMessage", after=60.0)
    first = asyncio.create_task(a.runtime.delivery.run_once(t1))
    await slack.wait_held(1)
    # A's Redis lock on the incident, as long as the lease, runs out for real.
    await asyncio.sleep(LEASE + 0.5)

    # B's pass begins 6 s after A's: A's lease is over, so B claims the resolve and delivers it beside A. A's
    # claim on the reply was made a second ago, not 6 s ago: B must leave it to A.
    await b.runtime.delivery.run_once(t1 + timedelta(seconds=6))
    slack.release_held()
    await first
    for n in range(1, 10):  # both drain what is left, later on
        later = t1 + timedelta(minutes=n)
        counts = await asyncio.gather(a.runtime.delivery.run_once(later), b.runtime.delivery.run_once(later))
        if sum(counts) == 0:
            break
    await a.settle()
    await b.settle()
    check_slack(slack, [trigger, resolve])
    keys = [_key(call.body) for call in slack.calls_to("chat.postMessage")]
    drafts = [key for key in keys if key.startswith("postmortem:")]
    assert len(drafts) == 1, f"{len(drafts)} post-mortem drafts sent to Slack"
