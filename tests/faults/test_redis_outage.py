"""Redis stops under two running replicas and comes back: slash commands still answer, webhooks are still
stored and delivered, scheduled posts (the SLA nudges) go out once — Postgres claims, not Redis locks, are what
make effects happen once — and the Redis-backed behaviour (the double-click lock) works again once it returns.

The Redis is an embedded Valkey of the test's own, really stopped and started on the same port.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.embedded import EmbeddedServers
from tests.faults.harness import FaultWorld, until
from tests.faults.incident_stream import ALICE, CHANNELS, check_slack, incident_stream, roots_by_incident


@pytest.fixture
async def world_redis_url(embedded: EmbeddedServers) -> str:
    return await asyncio.to_thread(embedded.start_redis)


async def test_redis_outage_keeps_commands_ingest_and_once_only_posts_then_recovers(
    world: FaultWorld, embedded: EmbeddedServers
) -> None:
    replicas = await asyncio.gather(world.start_bot("replica-a"), world.start_bot("replica-b"))
    await asyncio.to_thread(embedded.stop_redis)

    for replica in replicas:
        assert (await replica.command(world.slack, "/health", "mira-copilot")).status_code == 200

    async def both_answered() -> bool:
        return len(world.slack.calls_to("chat.postMessage", channel="C0OPS0001")) >= 2

    await until(both_answered, within=60, what="/health answered by both replicas without Redis")

    # Triggered 20 minutes ago and never acknowledged: each is owed one 15-minute nudge, by either replica.
    overdue = incident_stream(10, steps=1, first=100, start=datetime.now(UTC) - timedelta(minutes=20))
    lifecycle = incident_stream(10, steps=3)
    for event in overdue:
        statuses = await asyncio.gather(*(replica.webhook(event.body) for replica in replicas))
        assert statuses == [202, 202]  # stored (once) although Redis is down
    for n in range(10):
        # An incident's events at once, alternately to each replica: without Redis's incident lock the two
        # replicas deliver them concurrently, and only the Postgres claims keep one root and one reply each.
        burst = [event for event in lifecycle if event.incident_id == lifecycle[n].incident_id]
        statuses = await asyncio.gather(*(replicas[i % 2].webhook(e.body) for i, e in enumerate(burst)))
        assert statuses == [202] * len(burst)
    for event in lifecycle:  # and each redelivered to the other replica: answered, stored once
        assert await replicas[1].webhook(event.body) == 202

    async def settled() -> bool:
        pending = await world.count("SELECT count(*) FROM pd_webhooks WHERE status <> 'delivered'")
        open_timers = await world.count(
            "SELECT count(*) FROM incident_timers WHERE kind = 'ack_nudge' AND due_at <= now() "
            "AND done_at IS NULL AND cancelled_at IS NULL"
        )
        return pending == 0 and open_timers == 0

    await until(settled, within=120, what="events delivered and due nudges fired without Redis")
    check_slack(world.slack, lifecycle)
    for channel in CHANNELS:
        roots = roots_by_incident(world.slack, channel)
        for event in overdue:
            [root] = roots[event.incident_id]
            nudges = [m for m in world.slack.thread(channel, root.ts) if (m.text or "").startswith(":bell:")]
            assert len(nudges) == 1, f"{channel}: {event.incident_id}: {len(nudges)} nudges"
    for replica in replicas:
        assert replica.running and replica.starts == 1

    # Redis returns: readiness recovers and the double-click lock (Redis) is in force again.
    await asyncio.to_thread(embedded.start_redis)

    async def ready() -> bool:
        answers = await asyncio.gather(*(replica.http.get("/readyz") for replica in replicas))
        return all(answer.status_code == 200 for answer in answers)

    await until(ready, within=30, what="both replicas ready again once Redis is back")
    clicked = overdue[0]
    world.pagerduty.add_incident(
        clicked.incident_id,
        1100,
        "Edge function 503s",
        "PSVC001",
        assignees=[ALICE],
        service_name="Mira Co-Pilot",
    )
    [root] = roots_by_incident(world.slack, CHANNELS[0])[clicked.incident_id]
    answers = await asyncio.gather(
        *(
            replica.click(
                world.slack, root.channel, root.ts, "incident_ack", clicked.incident_id, user="U0ALICE01"
            )
            for replica in replicas
        )
    )
    assert [a.status_code for a in answers] == [200, 200]

    async def told_both() -> bool:
        return len(world.slack.calls_to("response_url")) >= 2

    await until(told_both, within=30, what="both clicks answered")
    puts = [c for c in world.pagerduty.calls_to("PUT") if c.path == f"/incidents/{clicked.incident_id}"]
    assert len(puts) == 1
