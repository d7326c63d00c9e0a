"""The storm's drain (issue 16): `drain_incidents` incidents × 5 events (bench/lifecycle.py: triggered,
acknowledged, annotated, escalated, resolved, in order per incident) sent at `drain_rate` webhooks/s, the
recording Slack server answering chat.postMessage with 429 + Retry-After when a channel gets a second message
within a second, as Slack does. The full profile is the issue's storm: 2,000 webhooks at 100/s, 400 incidents.

What is measured, on a fresh bot, from what the recording server accepted (the definitions are bench/slack_view.py's):

* *latest state visible*: for each incident, from the 202 of its last event (resolved) until its root or its
  digest line shows it resolved in every channel of the incident — the worst incident (missing when one was
  never shown) and the p99 (an incident never shown counted as waiting forever);
* *drained*: from the first webhook sent until every event is represented (its token in its incident's root,
  digest line or thread) in every channel — beside the naive bound (events ÷ Slack's per-channel rate: one post
  per event) and the coalescing bound (incidents ÷ rate: one post per incident);
* *lost*: events the bot did not store (a non-2xx answer, or no row in `pd_webhooks`) or gave up on (`failed`);
  *posted twice*: an event's line in two different replies of one channel, or two roots for one incident;
* the share of Slack calls answered 429.

The run is bounded: it stops `drain_deadline_s` after the first webhook (full: the 10-minute target and a minute
more), and a backlog not drained by then is reported as "not drained: X of Y events represented" (its drain time
is missing from the table, and the target MISSED). Every Slack call of the round is written to
`slack-calls-<label>.jsonl` in the run's directory: what the figures were read from.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.catalogs import (
    ALERTS_CHANNEL,
    DISPLAY_NAME,
    INCIDENTS_CHANNEL,
    PAGERDUTY_SERVICE_ID,
    incidents_catalog,
)
from bench.core import Context, Row, lifecycle_spec
from bench.lifecycle import RESOLVED_STEP, STEPS
from bench.processes import run_load
from bench.slack_view import SlackView
from bench.stats import Summary, percentile

NAME = "storm"
SLACK_RATE = 1.0  # chat.postMessage per second per channel
VISIBLE_LIMIT_S = 60.0
DRAIN_LIMIT_S = 600.0
MAX_429_SHARE = 0.01
Starter = Callable[[str, dict[str, Any], dict[str, str]], Awaitable[tuple[Any, str]]]


def stored_and_failed(database_url: str, prefix: str) -> tuple[int, int]:
    """(distinct events stored, events the delivery gave up on) among this round's webhooks."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            """SELECT count(DISTINCT event_id), count(*) FILTER (WHERE status = 'failed')
               FROM pd_webhooks WHERE event_id LIKE %s""",
            (prefix + "%",),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def drain_round(
    ctx: Context,
    label: str,
    start: Starter,
    *,
    incidents: int,
    deadline_s: float,
    number_start: int,
) -> dict[str, Any]:
    """One storm on a fresh bot started by `start` (all in one, or split); its figures."""
    profile = ctx.profile
    ctx.slack.reset()
    ctx.slack.enforce_rate_limit("chat.postMessage", per_channel_per_second=SLACK_RATE)
    bot, schema = await start(label, incidents_catalog(), {"STORM_THRESHOLD": str(profile.storm_threshold)})
    prefix = f"PDR{number_start:07d}"
    channels = (ALERTS_CHANNEL, INCIDENTS_CHANNEL)
    numbers = range(number_start, number_start + incidents)
    view = SlackView(ctx.slack, {n: channels for n in numbers})
    events = incidents * len(STEPS)
    try:
        spec = lifecycle_spec(
            bot.url,
            incidents=incidents,
            number_start=number_start,
            prefix=prefix,
            services=[[PAGERDUTY_SERVICE_ID, DISPLAY_NAME]],
            concurrency=200,
            rate=profile.drain_rate,
        )
        result = await run_load(spec, ctx.log_dir)
        sent = {(n, k): (at, answered, status) for n, k, _id, at, answered, status in result["events"]}
        first = min(at for at, _, _ in sent.values())
        while True:
            view.update()
            done = view.count_represented(len(STEPS)) == events and all(
                view.state_visible_at(n) is not None for n in numbers
            )
            if done or time.monotonic() - first > deadline_s:
                break
            await asyncio.sleep(0.5)
        stored, failed = await asyncio.to_thread(stored_and_failed, ctx.bot_database_url(schema), prefix)
    finally:
        await bot.stop()
    write_calls(ctx, label)
    rejected = sum(1 for _, _, status in sent.values() if not 200 <= status < 300)
    waits: list[float] = []
    for n in numbers:
        visible = view.state_visible_at(n)
        if visible is not None:
            waits.append(visible - sent[(n, RESOLVED_STEP)][1])
    represented = view.count_represented(len(STEPS))
    last = [view.event_represented_at(n, k) for n in numbers for k in range(len(STEPS))]
    drained = represented == events
    return {
        "events": events,
        "incidents": incidents,
        "sent_over_s": max(at for at, _, _ in sent.values()) - first,
        "webhook_statuses": result["statuses"],
        "represented": represented,
        "drained": drained,
        "drain_s": max(t for t in last if t is not None) - first if drained else float("nan"),
        "not_visible": incidents - len(waits),
        "worst_visible_wait_s": max(waits) if len(waits) == incidents else float("nan"),
        "p99_visible_wait_s": _p99_counting_unshown(waits, incidents),
        "worst_visible_wait_of_shown_s": max(waits, default=float("nan")),
        "lost": rejected + max(0, events - stored) + failed,
        "posted_twice": view.posted_twice(len(STEPS)),
        "slack_calls": view.calls,
        "slack_429": view.rate_limited,
        "share_429": view.rate_limited / view.calls if view.calls else 0.0,
        "posts": sum(1 for c in ctx.slack.calls if c.method == "chat.postMessage" and c.status == 200),
        "updates": sum(1 for c in ctx.slack.calls if c.method == "chat.update" and c.status == 200),
        "stopped_after_s": time.monotonic() - first,
    }


def _p99_counting_unshown(waits: list[float], incidents: int) -> float:
    """The p99 wait with every incident never shown counted as waiting forever: a figure while fewer than 1 % of
    them were never shown, missing (NaN) once they are more."""
    p99 = percentile(sorted(waits) + [math.inf] * (incidents - len(waits)), 0.99)
    return p99 if math.isfinite(p99) else math.nan


def write_calls(ctx: Context, label: str) -> Path:
    """Every Slack call of the round, one JSON object a line, beside the logs: what the figures were read from."""
    path = ctx.run_dir / f"slack-calls-{label}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for call in ctx.slack.calls:
            record = {"at": call.at, "method": call.method, "status": call.status, "body": call.body}
            out.write(json.dumps({**record, "response": call.response}, default=str) + "\n")
    return path


def drain_label(round_: dict[str, Any]) -> str:
    if round_["drained"]:
        return f"drained in {round_['drain_s']:.1f} s"
    return f"not drained: {round_['represented']} of {round_['events']} events represented"


def drain_rows(benchmark: str, round_: dict[str, Any], label: str = "") -> list[Row]:
    """The table's lines for one drain round (`label` tells topologies apart in the split benchmark)."""
    events, incidents = round_["events"], round_["incidents"]
    suffix = f", {label}" if label else ""
    drained = round_["drained"]
    all_visible = round_["not_visible"] == 0
    return [
        Row(
            benchmark,
            f"storm of {events} events: worst incident's latest state shown{suffix}"
            + ("" if all_visible else f" ({round_['not_visible']} of {incidents} never shown)"),
            "s after its last event",
            Summary.of([round_["worst_visible_wait_s"]]),
            target=f"≤ {VISIBLE_LIMIT_S:g} s",
            met=all_visible and round_["worst_visible_wait_s"] <= VISIBLE_LIMIT_S,
        ),
        Row(
            benchmark,
            f"storm: p99 incident's latest state shown{suffix}",
            "s after its last event",
            Summary.of([round_["p99_visible_wait_s"]]),
        ),
        Row(
            benchmark,
            f"storm: backlog drained{suffix}"
            + ("" if drained else f" (not drained: {round_['represented']} of {events} events represented)"),
            "s",
            Summary.of([round_["drain_s"]]),
            Summary.of([events / SLACK_RATE]),
            f"naive bound; coalescing bound {incidents / SLACK_RATE:g} s",
            f"≤ {DRAIN_LIMIT_S:g} s",
            drained and round_["drain_s"] <= DRAIN_LIMIT_S,
        ),
        Row(
            benchmark,
            f"storm: events lost / posted twice{suffix}",
            "events",
            Summary.of([round_["lost"] + round_["posted_twice"]]),
            target=f"0 of {events}",
            met=round_["lost"] == 0 and round_["posted_twice"] == 0,
        ),
        Row(
            benchmark,
            f"storm: Slack calls answered 429{suffix}",
            "%",
            Summary.of([100.0 * round_["share_429"]]),
            target=f"≤ {100 * MAX_429_SHARE:g} %",
            met=round_["share_429"] <= MAX_429_SHARE,
        ),
    ]
