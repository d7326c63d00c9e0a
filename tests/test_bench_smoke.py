"""CI runs every benchmark with small numbers (`python -m bench all --smoke`) so the bench code cannot rot.

This asserts that each benchmark ran against a real `mira-bot serve` and wrote its figures to the JSON — never
what the figures are: timings belong to bench/ and docs/PERFORMANCE.md, not to a test on a shared machine.
The bench gets the suite's Postgres and Redis servers (it keeps to its own database and Redis database there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = [
    "ack",
    "ingest",
    "storm",
    "health",
    "latency",
    "memory",
    "delivery",
    "webhook_to_slack",
    "split",
]
#: Measures nothing, and says why, on a checkout whose CLI cannot run that way (no `mira-bot worker`).
MAY_SKIP = {"split"}
#: A liveness bound for the subprocess (the smoke run takes about a minute), not a performance claim.
HARD_LIMIT_S = 600


def test_every_benchmark_runs_in_the_smoke_profile_and_writes_its_json(
    tmp_path: Path, postgres_server_url: str, redis_server_url: str
) -> None:
    out = tmp_path / "smoke.json"
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": postgres_server_url,
        "BENCH_REDIS_URL": redis_server_url,
    }
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HARD_LIMIT_S,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["profile"]["name"] == "smoke"
    assert list(document["benchmarks"]) == BENCHMARKS
    for name in BENCHMARKS:
        result = document["benchmarks"][name]
        assert result["ran"] is True, result.get("error")
        if result["skipped"]:
            assert name in MAY_SKIP, f"{name} skipped: {result['skipped']}"
            assert "needs" in result["skipped"]
            assert f"skipped: {result['skipped']}" in finished.stdout
            continue
        assert result["rows"], f"{name} wrote no figures"
        for row in result["rows"]:
            assert row["bot"]["rounds"], f"{name}: {row['metric']} has no measured round"
    for name in (
        "ack",
        "ingest",
        "health",
        "latency",
        "delivery",
        "webhook_to_slack",
    ):  # baseline in the same run
        assert any(row["baseline"] for row in document["benchmarks"][name]["rows"]), name
    assert document["benchmarks"]["ingest"]["details"]["lost"] == 0
    drain = document["benchmarks"]["storm"]["details"]["drain"]  # the lifecycle storm: whatever it drained in
    assert drain["events"] == 5 * document["profile"]["drain_incidents"]  # time, nothing lost or doubled
    assert (drain["lost"], drain["posted_twice"]) == (0, 0)
    for round_ in document["benchmarks"]["delivery"]["details"]["rounds"]:
        assert (round_["stored"], round_["failed"], round_["posted_twice"]) == (round_["events"], 0, 0)
    for name in BENCHMARKS:  # the table printed at the end names every benchmark
        assert f"\n{name} " in finished.stdout
