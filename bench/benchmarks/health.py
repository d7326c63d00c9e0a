"""health fan-out: `/health` over `health_probes` HTTP probes answering in 200 ms and one that never answers.

The bot's figure is what the engineer sees: from sending the signed `/health` to the answer reaching Slack
(`chat.postMessage` at the recording server). The hung probe has its own catalog timeout (`health_hung_timeout_s`)
and must be cut there, so the answer can come no sooner than that timeout.

The baseline is the slowest single probe: every probe of the catalog run alone, one after the other, with the
bot's own probe code (integrations/probes.py) and its catalog timeout, in the same rounds; the slowest of them is
the hung one cut at its timeout. A fan-out that runs the probes concurrently and answers as soon as the last one
is done (or cut) costs that plus the overhead of the fan-out itself (the ack, recording the run, rendering, the
post). The target allows that overhead 25 % of the slowest probe.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg

from bench.catalogs import HUNG_PROBE, health_catalog
from bench.core import SLACK_SIGNING_SECRET, BenchResult, Context, Row, order, per_round_ratio
from bench.environment import free_port
from bench.processes import ModuleServer
from bench.stats import Summary
from bot.catalog import Catalog, HttpProbe
from bot.signing import sign_slack_request
from integrations import probes

NAME = "health"
PROBE_DELAY_S = 0.2
TOTAL_RATIO = 1.25
HUNG_CUT_RATIO = 1.1


def command_body(ctx: Context, command: str, text: str, channel: str) -> bytes:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0CONSOLE",
            "team_domain": "bench",
            "channel_id": channel,
            "channel_name": "bench",
            "user_id": "U0BENCH01",
            "user_name": "bench",
            "command": command,
            "text": text,
            "api_app_id": "A0BENCH",
            "response_url": ctx.slack.base_url + "/response/bench",
            "trigger_id": f"{int(time.time())}.bench.x",
        }
    ).encode()


async def send_command(
    ctx: Context, client: httpx.AsyncClient, url: str, command: str, text: str, channel: str
) -> float:
    """Send a signed slash command; the monotonic time it was sent. The ack must be a 200."""
    body = command_body(ctx, command, text, channel)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **sign_slack_request(SLACK_SIGNING_SECRET, body),
    }
    sent = time.monotonic()
    response = await client.post(url + "/slack/events", content=body, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"{command} {text} was answered {response.status_code}: {response.text[:200]}")
    return sent


async def answer_time(ctx: Context, channel: str, timeout: float = 30.0) -> float:
    """When the first message in `channel` (outside a thread) reached Slack (monotonic)."""
    [call] = (await ctx.slack.wait_for("chat.postMessage", channel=channel, timeout=timeout))[:1]
    return call.at


def _recorded_probes(database_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT results FROM health_runs ORDER BY id DESC LIMIT 1").fetchone()
    if not row:
        return {}
    return {p["name"]: p for service in row[0].values() for p in service["probes"]}


async def _slowest_single_probe(
    catalog_probes: list[HttpProbe], client: httpx.AsyncClient
) -> tuple[float, float]:
    """(slowest probe alone, slowest answered probe alone) in ms, each probe run on its own."""
    durations: dict[str, float] = {}
    for probe in catalog_probes:
        started = time.perf_counter()
        await probes.http_probe(
            client,
            url=probe.url,
            method=probe.method,
            json_body=probe.json_body,
            headers=probe.headers,
            expect_status=probe.expect_status,
            json_field=probe.json_field,
            ok_values=probe.ok_values,
            degraded_values=probe.degraded_values,
            timeout=probe.timeout,
        )
        durations[probe.name] = (time.perf_counter() - started) * 1000.0
    answered = [ms for name, ms in durations.items() if name != HUNG_PROBE]
    return max(durations.values()), max(answered)


async def run(ctx: Context) -> BenchResult:
    profile = ctx.profile
    hung_port = free_port()
    upstreams = await ModuleServer(
        "upstreams-health",
        "bench.upstreams",
        ["--hung-port", str(hung_port), "--delay", str(PROBE_DELAY_S)],
        ctx.log_dir,
        {},
    ).start()
    catalog = health_catalog(upstreams.url, hung_port, profile.health_probes, profile.health_hung_timeout_s)
    bot, schema = await ctx.start_bot(NAME, catalog)
    catalog_probes = [
        p for p in Catalog.model_validate(catalog).services[0].probes if isinstance(p, HttpProbe)
    ]
    totals: list[float] = []
    slowest_alone: list[float] = []
    slowest_answered_alone: list[float] = []
    hung_cut: list[float] = []
    slowest_answered_in_bot: list[float] = []
    statuses: list[dict[str, str]] = []
    try:
        async with (
            httpx.AsyncClient(trust_env=False, timeout=30.0) as client,
            httpx.AsyncClient(trust_env=False, follow_redirects=False) as probe_client,
        ):
            # One untimed /health first: Bolt's one-time auth.test and the first connections are not the fan-out.
            await send_command(ctx, client, bot.url, "/health", "", "C0HEALTHW")
            await answer_time(ctx, "C0HEALTHW")
            for index in range(profile.single_rounds):
                for side in order(index):
                    if side == "bot":
                        channel = f"C0HEALTH{index:02d}"
                        sent = await send_command(ctx, client, bot.url, "/health", "", channel)
                        totals.append((await answer_time(ctx, channel) - sent) * 1000.0)
                        recorded = await asyncio.to_thread(_recorded_probes, ctx.bot_database_url(schema))
                        hung_cut.append(float(recorded[HUNG_PROBE]["latency_ms"]))
                        slowest_answered_in_bot.append(
                            max(float(p["latency_ms"]) for n, p in recorded.items() if n != HUNG_PROBE)
                        )
                        statuses.append({n: p["status"] for n, p in recorded.items()})
                    else:
                        slowest, answered = await _slowest_single_probe(catalog_probes, probe_client)
                        slowest_alone.append(slowest)
                        slowest_answered_alone.append(answered)
                ctx.log(
                    f"  health round {index + 1}: /health {totals[-1]:.0f} ms, slowest probe alone {slowest_alone[-1]:.0f} ms"
                )
    finally:
        await bot.stop()
        await upstreams.stop()
    total, baseline = Summary.of(totals), Summary.of(slowest_alone)
    hung = Summary.of(hung_cut)
    timeout_ms = profile.health_hung_timeout_s * 1000.0
    all_answered_ok = all(
        status == "ok" for run_ in statuses for name, status in run_.items() if name != HUNG_PROBE
    ) and all(run_.get(HUNG_PROBE) == "down" for run_ in statuses)
    ratio = per_round_ratio(totals, slowest_alone)
    rows = [
        Row(NAME, "/health answered in Slack", "ms", total, baseline, "slowest single probe"),
        Row(
            NAME,
            "/health ÷ slowest single probe, same round",
            "×",
            ratio,
            target=f"≤ {TOTAL_RATIO}",
            met=ratio.median <= TOTAL_RATIO,
        ),
        Row(
            NAME,
            "slowest answered probe",
            "ms",
            Summary.of(slowest_answered_in_bot),
            Summary.of(slowest_answered_alone),
            "alone",
        ),
        Row(
            NAME,
            "hung probe cut at",
            "ms",
            hung,
            target=f"its timeout, {timeout_ms:g} ms (≤ {HUNG_CUT_RATIO} ×)",
            met=all_answered_ok and timeout_ms <= hung.median <= HUNG_CUT_RATIO * timeout_ms,
        ),
    ]
    return BenchResult(
        NAME,
        rows,
        params={
            "probes_answering": profile.health_probes,
            "probe_delay_ms": PROBE_DELAY_S * 1000,
            "hung_probes": 1,
            "hung_timeout_ms": timeout_ms,
            "rounds": profile.single_rounds,
        },
        details={"probe_statuses_ok": all_answered_ok, "statuses": statuses},
    )
