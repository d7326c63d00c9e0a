"""ingest: signed PagerDuty V3 webhooks, stored and deduped, against a bare Starlette endpoint answering 202.

Every tenth request is a redelivery of an earlier event (same id, same bytes), as PagerDuty sends when our 2xx was
late. The events are `incident.triggered` for a catalog service, so the delivery worker runs beside the route as
in production (turning them into roots and a storm digest, against the recording Slack server); between rounds the
orchestrator waits until it has drained the outbox, and reports how long that took. A third side in each round
sends the same load for a service outside the catalog: stored (as `ignored`) exactly the same way, but the worker
has nothing to deliver, so it shows the route's own cost. At the end the rows are counted: every distinct event
sent must be stored exactly once ("0 lost").
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from bench.catalogs import DISPLAY_NAME, PAGERDUTY_SERVICE_ID, incidents_catalog
from bench.core import PAGERDUTY_SECRET, BenchResult, Context, Row, per_round_ratio, wait_until
from bench.processes import ModuleServer, run_load
from bench.stats import Summary, percentile

NAME = "ingest"
THROUGHPUT_RATIO = 0.7
P99_LIMIT_MS = 100.0
DUPLICATE_EVERY = 10


def load_spec(ctx: Context, url: str, prefix: str, number_start: int, *, ours: bool = True) -> dict[str, Any]:
    """Triggers for the catalog's service (`ours`), or for a service outside it, which the bot stores as
    `ignored`: the route's own cost, without the delivery worker turning events into Slack messages meanwhile."""
    return {
        "kind": "pagerduty_webhooks",
        "url": url + "/pagerduty/webhook",
        "secret": PAGERDUTY_SECRET,
        "requests": ctx.profile.ingest_requests,
        "concurrency": ctx.profile.ingest_concurrency,
        "duplicate_every": DUPLICATE_EVERY,
        "prefix": prefix,
        "number_start": number_start,
        "service_id": PAGERDUTY_SERVICE_ID if ours else "PELSEWHERE",
        "service_name": DISPLAY_NAME if ours else "Not In The Catalog",
    }


def _count(database_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


async def run(ctx: Context) -> BenchResult:
    profile = ctx.profile
    bot, schema = await ctx.start_bot(
        NAME, incidents_catalog(), {"STORM_THRESHOLD": str(profile.storm_threshold)}
    )
    database_url = ctx.bot_database_url(schema)
    baseline = await ModuleServer(
        "baseline-starlette", "bench.baselines", ["starlette"], ctx.log_dir, {}
    ).start()
    sides = ("bot", "bot_route", "baseline")
    figures: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    statuses: dict[str, list[dict[str, int]]] = {side: [] for side in sides}
    sent_distinct = 0
    drains: list[float] = []
    try:
        for index in range(profile.rounds):
            for side in sides[index % 3 :] + sides[: index % 3]:  # each side first in turn
                server = baseline if side == "baseline" else bot
                prefix = f"PIN{index:02d}{sides.index(side)}"
                spec = load_spec(ctx, server.url, prefix, index * 100_000 + 1, ours=side != "bot_route")
                result = await run_load(spec, ctx.log_dir)
                latencies = result["latencies_ms"]
                figures[side].append(
                    {
                        "p50_ms": percentile(latencies, 0.5),
                        "p99_ms": percentile(latencies, 0.99),
                        "throughput": result["throughput"],
                        "non_2xx": float(result["requests"] - len(latencies)),
                    }
                )
                statuses[side].append(result["statuses"])
                ctx.log(
                    f"  ingest round {index + 1} {side}: p99 {figures[side][-1]['p99_ms']:.1f} ms, "
                    f"{result['throughput']:.0f} req/s"
                )
                if side != "baseline":
                    sent_distinct += result["distinct_events"]
                if side == "bot":

                    async def outbox_empty() -> bool:
                        pending = "SELECT count(*) FROM pd_webhooks WHERE status = 'pending'"
                        return await asyncio.to_thread(_count, database_url, pending) == 0

                    drained = await wait_until(outbox_empty, timeout=profile.drain_timeout_s, interval=0.5)
                    drains.append(drained if drained is not None else float("nan"))
        rss, peak = bot.rss()
        stored = await asyncio.to_thread(
            _count,
            database_url,
            "SELECT count(DISTINCT event_id) FROM pd_webhooks WHERE event_id LIKE 'PIN%%'",
        )
        rows_total = await asyncio.to_thread(
            _count, database_url, "SELECT count(*) FROM pd_webhooks WHERE event_id LIKE 'PIN%%'"
        )
        failed = await asyncio.to_thread(
            _count,
            database_url,
            "SELECT count(*) FROM pd_webhooks WHERE status = 'failed'",
        )
    finally:
        await baseline.stop()
        await bot.stop()

    def summary(side: str, key: str) -> Summary:
        return Summary.of([round_[key] for round_ in figures[side]])

    bot_tp, base_tp = summary("bot", "throughput"), summary("baseline", "throughput")
    bot_p99 = summary("bot", "p99_ms")
    tp_ratio = per_round_ratio(
        [r["throughput"] for r in figures["bot"]], [r["throughput"] for r in figures["baseline"]]
    )
    lost = sent_distinct - stored
    doubled = rows_total - stored
    rows = [
        Row(NAME, "p50", "ms", summary("bot", "p50_ms"), summary("baseline", "p50_ms"), "bare Starlette"),
        Row(
            NAME,
            "p99",
            "ms",
            bot_p99,
            summary("baseline", "p99_ms"),
            "bare Starlette",
            f"≤ {P99_LIMIT_MS:g} ms",
            bot_p99.median <= P99_LIMIT_MS,
        ),
        Row(NAME, "throughput", "req/s", bot_tp, base_tp, "bare Starlette"),
        Row(
            NAME,
            "throughput ÷ baseline's, same round",
            "×",
            tp_ratio,
            target=f"≥ {THROUGHPUT_RATIO}",
            met=tp_ratio.median >= THROUGHPUT_RATIO,
        ),
        Row(
            NAME,
            "throughput, service outside the catalog (no delivery)",
            "req/s",
            summary("bot_route", "throughput"),
            base_tp,
            "bare Starlette",
        ),
        Row(
            NAME,
            "throughput ÷ baseline's, service outside the catalog",
            "×",
            per_round_ratio(
                [r["throughput"] for r in figures["bot_route"]],
                [r["throughput"] for r in figures["baseline"]],
            ),
        ),
        Row(
            NAME,
            "lost / stored twice",
            "events",
            Summary.of([lost + doubled]),
            target=f"0 of {sent_distinct}",
            met=lost == 0 and doubled == 0,
        ),
    ]
    return BenchResult(
        NAME,
        rows,
        params={
            "requests_per_round": profile.ingest_requests,
            "concurrency": profile.ingest_concurrency,
            "redelivery_every": DUPLICATE_EVERY,
            "rounds": profile.rounds,
            "event": "incident.triggered for a catalog service (the delivery worker runs), and for a service "
            "outside the catalog (stored as ignored: the route alone)",
        },
        details={
            "rounds": figures,
            "statuses": statuses,
            "distinct_events_sent": sent_distinct,
            "distinct_events_stored": stored,
            "rows_stored": rows_total,
            "lost": lost,
            "stored_twice": doubled,
            "delivery_failed": failed,
            "outbox_drain_s": Summary.of(drains).as_json(),
            "bot_rss_mb_at_end": round(rss, 1),
            "bot_peak_rss_mb": round(peak, 1),
        },
    )
