"""The load generator: signed Slack slash commands or signed PagerDuty V3 webhooks, from its own process.

Run as `python -m bench.load` with a JSON spec on stdin; it prints one JSON result on stdout. It runs in a process
of its own so that building, signing and timing requests never shares an interpreter (and its GIL) with the
server being measured or with the orchestrator that plays Slack. The same spec is sent to the bot and to its
baseline, so both meet exactly the same client.

Requests are signed exactly as Slack and PagerDuty sign them (`bot.signing`), so the bot does its real
verification. The client is aiohttp over keep-alive connections, `concurrency` requests in flight (closed loop:
each worker sends its next request when the previous one is answered), or paced at `rate` per second (open loop,
for the storm: PagerDuty does not wait for us). Before the timed requests, `warmup` untimed ones open the
connections, so connection set-up is not counted in either the bot's or the baseline's figures.

`pagerduty_lifecycle` sends incidents' whole lifecycles (bench/lifecycle.py), a request waiting for the same
incident's previous event to be answered; `slack_posts` times direct chat.postMessage round trips to the recording
Slack server, one at a time: the floor under the bot's webhook → Slack latency.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bench.lifecycle import LifecycleRequest, lifecycle_requests
from bot.signing import sign_pagerduty_webhook, sign_slack_request
from stand_ins import pagerduty_payloads as pd

Request = tuple[
    bytes, Callable[[], dict[str, str]]
]  # body, headers (built at send time: Slack signs a timestamp)


def slack_command_requests(
    spec: dict[str, Any], count: int, text: str, label: str = "timed"
) -> list[Request]:
    """`count` signed slash commands; `label` keeps the warm-up's bodies apart from the timed ones (a body and
    signature seen before, within the same second, is a replay the bot answers without running it)."""
    secret = spec["signing_secret"]
    requests: list[Request] = []
    for index in range(count):
        body = urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": spec.get("team_id", "T0CONSOLE"),
                "team_domain": "bench",
                "channel_id": spec["channel"],
                "channel_name": "bench",
                "user_id": spec.get("user", "U0BENCH01"),
                "user_name": "bench",
                "command": spec["command"],
                "text": text,
                "api_app_id": "A0BENCH",
                "response_url": f"{spec['response_url']}/{label}-{index}",
                "trigger_id": f"{int(time.time())}.bench.{label}.{index}",
            }
        ).encode()

        def headers(body: bytes = body) -> dict[str, str]:
            return {
                "Content-Type": "application/x-www-form-urlencoded",
                **sign_slack_request(secret, body),
            }

        requests.append((body, headers))
    return requests


def pagerduty_webhook_requests(spec: dict[str, Any]) -> tuple[list[Request], list[tuple[str, int]], int]:
    """The webhooks to send, (incident id, number) per request, and how many distinct events they carry.

    Every `duplicate_every`-th request is a redelivery of an earlier event (same id, same bytes), as PagerDuty
    sends when it did not see our 2xx in time.
    """
    secret = spec["secret"]
    prefix = spec["prefix"]
    number0 = int(spec.get("number_start", 1))
    every = int(spec.get("duplicate_every", 0))
    now = datetime.now(UTC)
    requests: list[Request] = []
    keys: list[tuple[str, int]] = []
    originals: list[tuple[bytes, dict[str, str], tuple[str, int]]] = []
    distinct = 0
    for index in range(int(spec["requests"])):
        if every and index % every == every - 1 and originals:
            body, signed, key = originals[(index * 7919) % len(originals)]
        else:
            number = number0 + distinct
            incident_id = f"{prefix}{number:06d}"
            incident = pd.incident(
                id=incident_id,
                number=number,
                title=spec.get("title", "Dependency down") + f" {number}",
                service_id=spec.get("service_id", "PBENCH1"),
                service_name=spec["service_name"],
                created_at=now,
            )
            payload = pd.event(
                "incident.triggered", incident, occurred_at=now, event_id=f"{incident_id}-triggered"
            )
            body = pd.body(payload)
            signed = {
                "Content-Type": "application/json",
                "X-Webhook-Id": f"{incident_id}-triggered",
                **sign_pagerduty_webhook(secret, body),
            }
            key = (incident_id, number)
            originals.append((body, signed, key))
            distinct += 1

        def headers(signed: dict[str, str] = signed) -> dict[str, str]:
            return signed

        requests.append((body, headers))
        keys.append(key)
    return requests, keys, distinct


async def _send(session: aiohttp.ClientSession, url: str, request: Request) -> tuple[int, float, float]:
    """(status, latency in ms, monotonic send time); status 0 for a transport error."""
    body, headers = request
    sent = time.monotonic()
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers()) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return status, (time.perf_counter() - started) * 1000.0, sent


class _Chains:
    """Request i waits until request after[i] has been answered (an incident's events in order)."""

    def __init__(self, after: list[int] | None, count: int) -> None:
        self.after = after
        self.done = [asyncio.Event() for _ in range(count)] if after else []

    async def send(self, session: aiohttp.ClientSession, url: str, request: Request, index: int) -> Any:
        if self.after and self.after[index] >= 0:
            await self.done[self.after[index]].wait()
        result = await _send(session, url, request)
        if self.after:
            self.done[index].set()
        return result


async def closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    requests: list[Request],
    concurrency: int,
    after: list[int] | None = None,
) -> list[tuple[int, float, float]]:
    results: list[tuple[int, float, float] | None] = [None] * len(requests)
    next_index = 0
    chains = _Chains(after, len(requests))

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(requests):
            index = next_index
            next_index += 1
            results[index] = await chains.send(session, url, requests[index], index)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(requests)))))
    return [r for r in results if r is not None]


async def open_loop(
    session: aiohttp.ClientSession,
    url: str,
    requests: list[Request],
    rate: float,
    after: list[int] | None = None,
) -> list[tuple[int, float, float]]:
    start = time.monotonic()
    chains = _Chains(after, len(requests))

    async def one(index: int) -> tuple[int, float, float]:
        await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
        result: tuple[int, float, float] = await chains.send(session, url, requests[index], index)
        return result

    return list(await asyncio.gather(*(one(i) for i in range(len(requests)))))


async def generate(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec["kind"]
    concurrency = int(spec.get("concurrency", 50))
    keys: list[tuple[str, int]] = []
    distinct = 0
    after: list[int] | None = None
    lifecycle: list[LifecycleRequest] = []
    if kind == "slack_posts":
        return await slack_posts(spec)
    if kind == "slack_commands":
        warmup = slack_command_requests(
            spec, int(spec.get("warmup", 0)), spec.get("warmup_text", "help"), "warmup"
        )
        timed = slack_command_requests(spec, int(spec["requests"]), spec.get("text", ""))
    elif kind == "pagerduty_webhooks":
        warmup = []
        timed, keys, distinct = pagerduty_webhook_requests(spec)
    elif kind == "pagerduty_lifecycle":
        warmup = []
        lifecycle = lifecycle_requests(spec)
        timed = [(r.body, functools.partial(dict, r.headers)) for r in lifecycle]
        after = [r.after for r in lifecycle]
        distinct = len(lifecycle)
    else:
        raise SystemExit(f"unknown load kind {kind!r}")
    connector = aiohttp.TCPConnector(limit=max(concurrency, 1), limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout_s", 30.0)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if warmup:
            await closed_loop(session, spec["url"], warmup, concurrency)
        started = time.monotonic()
        if spec.get("rate"):
            results = await open_loop(session, spec["url"], timed, float(spec["rate"]), after)
        else:
            results = await closed_loop(session, spec["url"], timed, concurrency, after)
        elapsed = time.monotonic() - started
    statuses = Counter(str(status) for status, _, _ in results)
    ok = [latency for status, latency, _ in results if 200 <= status < 300]
    return {
        "kind": kind,
        "requests": len(results),
        "statuses": dict(statuses),
        "latencies_ms": [round(v, 3) for v in ok],
        "elapsed_s": elapsed,
        "throughput": len(ok) / elapsed if elapsed > 0 else 0.0,
        "started_at": started,
        "sent": [[key[0], key[1], round(sent, 6)] for key, (_, _, sent) in zip(keys, results, strict=False)],
        "distinct_events": distinct,
        # per lifecycle event: number, step, event id, monotonic send time, monotonic answer time, status
        "events": [
            [r.number, r.step, r.event_id, round(sent, 6), round(sent + latency / 1000.0, 6), status]
            for r, (status, latency, sent) in zip(lifecycle, results, strict=False)
        ],
    }


async def slack_posts(spec: dict[str, Any]) -> dict[str, Any]:
    """`requests` chat.postMessage calls to `api_url`, one at a time on one kept-alive connection, as the bot's
    Slack client makes them (bearer token, JSON body); their round trips in ms."""
    url = spec["api_url"].rstrip("/") + "/chat.postMessage"
    headers = {"Authorization": f"Bearer {spec['token']}", "Content-Type": "application/json; charset=utf-8"}
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for index in range(int(spec.get("warmup", 3)) + int(spec["requests"])):
            body = json.dumps({"channel": spec["channel"], "text": f"floor {index}"})
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            if index >= int(spec.get("warmup", 3)):
                latencies.append((time.perf_counter() - started) * 1000.0)
    return {"kind": "slack_posts", "latencies_ms": [round(v, 3) for v in latencies]}


def main() -> int:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(generate(spec))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
