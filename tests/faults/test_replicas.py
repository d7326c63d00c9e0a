"""Two replicas behind one Postgres and one Redis: webhooks and clicks spread across both, effects once.

The `replicas` fixture starts two `mira-bot serve` processes on the same database and Redis — or, split, two
`mira-bot serve --web-only` processes taking the requests and two `mira-bot worker` processes doing the delivery,
coordinated only through Postgres and Redis as an operator scaling them apart would run them; every test here
runs both ways, unchanged. `both` sends one request to each (web) replica at the same moment (a redelivery or a Slack retry landing on the other replica, a double click
served by two processes). Cases for other once-only effects — one rollback run per confirmation, one weekly
handoff post — start from the same fixture: confirm through `both(...)` and count the runs or posts with
`world.sql`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.faults.harness import SECRETS, WEB_ONLY, WORKER, BotProcess, FaultWorld, until
from tests.faults.incident_stream import ALICE, CHANNELS, check_slack, incident_stream, roots_by_incident

ACK_ACTION = "incident_ack"


@pytest.fixture(params=["all-in-one", "web-and-workers"])
async def replicas(request: pytest.FixtureRequest, world: FaultWorld) -> tuple[BotProcess, BotProcess]:
    """The two processes requests go to: all-in-one replicas, or the web halves of a split deployment (whose
    two workers are started beside them and receive no request at all)."""
    if request.param == "all-in-one":
        first, second = await asyncio.gather(world.start_bot("replica-a"), world.start_bot("replica-b"))
        return first, second
    first, second, *_workers = await asyncio.gather(
        world.start_bot("web-a", args=WEB_ONLY),
        world.start_bot("web-b", args=WEB_ONLY),
        world.start_bot("worker-a", args=WORKER),
        world.start_bot("worker-b", args=WORKER),
    )
    return first, second


async def both(
    replicas: tuple[BotProcess, BotProcess], send: Callable[[BotProcess], Awaitable[Any]]
) -> list[Any]:
    """The same request to both replicas at once."""
    return list(await asyncio.gather(*(send(replica) for replica in replicas)))


async def test_webhooks_and_clicks_spread_over_two_replicas_take_effect_once(
    world: FaultWorld, replicas: tuple[BotProcess, BotProcess]
) -> None:
    events = incident_stream(40)
    statuses = []
    for start in range(0, len(events), 8):
        batch = events[start : start + 8]  # every webhook reaches both replicas, as redeliveries would
        results = await asyncio.gather(*(both(replicas, lambda bot, e=e: bot.webhook(e.body)) for e in batch))
        statuses += [status for pair in results for status in pair]
    assert set(statuses) == {202}

    async def delivered() -> bool:
        return await world.count("SELECT count(*) FROM pd_webhooks WHERE status <> 'delivered'") == 0

    await until(delivered, within=120, what="all events delivered by the two replicas")
    assert await world.count("SELECT count(*) FROM pd_webhooks") == len(events)
    check_slack(world.slack, events)

    # Clicks: incidents that are only triggered, each Acknowledge pressed on both replicas at the same moment.
    clicked = incident_stream(10, steps=1, first=500)
    for n, event in enumerate(clicked):
        world.pagerduty.add_incident(
            event.incident_id,
            1500 + n,
            "Edge function 503s",
            "PSVC001",
            assignees=[ALICE],
            service_name="Mira Co-Pilot",
        )
    world.pagerduty.send_webhooks_to(
        f"{replicas[0].url}/pagerduty/webhook", [SECRETS.pagerduty_webhook_secret]
    )
    world.slack.add_user("U0ALICE01", "alice@example.com", "Alice Example")
    for event in clicked:
        assert await replicas[1].webhook(event.body) == 202
    await until(delivered, within=60, what="the triggers delivered")
    roots = roots_by_incident(world.slack, CHANNELS[0])
    for event in clicked:
        [root] = roots[event.incident_id]
        answers = await both(
            replicas,
            lambda bot, r=root, e=event: bot.click(
                world.slack, r.channel, r.ts, ACK_ACTION, e.incident_id, user="U0ALICE01"
            ),
        )
        assert [a.status_code for a in answers] == [200, 200]

    async def echoed() -> bool:
        return len(world.pagerduty.webhooks_sent) >= len(clicked)

    await until(echoed, within=60, what="PagerDuty's acknowledge webhooks")
    await until(delivered, within=60, what="the acknowledgements delivered")
    for event in clicked:
        puts = [c for c in world.pagerduty.calls_to("PUT") if c.path == f"/incidents/{event.incident_id}"]
        assert len(puts) == 1, (
            f"{event.incident_id}: {len(puts)} acknowledge calls to PagerDuty for one click"
        )
        for channel in CHANNELS:
            [root] = roots_by_incident(world.slack, channel)[event.incident_id]
            acks = [m.text for m in world.slack.thread(channel, root.ts) if "Acknowledged" in (m.text or "")]
            assert acks == [":eyes: Acknowledged by Alice Example"], f"{channel}: {event.incident_id}: {acks}"
