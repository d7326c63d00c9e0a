"""storm: `storm_incidents` PagerDuty triggers in `storm_seconds`, Slack enforcing 1 message/s/channel with 429.

The webhooks are sent at a steady rate from the load generator (open loop: PagerDuty does not wait for us). The
recording Slack server answers `chat.postMessage` with 429 + Retry-After when a channel gets a second message within
a second, as Slack does. An incident is *represented* in a channel from the first accepted message there that names
it (its own root, or the storm digest listing it). Measured per round, on a fresh bot (a new schema and an empty
Redis, so no storm digest is left open from the round before): the time from the first trigger until every
incident is represented in both channels, the worst single incident's wait, and the share of Slack calls answered
429.

The baseline is a bound, not a second server: posting one message per incident per channel at Slack's 1 message
per second, the last incident appears `incidents` seconds after the first (both channels in parallel). Nothing
that posts each incident on its own can beat it, so it is the fair yardstick for what grouping buys.

Then one storm of whole lifecycles (bench/benchmarks/storm_drain.py: the issue's 2,000 events at 100/s): how soon
each incident's latest state is shown, and when the whole backlog has drained.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bench.benchmarks import storm_drain
from bench.catalogs import (
    ALERTS_CHANNEL,
    DISPLAY_NAME,
    INCIDENTS_CHANNEL,
    PAGERDUTY_SERVICE_ID,
    incidents_catalog,
)
from bench.core import PAGERDUTY_SECRET, BenchResult, Context, Row, wait_until
from bench.processes import run_load
from bench.stats import Summary
from stand_ins.recording_slack import SlackCall

NAME = "storm"
SLACK_RATE = 1.0  # messages per second per channel
DEADLINE_S = 60.0
MAX_429_SHARE = 0.01
_NUMBER = re.compile(r"#(\d+)")


def _numbers(call: SlackCall) -> set[int]:
    """Incident numbers a message names, in its text, blocks or attachments."""
    shown = " ".join(
        [
            str(call.body.get("text") or ""),
            json.dumps(call.body.get("blocks") or []),
            json.dumps(call.body.get("attachments") or []),
        ]
    )
    return {int(n) for n in _NUMBER.findall(shown)}


def first_seen(ctx: Context, channels: list[str], wanted: set[int]) -> dict[str, dict[int, float]]:
    """For each channel, when each wanted incident was first represented there (monotonic seconds)."""
    ids = {ctx.slack.channel_id(c): c for c in channels}
    seen: dict[str, dict[int, float]] = {c: {} for c in channels}
    for call in ctx.slack.calls:
        if call.method not in ("chat.postMessage", "chat.update") or call.status != 200:
            continue
        if not (call.response or {}).get("ok"):
            continue
        channel = call.body.get("channel")
        if not isinstance(channel, str):
            continue
        name = ids.get(ctx.slack.channel_id(channel))
        if name is None:
            continue
        for number in _numbers(call) & wanted:
            seen[name].setdefault(number, call.at)
    return seen


async def _round(ctx: Context, index: int) -> dict[str, Any]:
    profile = ctx.profile
    ctx.slack.reset()
    ctx.slack.enforce_rate_limit("chat.postMessage", per_channel_per_second=SLACK_RATE)
    bot, _schema = await ctx.start_bot(
        f"{NAME}{index}", incidents_catalog(), {"STORM_THRESHOLD": str(profile.storm_threshold)}
    )
    number_start = 1000 * (index + 1)
    wanted = set(range(number_start, number_start + profile.storm_incidents))
    channels = [ALERTS_CHANNEL, INCIDENTS_CHANNEL]
    try:
        spec = {
            "kind": "pagerduty_webhooks",
            "url": bot.url + "/pagerduty/webhook",
            "secret": PAGERDUTY_SECRET,
            "requests": profile.storm_incidents,
            "rate": profile.storm_incidents / profile.storm_seconds,
            "concurrency": profile.storm_incidents,
            "prefix": f"PST{index:02d}",
            "number_start": number_start,
            "service_id": PAGERDUTY_SERVICE_ID,
            "service_name": DISPLAY_NAME,
            "title": "Upstream dependency down",
        }
        result = await run_load(spec, ctx.log_dir)
        sent = {int(number): float(at) for _, number, at in result["sent"]}
        first = min(sent.values())

        def all_represented() -> bool:
            seen = first_seen(ctx, channels, wanted)
            return all(len(seen[c]) == len(wanted) for c in channels)

        remaining = profile.storm_deadline_s - (time.monotonic() - first)
        await wait_until(all_represented, timeout=max(remaining, 1.0), interval=0.25)
        seen = first_seen(ctx, channels, wanted)
        calls = ctx.slack.calls
    finally:
        await bot.stop()
    complete = all(len(seen[c]) == len(wanted) for c in channels)
    last = max((at for c in channels for at in seen[c].values()), default=float("nan"))
    worst_wait = max(
        (seen[c][n] - sent[n] for c in channels for n in seen[c] if n in sent), default=float("nan")
    )
    rate_limited = sum(1 for call in calls if call.status == 429)
    return {
        "all_represented_s": (last - first) if complete else float("nan"),
        "complete": complete,
        "represented": {c: len(seen[c]) for c in channels},
        "worst_incident_wait_s": worst_wait,
        "slack_calls": len(calls),
        "slack_429": rate_limited,
        "share_429": rate_limited / len(calls) if calls else 0.0,
        "posts": sum(1 for call in calls if call.method == "chat.postMessage" and call.status == 200),
        "updates": sum(1 for call in calls if call.method == "chat.update" and call.status == 200),
        "webhook_statuses": result["statuses"],
        "sent_over_s": max(sent.values()) - first,
    }


async def run(ctx: Context) -> BenchResult:
    profile = ctx.profile
    rounds: list[dict[str, Any]] = []
    for index in range(profile.storm_rounds):
        rounds.append(await _round(ctx, index))
        ctx.log(
            f"  storm round {index + 1}: all represented after {rounds[-1]['all_represented_s']:.1f} s, "
            f"{rounds[-1]['slack_429']} of {rounds[-1]['slack_calls']} Slack calls 429"
        )
    drain = await storm_drain.drain_round(
        ctx,
        f"{NAME}-drain",
        ctx.start_bot,
        incidents=profile.drain_incidents,
        deadline_s=profile.drain_deadline_s,
        number_start=100_000,
    )
    ctx.log(
        f"  storm drain: {storm_drain.drain_label(drain)}, {drain['slack_429']} of {drain['slack_calls']} 429"
    )
    ctx.slack.reset()
    naive = profile.storm_incidents / SLACK_RATE
    represented = Summary.of([r["all_represented_s"] for r in rounds])
    share = Summary.of([100.0 * r["share_429"] for r in rounds])
    complete = all(r["complete"] for r in rounds)
    rows = [
        Row(
            NAME,
            "all incidents in both channels",
            "s",
            represented,
            Summary.of([naive]),
            "naive bound",
            f"≤ {DEADLINE_S:g} s",
            complete and represented.high <= DEADLINE_S,
        ),
        Row(NAME, "worst incident's wait", "s", Summary.of([r["worst_incident_wait_s"] for r in rounds])),
        Row(
            NAME,
            "Slack calls answered 429",
            "%",
            share,
            target=f"≤ {100 * MAX_429_SHARE:g} %",
            met=share.high <= 100 * MAX_429_SHARE,
        ),
        *storm_drain.drain_rows(NAME, drain),
    ]
    return BenchResult(
        NAME,
        rows,
        params={
            "incidents": profile.storm_incidents,
            "over_s": profile.storm_seconds,
            "rounds": profile.storm_rounds,
            "storm_threshold": profile.storm_threshold,
            "slack_limit": "chat.postMessage 1/s/channel, 429 with Retry-After: 1",
            "naive_bound_s": naive,
            "drain_storm": {
                "incidents": profile.drain_incidents,
                "events": profile.drain_incidents * len(storm_drain.STEPS),
                "webhooks_per_s": profile.drain_rate,
                "stopped_after_s": profile.drain_deadline_s,
                "naive_bound_s": profile.drain_incidents * len(storm_drain.STEPS) / SLACK_RATE,
                "coalescing_bound_s": profile.drain_incidents / SLACK_RATE,
            },
        },
        details={"rounds": rounds, "drain": drain},
    )
