"""split: one all-in-one `mira-bot serve` beside one `mira-bot serve --web-only` + one `mira-bot worker`.

On the same machine, the same catalog and the same loads, alternating which topology goes first each round:

* ack throughput: the ack benchmark's signed `/health` commands (`ack_requests`, `ack_concurrency` in flight), the
  post-ack work included (waited for before the next load);
* ingest throughput: the ingest benchmark's signed triggers for the catalog's service (`ingest_requests`), the
  delivery worker turning them into roots and a storm digest meanwhile — in the web process's event loop when all
  in one, in the worker's process when split;
* storm drain: `split_incidents` incidents × 5 events at `drain_rate`/s, Slack enforcing 1 post/s/channel
  (bench/benchmarks/storm_drain.py), stopped after `split_deadline_s`.

The split is a separate deployment shape, not a target: the rows show split beside all-in-one with no verdict.
When this checkout's CLI has no `mira-bot worker` (or no `serve --web-only`), the benchmark says so and measures
nothing.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from bench.benchmarks import ack, ingest, storm_drain
from bench.catalogs import ack_catalog
from bench.core import BenchResult, Context, Row, per_round_ratio, wait_until
from bench.environment import free_port
from bench.processes import ModuleServer, run_load, split_missing
from bench.stats import Summary

NAME = "split"
TOPOLOGIES = ("all_in_one", "split")


async def _loads(ctx: Context, upstream_url: str, topology: str, index: int) -> dict[str, float]:
    """Ack and ingest throughput on a fresh bot of that topology."""
    profile = ctx.profile
    ctx.slack.reset()
    bot, _schema = await ctx.start_bot(
        f"{NAME}-{topology}{index}",
        ack_catalog(upstream_url),
        {"STORM_THRESHOLD": str(profile.storm_threshold)},
        split=topology == "split",
    )
    try:
        channel = f"C0SPL{index:02d}{TOPOLOGIES.index(topology)}"
        acked = await run_load(ack.load_spec(ctx, bot.url, channel), ctx.log_dir)
        await wait_until(functools.partial(ack.all_answered, ctx, channel), timeout=120.0, interval=0.2)
        prefix = f"PSP{index:02d}{TOPOLOGIES.index(topology)}"
        spec = ingest.load_spec(ctx, bot.url, prefix, index * 100_000 + 1)
        ingested = await run_load(spec, ctx.log_dir)
    finally:
        await bot.stop()
    return {"ack_per_s": acked["throughput"], "ingest_per_s": ingested["throughput"]}


async def run(ctx: Context) -> BenchResult:
    missing = await asyncio.to_thread(split_missing)
    if missing is not None:
        ctx.log(f"  split: skipped, {missing}")
        return BenchResult(NAME, [], params={}, skipped=missing)
    profile = ctx.profile
    figures: dict[str, list[dict[str, float]]] = {t: [] for t in TOPOLOGIES}
    drains: dict[str, dict[str, Any]] = {}
    upstreams = await ModuleServer(
        "upstreams-split", "bench.upstreams", ["--hung-port", str(free_port())], ctx.log_dir, {}
    ).start()
    try:
        for index in range(profile.storm_rounds):
            for topology in TOPOLOGIES if index % 2 == 0 else TOPOLOGIES[::-1]:
                figures[topology].append(await _loads(ctx, upstreams.url, topology, index))
                ctx.log(f"  split round {index + 1} {topology}: {figures[topology][-1]}")
    finally:
        await upstreams.stop()
    for topology in TOPOLOGIES:
        start = functools.partial(ctx.start_bot, split=topology == "split")
        drains[topology] = await storm_drain.drain_round(
            ctx,
            f"{NAME}-drain-{topology}",
            start,
            incidents=profile.split_incidents,
            deadline_s=profile.split_deadline_s,
            number_start=200_000 + 10_000 * TOPOLOGIES.index(topology),
        )
        ctx.log(f"  split storm {topology}: {storm_drain.drain_label(drains[topology])}")
    ctx.slack.reset()

    def summary(topology: str, key: str) -> Summary:
        return Summary.of([r[key] for r in figures[topology]])

    def ratio(key: str) -> Summary:
        return per_round_ratio([r[key] for r in figures["split"]], [r[key] for r in figures["all_in_one"]])

    def drained(topology: str) -> str:
        return storm_drain.drain_label(drains[topology])

    rows = [
        Row(
            NAME,
            "ack throughput, split",
            "req/s",
            summary("split", "ack_per_s"),
            summary("all_in_one", "ack_per_s"),
            "all in one",
        ),
        Row(NAME, "ack throughput, split ÷ all in one", "×", ratio("ack_per_s")),
        Row(
            NAME,
            "ingest throughput, split",
            "req/s",
            summary("split", "ingest_per_s"),
            summary("all_in_one", "ingest_per_s"),
            "all in one",
        ),
        Row(NAME, "ingest throughput, split ÷ all in one", "×", ratio("ingest_per_s")),
        Row(
            NAME,
            f"storm drain, split ({drained('split')}; all in one {drained('all_in_one')})",
            "s",
            Summary.of([drains["split"]["drain_s"]]),
            Summary.of([drains["all_in_one"]["drain_s"]]),
            "all in one",
        ),
        Row(
            NAME,
            "storm: worst incident's latest state shown, split",
            "s after its last event",
            Summary.of([drains["split"]["worst_visible_wait_s"]]),
            Summary.of([drains["all_in_one"]["worst_visible_wait_s"]]),
            "all in one",
        ),
    ]
    return BenchResult(
        NAME,
        rows,
        params={
            "topologies": "1 × `mira-bot serve` vs 1 × `serve --web-only` + 1 × `worker`",
            "ack_requests": profile.ack_requests,
            "ingest_requests": profile.ingest_requests,
            "rounds": profile.storm_rounds,
            "storm_incidents": profile.split_incidents,
            "storm_stopped_after_s": profile.split_deadline_s,
        },
        details={"rounds": figures, "drains": drains},
    )
