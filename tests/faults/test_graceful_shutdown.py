"""SIGTERM with work in flight: a slash command's post-ack work finishes and is answered, the process exits 0,
the outbox keeps what was not delivered (including a post Slack accepted but never answered), and the next start
delivers all of it once.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.faults.harness import WEB_ONLY, WORKER, FaultWorld, until
from tests.faults.incident_stream import check_slack, incident_stream
from tests.harness import fake_service


async def test_sigterm_finishes_in_flight_work_keeps_the_outbox_and_the_next_start_delivers_it(
    world: FaultWorld,
) -> None:
    probe_arrived, answer_probe = asyncio.Event(), asyncio.Event()

    async def slow_edge_function(request: Request) -> Response:
        probe_arrived.set()
        await asyncio.wait_for(answer_probe.wait(), timeout=1.5)  # within the probe's 2 s timeout
        return JSONResponse({"status": "ok"})

    async with fake_service({"/functions/v1/agent-chat": slow_edge_function}) as mira_url:
        bot = await world.start_bot("bot", mira_base_url=mira_url)
        events = incident_stream(10, steps=3)
        world.slack.accept_and_hang("chat.postMessage", count=1)  # a delivery in flight, Slack has it
        for event in events:
            assert await bot.webhook(event.body) == 202
        await world.slack.wait_held(1, timeout=30)
        assert (await bot.command(world.slack, "/health", "mira-copilot")).status_code == 200
        await asyncio.wait_for(probe_arrived.wait(), timeout=30)  # the command's work is in flight

        stopping = asyncio.create_task(bot.terminate(within=30))

        async def draining() -> bool:
            return "waiting for post-ack work to finish" in bot.log()

        await until(draining, within=30, what="the bot stopping and waiting for its post-ack work")
        answer_probe.set()  # only now does the in-flight work get what it waits for
        assert await stopping == 0  # a clean exit, not a crash
        world.slack.release_held()

    reports = world.slack.calls_to("chat.postMessage", channel="C0OPS0001")
    assert len(reports) == 1, "the /health in flight at SIGTERM was never answered"
    assert "Mira Co-Pilot" in str(reports[0].text)
    undelivered = await world.count("SELECT count(*) FROM pd_webhooks WHERE status = 'pending'")
    assert undelivered > 0  # kept in the outbox, not dropped

    await bot.start()

    async def delivered() -> bool:
        return await world.count("SELECT count(*) FROM pd_webhooks WHERE status <> 'delivered'") == 0

    await until(delivered, within=120, what="the next start delivering the outbox")
    check_slack(world.slack, events)


async def test_sigterm_to_a_split_web_and_worker_finishes_their_work_and_the_next_worker_delivers_it(
    world: FaultWorld,
) -> None:
    """The same SIGTERM, to `serve --web-only` and `worker`: the web process finishes the command it acknowledged,
    the worker stops with a post Slack holds and leaves the outbox as it was, both exit 0, and the next worker
    delivers everything once."""
    probe_arrived, answer_probe = asyncio.Event(), asyncio.Event()

    async def slow_edge_function(request: Request) -> Response:
        probe_arrived.set()
        await asyncio.wait_for(answer_probe.wait(), timeout=1.5)  # within the probe's 2 s timeout
        return JSONResponse({"status": "ok"})

    async with fake_service({"/functions/v1/agent-chat": slow_edge_function}) as mira_url:
        web, worker = await asyncio.gather(
            world.start_bot("web", args=WEB_ONLY, mira_base_url=mira_url),
            world.start_bot("worker", args=WORKER, mira_base_url=mira_url),
        )
        events = incident_stream(10, steps=3)
        world.slack.accept_and_hang("chat.postMessage", count=1)  # the worker's delivery in flight
        for event in events:
            assert await web.webhook(event.body) == 202
        await world.slack.wait_held(1, timeout=30)
        assert (await web.command(world.slack, "/health", "mira-copilot")).status_code == 200
        await asyncio.wait_for(
            probe_arrived.wait(), timeout=30
        )  # the command's work is in flight, on the web

        assert await worker.terminate(within=30) == 0
        stopping = asyncio.create_task(web.terminate(within=30))

        async def draining() -> bool:
            return "waiting for post-ack work to finish" in web.log()

        await until(draining, within=30, what="the web process stopping and waiting for its post-ack work")
        answer_probe.set()
        assert await stopping == 0
        world.slack.release_held()

    reports = world.slack.calls_to("chat.postMessage", channel="C0OPS0001")
    assert len(reports) == 1, "the /health in flight at SIGTERM was never answered"
    assert "Mira Co-Pilot" in str(reports[0].text)
    assert await world.count("SELECT count(*) FROM pd_webhooks WHERE status = 'pending'") > 0

    await worker.start()  # a worker alone drains the outbox: nothing of it waited for the web process

    async def delivered() -> bool:
        return await world.count("SELECT count(*) FROM pd_webhooks WHERE status <> 'delivered'") == 0

    await until(delivered, within=120, what="the next worker delivering the outbox")
    check_slack(world.slack, events)
