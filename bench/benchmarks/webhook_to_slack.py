"""webhook_to_slack: how long a new incident takes to reach Slack when nothing is queued.

`webhook_incidents` triggers, sent one at a time from the orchestrator: each waits until the previous incident's
roots have reached the recording Slack server in both its channels. Timed: from the 202 to the root's
chat.postMessage reaching the recording server (its arrival time there), for the first channel and for the
last. Nothing is queued, Slack's rate included: the incidents go round robin over `SERVICES` services (two
channels each), and an incident is held back until its channels' previous root is at least `CHANNEL_GAP_S` old,
longer than the bot's per-channel post budget (SLACK_POSTS_PER_SECOND, 0.8 by default), so no post waits for a
slot. Storm digests are off (STORM_THRESHOLD=0), and the recording server limits nothing.

The floor beside it: one direct chat.postMessage round trip to the recording server, timed from a process of its
own (bench/load.py `slack_posts`) — what any post costs before the bot adds its own work.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.catalogs import spread_catalog, spread_services
from bench.core import PAGERDUTY_SECRET, SLACK_BOT_TOKEN, BenchResult, Context, Row
from bench.lifecycle import lifecycle_requests
from bench.processes import run_load
from bench.slack_view import NUMBER, shown_text
from bench.stats import Summary, percentile

NAME = "webhook_to_slack"
P99_LIMIT_MS = 250.0
SERVICES = 20
CHANNEL_GAP_S = 1.5
ROOT_TIMEOUT_S = 30.0


class _Roots:
    """Arrival of the first accepted top-level chat.postMessage naming each incident, per channel id (read
    incrementally: each look reads only the calls that arrived since the last)."""

    def __init__(self, ctx: Context) -> None:
        self.slack = ctx.slack
        self.read = 0
        self.arrived: dict[tuple[int, str], float] = {}

    def look(self) -> None:
        calls = self.slack.calls
        for call in calls[self.read :]:
            channel = call.body.get("channel")
            if call.method != "chat.postMessage" or call.status != 200 or call.body.get("thread_ts"):
                continue
            if isinstance(channel, str):
                for number in {int(n) for n in NUMBER.findall(shown_text(call.body))}:
                    self.arrived.setdefault((number, self.slack.channel_id(channel)), call.at)
        self.read = len(calls)

    def of(self, number: int, channel_ids: set[str]) -> dict[str, float]:
        return {c: self.arrived[(number, c)] for c in channel_ids if (number, c) in self.arrived}


async def run(ctx: Context) -> BenchResult:
    profile = ctx.profile
    ctx.slack.reset()
    services = spread_services(SERVICES)
    bot, _schema = await ctx.start_bot(NAME, spread_catalog(SERVICES), {"STORM_THRESHOLD": "0"})
    number_start = 1
    spec: dict[str, Any] = {
        "incidents": profile.webhook_incidents,
        "number_start": number_start,
        "prefix": "PWS",
        "secret": PAGERDUTY_SECRET,
        "services": [[service_id, name] for service_id, name, _ in services],
    }
    triggers = lifecycle_requests(spec)[: profile.webhook_incidents]
    first_root: list[float] = []
    every_root: list[float] = []
    missing = 0
    last_root: dict[int, float] = {}
    roots = _Roots(ctx)
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=30.0) as client:
            for request in triggers:
                service = (request.number - number_start) % len(services)
                channel_ids = {ctx.slack.channel_id(c) for c in services[service][2]}
                wait = last_root.get(service, 0.0) + CHANNEL_GAP_S - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                response = await client.post(
                    bot.url + "/pagerduty/webhook", content=request.body, headers=request.headers
                )
                answered = time.monotonic()
                response.raise_for_status()
                arrivals: dict[str, float] = {}
                while len(arrivals) < len(channel_ids) and time.monotonic() - answered < ROOT_TIMEOUT_S:
                    await asyncio.sleep(0.002)
                    roots.look()
                    arrivals = roots.of(request.number, channel_ids)
                if len(arrivals) < len(channel_ids):
                    missing += 1
                    continue
                first_root.append(1000.0 * (min(arrivals.values()) - answered))
                every_root.append(1000.0 * (max(arrivals.values()) - answered))
                last_root[service] = max(arrivals.values())
    finally:
        await bot.stop()
    floor = await run_load(
        {
            "kind": "slack_posts",
            "api_url": ctx.slack.api_url,
            "token": SLACK_BOT_TOKEN,
            "channel": "#bench-floor",
            "requests": profile.webhook_incidents,
        },
        ctx.log_dir,
    )
    ctx.slack.reset()
    floor_ms = floor["latencies_ms"]
    p99 = percentile(first_root, 0.99)
    rows = [
        Row(
            NAME,
            "202 → root's chat.postMessage at Slack, p50",
            "ms",
            Summary.of([percentile(first_root, 0.5)]),
            Summary.of([percentile(floor_ms, 0.5)]),
            "one direct chat.postMessage round trip",
        ),
        Row(
            NAME,
            "202 → root's chat.postMessage at Slack, p99"
            + (f" ({missing} incidents without a root within {ROOT_TIMEOUT_S:g} s)" if missing else ""),
            "ms",
            Summary.of([p99]),
            Summary.of([percentile(floor_ms, 0.99)]),
            "one direct chat.postMessage round trip",
            f"≤ {P99_LIMIT_MS:g} ms",
            missing == 0 and p99 <= P99_LIMIT_MS,
        ),
        Row(
            NAME,
            "202 → root in both channels, p99",
            "ms",
            Summary.of([percentile(every_root, 0.99)]),
        ),
    ]
    ctx.log(f"  webhook → Slack: p50 {percentile(first_root, 0.5):.1f} ms, p99 {p99:.1f} ms")
    return BenchResult(
        NAME,
        rows,
        params={
            "incidents": profile.webhook_incidents,
            "one_at_a_time": True,
            "services": SERVICES,
            "channel_gap_s": CHANNEL_GAP_S,
            "floor_requests": profile.webhook_incidents,
        },
        details={
            "first_root_ms": [round(v, 3) for v in first_root],
            "every_root_ms": [round(v, 3) for v in every_root],
            "floor_ms": floor_ms,
            "missing": missing,
        },
    )
