"""`mira-bot serve --web-only` and `mira-bot worker` as an operator runs them: real processes, one Postgres, one
Redis, the recording Slack server, and nothing shared in between (bot/cli.py, bot/wakeups.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from tests.faults.harness import SECRETS, WEB_ONLY, WORKER, FaultWorld, until
from tests.faults.incident_stream import CHANNELS, bot_messages, check_slack, incident_stream
from tests.harness import CHANNEL

MIRA_BOT = [sys.executable, "-m", "bot.cli"]


@pytest.fixture
async def world(
    tmp_path: Path, database_url: str, redis_url: str, slack: RecordingSlackServer
) -> AsyncIterator[FaultWorld]:
    async with RecordingPagerDutyServer(SECRETS.pagerduty_api_token) as pagerduty:
        processes = FaultWorld(
            tmp=tmp_path, database_url=database_url, redis_url=redis_url, slack=slack, pagerduty=pagerduty
        )
        try:
            yield processes
        finally:
            await processes.close()


def _counted(metrics: httpx.Response, sample: str) -> float:
    """The value of one sample of a /metrics page (0 when absent)."""
    for line in metrics.text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_help_shows_the_web_only_and_worker_modes() -> None:
    overview = subprocess.run([*MIRA_BOT, "--help"], capture_output=True, text=True, check=True).stdout
    assert "worker" in overview.split("positional arguments:")[1].split("options:")[0]
    assert "the background workers (PagerDuty delivery, scheduler, rollback steps)" in " ".join(
        overview.split()
    )
    serve = subprocess.run([*MIRA_BOT, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--web-only" in serve
    assert "run in `mira-bot worker` processes" in " ".join(serve.split())


async def test_web_only_stores_a_webhook_and_posts_nothing_until_a_worker_posts_it(world: FaultWorld) -> None:
    trigger, acknowledge = incident_stream(1, steps=2)
    web = await world.start_bot("web", args=WEB_ONLY)
    assert await web.webhook(trigger.body) == 202
    # The web side still answers users itself: /health's post-ack work runs in the web process.
    ack = await web.command(world.slack, "/health")
    assert ack.status_code == 200 and ack.json()["text"] == "Checking 4 services…"
    [answer] = await world.slack.wait_for("chat.postMessage", timeout=30, channel=CHANNEL)
    assert answer.text == "Health: 4 not configured"
    # Later than the webhook, the web process has answered in full; the event is still only stored.
    assert await world.sql("SELECT event_id, status FROM pd_webhooks") == [(trigger.event_id, "pending")]
    assert [m.text for channel in CHANNELS for m in bot_messages(world.slack, channel)] == []

    worker = await world.start_bot("worker", args=WORKER)

    async def delivered() -> bool:
        return await world.count("SELECT count(*) FROM pd_webhooks WHERE status <> 'delivered'") == 0

    await until(delivered, within=60, what="the stored trigger delivered by the worker")
    check_slack(world.slack, [trigger])
    # With both running, a webhook stored by the web process reaches Slack through the worker.
    assert await web.webhook(acknowledge.body) == 202
    await until(delivered, within=60, what="the acknowledgement delivered by the worker")
    check_slack(world.slack, [trigger, acknowledge], in_order=True)

    # The web process woke the worker through Postgres (NOTIFY → LISTEN), not left it to its poll.
    assert _counted(await web.http.get("/metrics"), 'mira_worker_wakeups_total{outcome="sent"}') >= 2
    assert _counted(await worker.http.get("/metrics"), 'mira_worker_wakeups_total{outcome="received"}') >= 1

    # The worker serves only the probes and the metrics: no Slack or PagerDuty route.
    assert (await worker.http.get("/healthz")).status_code == 200
    assert (await worker.http.get("/readyz")).json()["ready"] is True
    assert (await worker.http.post("/slack/events", content=b"x")).status_code == 404
    assert (await worker.http.post("/pagerduty/webhook", content=b"{}")).status_code == 404

    assert await web.terminate() == 0
    assert await worker.terminate() == 0
    assert "Traceback" not in world.logs()
