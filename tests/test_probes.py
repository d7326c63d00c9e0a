"""Tests for integrations.probes against real servers on 127.0.0.1.

Nothing in integrations.probes is mocked: HTTP probes talk to a Starlette app served by
uvicorn in the test's own event loop, the "never answers" case is a plain asyncio server
that accepts and stays silent, and Postgres/Redis are the suite's real servers (conftest:
TEST_*_URL, the local services, or embedded ones).  No test reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from psycopg.conninfo import make_conninfo
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from integrations.probes import (
    ProbeOutcome,
    ProbeStatus,
    _classify,
    http_probe,
    postgres_probe,
    redis_probe,
    tcp_probe,
)
from tests.harness import finishes

SECRET = "hunter2-Sup3rS3cret"

# The probe must be cut at its timeout; this bound proves the cut, not speed.


# ----------------------------------------------------------------------------- servers


@dataclass
class Recorder:
    """What the echo endpoint saw, so tests can check a POST probe's body and headers."""

    requests: list[dict[str, Any]] = field(default_factory=list)


def _make_app(recorder: Recorder) -> Starlette:
    async def ok(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def degraded(_: Request) -> Response:
        return JSONResponse({"status": "degraded"})

    async def maintenance(_: Request) -> Response:
        return JSONResponse({"status": "maintenance"})

    async def unavailable(_: Request) -> Response:
        return JSONResponse({"status": "down"}, status_code=503)

    async def text(_: Request) -> Response:
        return PlainTextResponse("all good, probably")

    async def no_status(_: Request) -> Response:
        return JSONResponse({"version": "1.2.3"})

    async def nested(_: Request) -> Response:
        return JSONResponse({"data": {"status": "ok", "router": "ivy"}})

    async def dribble(_: Request) -> Response:
        # Each chunk arrives well within any per-read timeout, but the body never ends:
        # only an overall deadline can cut this.
        async def body() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" "
                await asyncio.sleep(0.05)

        return StreamingResponse(body(), media_type="application/json")

    async def echo(request: Request) -> Response:
        recorder.requests.append(
            {
                "method": request.method,
                "json": await request.json(),
                "headers": dict(request.headers),
            }
        )
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/ok", ok),
            Route("/degraded", degraded),
            Route("/maintenance", maintenance),
            Route("/unavailable", unavailable),
            Route("/text", text),
            Route("/no-status", no_status),
            Route("/nested", nested),
            Route("/dribble", dribble),
            Route("/functions/v1/agent-chat", echo, methods=["POST"]),
        ]
    )


@dataclass
class HttpServer:
    base: str
    port: int
    recorder: Recorder


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    recorder = Recorder()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        _make_app(recorder),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(5):
        while not server.started:
            if task.done():
                task.result()  # surface a startup error
            await asyncio.sleep(0.01)
    try:
        yield HttpServer(base=f"http://127.0.0.1:{port}", port=port, recorder=recorder)
    finally:
        server.should_exit = True
        async with asyncio.timeout(5):
            await task
        sock.close()


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never sends a byte."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(Exception):
            await reader.read()  # wait until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound then released, so connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: no proxy from the environment may route a probe off this host.
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


def _assert_cut(outcome: ProbeOutcome, timeout: float = 0.3) -> None:
    """Cut by our own timeout: the detail says so, and it took at least that long. (Callers run the probe under
    `finishes`, so a probe that is not cut fails instead of hanging the suite.)"""
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == f"timed out after {timeout:.1f} s"
    assert outcome.latency_ms >= timeout * 1000 * 0.9


# -------------------------------------------------------------------------------- http


async def test_http_json_ok(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(client, url=f"{http_server.base}/ok", json_field="status")
    assert outcome.status is ProbeStatus.OK
    assert outcome.detail == "HTTP 200, status ok"
    assert outcome.latency_ms > 0


async def test_http_status_only_ok(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    # Without json_field the body is not inspected, even when it is not JSON.
    outcome = await http_probe(client, url=f"{http_server.base}/text")
    assert outcome == ProbeOutcome(ProbeStatus.OK, outcome.latency_ms, "HTTP 200")


async def test_http_degraded(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(client, url=f"{http_server.base}/degraded", json_field="status")
    assert outcome.status is ProbeStatus.DEGRADED
    assert outcome.detail == 'body said "degraded"'


async def test_http_unexpected_status(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(client, url=f"{http_server.base}/unavailable", json_field="status")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == "HTTP 503 (expected 200)"


async def test_a_failing_answer_is_summarised_for_the_on_call(
    client: httpx.AsyncClient, http_server: HttpServer
) -> None:
    """/health shows what a failing service said (issue 14: FA's `healthy_targets: 0`): the JSON fields, or a short
    text; not the field the detail already quotes; nothing for an ok probe."""
    base = http_server.base
    unavailable = await http_probe(client, url=f"{base}/unavailable", json_field="status")
    assert (unavailable.detail, unavailable.body) == ("HTTP 503 (expected 200)", "status: down")
    not_json = await http_probe(client, url=f"{base}/text", json_field="status")
    assert not_json.body == "all good, probably"
    maintenance = await http_probe(client, url=f"{base}/maintenance", json_field="status")
    assert maintenance.detail.startswith('status was "maintenance"') and maintenance.body == ""
    no_status = await http_probe(client, url=f"{base}/no-status", json_field="status")
    assert no_status.body == "version: 1.2.3"
    nested = await http_probe(client, url=f"{base}/nested", json_field="status")
    assert nested.body == "data.status: ok, data.router: ivy"
    ok = await http_probe(client, url=f"{base}/ok", json_field="status")
    assert ok.status is ProbeStatus.OK and ok.body == ""


async def test_http_expect_status_is_configurable(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(client, url=f"{http_server.base}/unavailable", expect_status=503)
    assert outcome.status is ProbeStatus.OK
    assert outcome.detail == "HTTP 503"


async def test_http_not_json(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(client, url=f"{http_server.base}/text", json_field="status")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == "response was not JSON"


async def test_http_unexpected_value(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(client, url=f"{http_server.base}/maintenance", json_field="status")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == 'status was "maintenance", expected "ok"'


async def test_http_custom_ok_values(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(
        client, url=f"{http_server.base}/maintenance", json_field="status", ok_values=("ok", "maintenance")
    )
    assert outcome.status is ProbeStatus.OK
    assert outcome.detail == "HTTP 200, status maintenance"


async def test_http_missing_field(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(client, url=f"{http_server.base}/no-status", json_field="status")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == 'no "status" in the response'


async def test_http_dotted_field(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    outcome = await http_probe(client, url=f"{http_server.base}/nested", json_field="data.status")
    assert outcome.status is ProbeStatus.OK
    assert outcome.detail == "HTTP 200, data.status ok"

    missing = await http_probe(client, url=f"{http_server.base}/nested", json_field="data.health")
    assert missing.status is ProbeStatus.DOWN
    assert missing.detail == 'no "data.health" in the response'


async def test_http_post_sends_body_and_headers(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    # Mira Co-Pilot's runbook: POST /functions/v1/agent-chat -d '{"mode":"health"}'
    outcome = await http_probe(
        client,
        url=f"{http_server.base}/functions/v1/agent-chat",
        method="POST",
        json_body={"mode": "health"},
        headers={"Authorization": f"Bearer {SECRET}", "X-Probe": "mira-chatops"},
        json_field="status",
    )
    assert outcome.status is ProbeStatus.OK
    assert outcome.detail == "HTTP 200, status ok"
    assert SECRET not in outcome.detail

    [seen] = http_server.recorder.requests
    assert seen["method"] == "POST"
    assert seen["json"] == {"mode": "health"}
    assert seen["headers"]["authorization"] == f"Bearer {SECRET}"
    assert seen["headers"]["x-probe"] == "mira-chatops"
    assert seen["headers"]["content-type"] == "application/json"


async def test_http_server_that_never_answers_is_cut(client: httpx.AsyncClient, silent_port: int) -> None:
    outcome = await finishes(
        http_probe(client, url=f"http://127.0.0.1:{silent_port}/health", timeout=0.3),
        within=10,
        what="the probe",
    )
    _assert_cut(outcome)


async def test_http_endless_body_is_cut_by_the_outer_deadline(
    client: httpx.AsyncClient, http_server: HttpServer
) -> None:
    # Bytes arrive every 50 ms, so httpx's per-read timeout alone would never fire.
    outcome = await finishes(
        http_probe(client, url=f"{http_server.base}/dribble", json_field="status", timeout=0.3),
        within=10,
        what="the probe",
    )
    _assert_cut(outcome)


async def test_http_connection_refused(client: httpx.AsyncClient, closed_port: int) -> None:
    outcome = await http_probe(client, url=f"http://127.0.0.1:{closed_port}/health")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == "connection refused"


async def test_http_credentials_in_url_never_reach_detail(
    client: httpx.AsyncClient, closed_port: int
) -> None:
    outcome = await http_probe(
        client, url=f"http://alice:{SECRET}@127.0.0.1:{closed_port}/health?token={SECRET}"
    )
    assert outcome.status is ProbeStatus.DOWN
    assert SECRET not in outcome.detail
    assert "alice" not in outcome.detail


async def test_http_tls_error_is_short(client: httpx.AsyncClient, http_server: HttpServer) -> None:
    # Speaking TLS to a plain-HTTP server is a real TLS failure without leaving the host.
    outcome = await http_probe(client, url=f"https://127.0.0.1:{http_server.port}/ok")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail.startswith("TLS error: ")
    assert "_ssl.c" not in outcome.detail
    assert "\n" not in outcome.detail
    assert len(outcome.detail) <= 80


async def test_http_invalid_url_does_not_raise(client: httpx.AsyncClient) -> None:
    outcome = await http_probe(client, url="not a url")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == "invalid URL"


def test_dns_failure_classification() -> None:
    # A real resolver failure would need a DNS query off this host, so feed the classifier
    # the exception chain httpx produces for one (httpx.ConnectError <- socket.gaierror).
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -2] Name or service not known") from exc
    except httpx.ConnectError as exc:
        detail = _classify(exc, host="ivy.internal.example", timeout=2.0)
    assert detail == "DNS lookup failed for ivy.internal.example"


async def test_probes_run_concurrently(client: httpx.AsyncClient, silent_port: int, closed_port: int) -> None:
    # /health gathers every probe; each is cut by its own timeout (how long the gather takes is a benchmark).
    outcomes = await finishes(
        asyncio.gather(
            http_probe(client, url=f"http://127.0.0.1:{silent_port}/a", timeout=0.3),
            http_probe(client, url=f"http://127.0.0.1:{silent_port}/b", timeout=0.3),
            tcp_probe("127.0.0.1", closed_port, timeout=0.3),
            tcp_probe("127.0.0.1", silent_port, timeout=0.3),
        ),
        within=10,
        what="the gathered probes",
    )
    assert [o.status for o in outcomes] == [
        ProbeStatus.DOWN,
        ProbeStatus.DOWN,
        ProbeStatus.DOWN,
        ProbeStatus.OK,
    ]


# ---------------------------------------------------------------------------- postgres


async def test_postgres_ok(postgres_server_url: str) -> None:
    outcome = await postgres_probe(postgres_server_url)
    assert outcome.status is ProbeStatus.OK
    assert outcome.detail == "SELECT 1 ok"
    assert outcome.latency_ms > 0


async def test_postgres_connection_refused(closed_port: int) -> None:
    outcome = await postgres_probe(f"postgresql://postgres:{SECRET}@127.0.0.1:{closed_port}/test")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == "connection refused"


async def test_postgres_wrong_database_hides_password(postgres_server_url: str) -> None:
    dsn = make_conninfo(postgres_server_url, dbname="no_such_db_for_probes", password=SECRET)
    outcome = await postgres_probe(dsn)
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == 'database "no_such_db_for_probes" does not exist'
    assert SECRET not in outcome.detail


async def test_postgres_keyword_dsn_hides_password(closed_port: int) -> None:
    outcome = await postgres_probe(
        f"host=127.0.0.1 port={closed_port} dbname=test user=postgres password={SECRET}"
    )
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == "connection refused"
    assert SECRET not in outcome.detail


async def test_postgres_malformed_dsn_hides_password() -> None:
    outcome = await postgres_probe(f"host=127.0.0.1 password={SECRET} this-is-not-conninfo")
    assert outcome.status is ProbeStatus.DOWN
    assert SECRET not in outcome.detail


async def test_postgres_silent_server_is_cut(silent_port: int) -> None:
    outcome = await finishes(
        postgres_probe(f"postgresql://postgres@127.0.0.1:{silent_port}/test", timeout=0.3),
        within=10,
        what="the probe",
    )
    _assert_cut(outcome)


# ------------------------------------------------------------------------------- redis


async def test_redis_ok(redis_server_url: str) -> None:
    outcome = await redis_probe(redis_server_url)
    assert outcome.status is ProbeStatus.OK
    assert outcome.detail == "PONG"


async def test_redis_connection_refused(closed_port: int) -> None:
    outcome = await redis_probe(f"redis://:{SECRET}@127.0.0.1:{closed_port}/0")
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == "connection refused"
    assert SECRET not in outcome.detail


async def test_redis_silent_server_is_cut(silent_port: int) -> None:
    outcome = await finishes(
        redis_probe(f"redis://127.0.0.1:{silent_port}/0", timeout=0.3), within=10, what="the probe"
    )
    _assert_cut(outcome)


async def test_redis_invalid_url_does_not_raise() -> None:
    outcome = await redis_probe(f"http://user:{SECRET}@127.0.0.1:6379")
    assert outcome.status is ProbeStatus.DOWN
    assert SECRET not in outcome.detail


# --------------------------------------------------------------------------------- tcp


async def test_tcp_open(silent_port: int) -> None:
    outcome = await tcp_probe("127.0.0.1", silent_port)
    assert outcome.status is ProbeStatus.OK
    assert outcome.detail == "connected"


async def test_tcp_closed(closed_port: int) -> None:
    outcome = await tcp_probe("127.0.0.1", closed_port)
    assert outcome.status is ProbeStatus.DOWN
    assert outcome.detail == "connection refused"
