"""memory: the bot's resident set size idle after start, then at the end of an ack load and of an ingest load.

One fresh `mira-bot serve` (the ack benchmark's catalog, PagerDuty webhooks accepted): its RSS is read from
/proc a few seconds after it answers /readyz (the median of several samples), then after one round of the ack
benchmark's load (and its post-ack work drained), then after one round of the ingest benchmark's load (and the
outbox drained). The peak (VmHWM) is reported too: "under load" is held to the worse of the two. There is no
baseline: the target is absolute.
"""

from __future__ import annotations

import asyncio
import functools
import statistics

import psycopg

from bench.benchmarks import ack, ingest
from bench.catalogs import ack_catalog
from bench.core import BenchResult, Context, Row, wait_until
from bench.environment import free_port
from bench.processes import ModuleServer, run_load
from bench.stats import Summary

NAME = "memory"
IDLE_LIMIT_MB = 150.0
LOAD_LIMIT_MB = 250.0
SETTLE_S = 3.0


def _pending(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM pd_webhooks WHERE status = 'pending'").fetchone()
        return int(row[0]) if row else 0


async def run(ctx: Context) -> BenchResult:
    profile = ctx.profile
    upstreams = await ModuleServer(
        "upstreams-memory", "bench.upstreams", ["--hung-port", str(free_port())], ctx.log_dir, {}
    ).start()
    bot, schema = await ctx.start_bot(
        NAME, ack_catalog(upstreams.url), {"STORM_THRESHOLD": str(profile.storm_threshold)}
    )
    database_url = ctx.bot_database_url(schema)
    try:
        await asyncio.sleep(SETTLE_S if profile.name == "full" else 1.0)
        samples = []
        for _ in range(5):
            samples.append(bot.rss()[0])
            await asyncio.sleep(0.2)
        idle = statistics.median(samples)
        ctx.log(f"  memory idle: {idle:.0f} MB")

        channel = "C0MEMORY1"
        await run_load(ack.load_spec(ctx, bot.url, channel), ctx.log_dir)
        await wait_until(functools.partial(ack.all_answered, ctx, channel), timeout=120.0, interval=0.2)
        after_ack, peak_ack = bot.rss()
        ctx.log(f"  memory after ack load: {after_ack:.0f} MB (peak {peak_ack:.0f} MB)")

        await run_load(ingest.load_spec(ctx, bot.url, "PMEM", 1), ctx.log_dir)

        async def outbox_empty() -> bool:
            return await asyncio.to_thread(_pending, database_url) == 0

        await wait_until(outbox_empty, timeout=profile.drain_timeout_s, interval=0.5)
        after_ingest, peak = bot.rss()
        ctx.log(f"  memory after ingest load: {after_ingest:.0f} MB (peak {peak:.0f} MB)")
    finally:
        await bot.stop()
        await upstreams.stop()
    worst = max(after_ack, after_ingest, peak)
    rows = [
        Row(
            NAME,
            "RSS idle",
            "MB",
            Summary.of(samples),
            target=f"≤ {IDLE_LIMIT_MB:g} MB",
            met=idle <= IDLE_LIMIT_MB,
        ),
        Row(
            NAME,
            "RSS after the ack load",
            "MB",
            Summary.of([after_ack]),
            target=f"≤ {LOAD_LIMIT_MB:g} MB",
            met=after_ack <= LOAD_LIMIT_MB,
        ),
        Row(
            NAME,
            "RSS after the ingest load",
            "MB",
            Summary.of([after_ingest]),
            target=f"≤ {LOAD_LIMIT_MB:g} MB",
            met=after_ingest <= LOAD_LIMIT_MB,
        ),
        Row(
            NAME,
            "peak RSS (VmHWM)",
            "MB",
            Summary.of([peak]),
            target=f"≤ {LOAD_LIMIT_MB:g} MB",
            met=worst <= LOAD_LIMIT_MB,
        ),
    ]
    return BenchResult(
        NAME,
        rows,
        params={
            "ack_requests": profile.ack_requests,
            "ack_concurrency": profile.ack_concurrency,
            "ingest_requests": profile.ingest_requests,
            "ingest_concurrency": profile.ingest_concurrency,
        },
        details={"idle_samples_mb": [round(s, 1) for s in samples]},
    )
