"""delivery: does the delivery worker keep up with ingest? Both measured in the same run, Slack not limiting.

`delivery_incidents` incidents × 5 events (bench/lifecycle.py: triggered … resolved, in order per incident) spread
round robin over `delivery_services` services, two channels each, are sent as fast as the bot answers
(`ingest_concurrency` in flight, an incident's next event only once its previous one was answered). The recording
Slack server answers at once and limits nothing; the bot is told Slack allows SLACK_POSTS_PER_SECOND per channel,
so that its own per-channel budget × the channels is far above the ingest rate (the bound is in the JSON): what is
left between the webhooks and Slack is the worker itself. Storm digests are off (STORM_THRESHOLD=0): every
incident gets its root and thread, every event its post.

* ingest throughput: the 202s per second of that load;
* delivery throughput: events represented in every channel of their incident (bench/slack_view.py) per second,
  from the first webhook sent until the last event is represented (or, when the run stops at
  `delivery_deadline_s` with events still missing, those represented by then over the whole time);
* their ratio, per round (each round a fresh bot): the target is delivery ≥ 0.5 × ingest.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.benchmarks.storm_drain import stored_and_failed
from bench.catalogs import spread_catalog, spread_services
from bench.core import BenchResult, Context, Row, lifecycle_spec
from bench.lifecycle import STEPS
from bench.processes import run_load
from bench.slack_view import SlackView
from bench.stats import Summary

NAME = "delivery"
RATIO_TARGET = 0.5
BOT_POSTS_PER_CHANNEL_S = 100.0  # what the bot is told Slack allows per channel: not the bound


async def _round(ctx: Context, index: int) -> dict[str, Any]:
    profile = ctx.profile
    ctx.slack.reset()  # no rate limit: Slack answering at once
    services = spread_services(profile.delivery_services)
    settings = {"STORM_THRESHOLD": "0", "SLACK_POSTS_PER_SECOND": f"{BOT_POSTS_PER_CHANNEL_S:g}"}
    bot, schema = await ctx.start_bot(f"{NAME}{index}", spread_catalog(profile.delivery_services), settings)
    number_start = 10_000 * (index + 1)
    prefix = f"PDL{index:02d}"
    incidents = profile.delivery_incidents
    numbers = range(number_start, number_start + incidents)
    view = SlackView(ctx.slack, {n: services[(n - number_start) % len(services)][2] for n in numbers})
    events = incidents * len(STEPS)
    try:
        spec = lifecycle_spec(
            bot.url,
            incidents=incidents,
            number_start=number_start,
            prefix=prefix,
            services=[[service_id, name] for service_id, name, _ in services],
            concurrency=profile.ingest_concurrency,
        )
        result = await run_load(spec, ctx.log_dir)
        first = min(row[3] for row in result["events"])
        while True:
            view.update()
            if (
                view.count_represented(len(STEPS)) == events
                or time.monotonic() - first > profile.delivery_deadline_s
            ):
                break
            await asyncio.sleep(0.2)
        stored, failed = await asyncio.to_thread(stored_and_failed, ctx.bot_database_url(schema), prefix)
    finally:
        await bot.stop()
    represented = view.count_represented(len(STEPS))
    times = [view.event_represented_at(n, k) for n in numbers for k in range(len(STEPS))]
    drained = represented == events
    elapsed = (max(t for t in times if t is not None) if drained else time.monotonic()) - first
    if not drained:
        elapsed = min(elapsed, profile.delivery_deadline_s + 1.0)
    delivery = represented / elapsed if elapsed > 0 else 0.0
    return {
        "events": events,
        "ingest_per_s": result["throughput"],
        "ingest_s": result["elapsed_s"],
        "delivery_per_s": delivery,
        "delivery_s": elapsed,
        "ratio": delivery / result["throughput"] if result["throughput"] else float("nan"),
        "drained": drained,
        "represented": represented,
        "stored": stored,
        "failed": failed,
        "posted_twice": view.posted_twice(len(STEPS)),
        "webhook_statuses": result["statuses"],
        "slack_calls": view.calls,
    }


async def run(ctx: Context) -> BenchResult:
    profile = ctx.profile
    rounds: list[dict[str, Any]] = []
    for index in range(profile.storm_rounds):
        rounds.append(await _round(ctx, index))
        r = rounds[-1]
        ctx.log(
            f"  delivery round {index + 1}: ingest {r['ingest_per_s']:.0f} events/s, delivery "
            f"{r['delivery_per_s']:.1f} events/s ({r['represented']} of {r['events']} represented)"
        )
    ctx.slack.reset()
    ratio = Summary.of([r["ratio"] for r in rounds])
    drained = all(r["drained"] for r in rounds)
    missing = sum(r["events"] - r["represented"] for r in rounds)
    channels = 2 * profile.delivery_services
    rows = [
        Row(
            NAME,
            "delivery throughput (events represented in Slack)"
            + ("" if drained else f" ({missing} events not represented at the stop)"),
            "events/s",
            Summary.of([r["delivery_per_s"] for r in rounds]),
            Summary.of([r["ingest_per_s"] for r in rounds]),
            "ingest, same run",
        ),
        Row(
            NAME,
            "delivery ÷ ingest, same run",
            "×",
            ratio,
            target=f"≥ {RATIO_TARGET}",
            met=ratio.median >= RATIO_TARGET,
        ),
        Row(
            NAME,
            "events lost / posted twice",
            "events",
            Summary.of([r["events"] - r["stored"] + r["failed"] + r["posted_twice"] for r in rounds]),
            target="0",
            met=all(
                r["events"] == r["stored"] and r["failed"] == 0 and r["posted_twice"] == 0 for r in rounds
            ),
        ),
    ]
    return BenchResult(
        NAME,
        rows,
        params={
            "incidents": profile.delivery_incidents,
            "events": profile.delivery_incidents * len(STEPS),
            "services": profile.delivery_services,
            "channels": channels,
            "concurrency": profile.ingest_concurrency,
            "rounds": profile.storm_rounds,
            "slack": "recording server answering at once, no rate limit",
            "bot_slack_posts_per_second_per_channel": BOT_POSTS_PER_CHANNEL_S,
            "slack_rate_bound_events_per_s": channels * BOT_POSTS_PER_CHANNEL_S / 2,
            "stopped_after_s": profile.delivery_deadline_s,
        },
        details={"rounds": rounds},
    )
