"""ack: signed `/health` slash commands, `ack_concurrency` in flight, against a bare Bolt app acking immediately.

What is timed is Slack's view: from sending the signed request to reading the answer, which is the ack. The bot
does everything it does in production — verifies, parses, acks from memory with "Checking 1 service…", then runs
the probe, records the run and posts the answer after the ack, on the same event loop — while the baseline only
acks. Between rounds the orchestrator waits until the bot has posted every answer, so the baseline's round never
runs beside the bot's leftover post-ack work; how long that took is reported as the drain time.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from bench.catalogs import ack_catalog
from bench.core import SLACK_SIGNING_SECRET, BenchResult, Context, Row, per_round_ratio, wait_until
from bench.environment import free_port
from bench.processes import ModuleServer, run_load
from bench.stats import Summary, percentile

NAME = "ack"
P99_LIMIT_MS = 100.0
P99_RATIO = 1.25
THROUGHPUT_RATIO = 0.9


def load_spec(ctx: Context, url: str, channel: str, text: str = "") -> dict[str, Any]:
    profile = ctx.profile
    return {
        "kind": "slack_commands",
        "url": url + "/slack/events",
        "signing_secret": SLACK_SIGNING_SECRET,
        "requests": profile.ack_requests,
        "concurrency": profile.ack_concurrency,
        "warmup": profile.ack_concurrency,
        "warmup_text": "help",  # acked with the usage, no post-ack work: opens the connections only
        "command": "/health",
        "text": text,
        "channel": channel,
        "response_url": ctx.slack.base_url + "/response",
    }


def _round_figures(result: dict[str, Any]) -> dict[str, float]:
    latencies = result["latencies_ms"]
    return {
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "throughput": result["throughput"],
        "errors": float(result["requests"] - len(latencies)),
    }


def all_answered(ctx: Context, channel: str) -> bool:
    """Every /health of the round has posted its answer (the post-ack work is done)."""
    return len(ctx.slack.calls_to("chat.postMessage", channel=channel)) >= ctx.profile.ack_requests


async def run(ctx: Context) -> BenchResult:
    profile = ctx.profile
    upstreams = await ModuleServer(
        "upstreams-ack", "bench.upstreams", ["--hung-port", str(free_port())], ctx.log_dir, {}
    ).start()
    bot, _schema = await ctx.start_bot(NAME, ack_catalog(upstreams.url))
    baseline = await ModuleServer(
        "baseline-bolt",
        "bench.baselines",
        ["bolt", "--slack-api-url", ctx.slack.api_url, "--signing-secret", SLACK_SIGNING_SECRET],
        ctx.log_dir,
        {},
    ).start()
    sides = ("bot", "bot_help", "baseline")
    figures: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    drains: list[float] = []
    statuses: dict[str, list[dict[str, int]]] = {side: [] for side in sides}
    try:
        for index in range(profile.rounds):
            for side in sides[index % 3 :] + sides[: index % 3]:  # each side first in turn
                channel = f"C0ACK{index:02d}{sides.index(side)}"
                server = baseline if side == "baseline" else bot
                text = "help" if side == "bot_help" else ""
                result = await run_load(load_spec(ctx, server.url, channel, text), ctx.log_dir)
                figures[side].append(_round_figures(result))
                statuses[side].append(result["statuses"])
                ctx.log(
                    f"  ack round {index + 1} {side}: p99 {figures[side][-1]['p99_ms']:.1f} ms, "
                    f"{result['throughput']:.0f} req/s"
                )
                if side == "bot":
                    drained = await wait_until(
                        functools.partial(all_answered, ctx, channel), timeout=120.0, interval=0.2
                    )
                    drains.append(drained if drained is not None else float("nan"))
                    await asyncio.sleep(0.5)  # the last runs' UPDATE of health_runs
        rss, peak = bot.rss()
    finally:
        await baseline.stop()
        await bot.stop()
        await upstreams.stop()

    def summary(side: str, key: str) -> Summary:
        return Summary.of([round_[key] for round_ in figures[side]])

    bot_p99, base_p99 = summary("bot", "p99_ms"), summary("baseline", "p99_ms")
    bot_tp, base_tp = summary("bot", "throughput"), summary("baseline", "throughput")

    def column_ratio(side: str, key: str) -> Summary:
        return per_round_ratio([r[key] for r in figures[side]], [r[key] for r in figures["baseline"]])

    p99_ratio, tp_ratio = column_ratio("bot", "p99_ms"), column_ratio("bot", "throughput")
    errors = sum(r["errors"] for side in ("bot", "bot_help") for r in figures[side])
    rows = [
        Row(NAME, "p50", "ms", summary("bot", "p50_ms"), summary("baseline", "p50_ms"), "bare Bolt"),
        Row(
            NAME,
            "p99",
            "ms",
            bot_p99,
            base_p99,
            "bare Bolt",
            f"≤ {P99_LIMIT_MS:g} ms",
            bot_p99.median <= P99_LIMIT_MS,
        ),
        Row(
            NAME,
            "p99 ÷ baseline's, same round",
            "×",
            p99_ratio,
            target=f"≤ {P99_RATIO}",
            met=p99_ratio.median <= P99_RATIO,
        ),
        Row(NAME, "throughput", "req/s", bot_tp, base_tp, "bare Bolt"),
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
            "p99, /health help (no post-ack work)",
            "ms",
            summary("bot_help", "p99_ms"),
            base_p99,
            "bare Bolt",
        ),
        Row(
            NAME,
            "throughput, /health help",
            "req/s",
            summary("bot_help", "throughput"),
            base_tp,
            "bare Bolt",
        ),
        Row(NAME, "throughput ÷ baseline's, /health help", "×", column_ratio("bot_help", "throughput")),
        Row(NAME, "errors (non-2xx)", "requests", Summary.of([errors]), target="0", met=errors == 0),
    ]
    return BenchResult(
        NAME,
        rows,
        params={
            "requests_per_round": profile.ack_requests,
            "concurrency": profile.ack_concurrency,
            "rounds": profile.rounds,
            "command": "/health (one HTTP probe answering at once); /health help acks with the usage only",
        },
        details={
            "rounds": figures,
            "statuses": statuses,
            "post_ack_drain_s": Summary.of(drains).as_json(),
            "bot_rss_mb_at_end": round(rss, 1),
            "bot_peak_rss_mb": round(peak, 1),
        },
    )
