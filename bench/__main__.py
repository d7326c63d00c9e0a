"""`python -m bench all` (or `python -m bench ack storm …`): run the benchmarks, print the table, write the JSON.

    python -m bench all                 the full profile, the figures docs/PERFORMANCE.md reports (~40 minutes)
    python -m bench all --smoke         every benchmark with small numbers, a few seconds each (CI runs this)
    python -m bench latency --rounds 3  one benchmark, fewer rounds

Exit status 0 when every benchmark asked for ran and wrote its figures, whatever they are (targets are reported,
not enforced: a noisy machine must not fail CI); 1 when one could not run; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import environment, report
from bench.benchmarks import ack, delivery, health, ingest, latency, memory, split, storm, webhook_to_slack
from bench.core import FULL, SMOKE, BenchResult, Context
from stand_ins.recording_slack import RecordingSlackServer

BENCHMARKS = {
    "ack": ack.run,
    "ingest": ingest.run,
    "storm": storm.run,
    "health": health.run,
    "latency": latency.run,
    "memory": memory.run,
    "delivery": delivery.run,
    "webhook_to_slack": webhook_to_slack.run,
    "split": split.run,
}
DEFAULT_OUT = environment.ROOT / "bench" / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["all"], help=f"all, or some of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--smoke", action="store_true", help="small numbers: proves the benchmarks run (CI)")
    parser.add_argument("--rounds", type=int, help="rounds per benchmark (default: the profile's)")
    parser.add_argument(
        "--py-spy", action="store_true", help="record each bot with py-spy (speedscope JSON beside the logs)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT})")
    return parser


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _run(names: list[str], ctx: Context) -> tuple[list[BenchResult], dict[str, Any]]:
    results: list[BenchResult] = []
    documents: dict[str, Any] = {}
    for name in names:
        _log(f"▶ {name}")
        started = time.monotonic()
        try:
            result = await BENCHMARKS[name](ctx)
        except Exception as exc:
            _log(f"✖ {name} did not run: {exc}")
            documents[name] = {"ran": False, "error": "".join(traceback.format_exception(exc))}
            continue
        result.seconds = time.monotonic() - started
        results.append(result)
        documents[name] = result.as_json()
        _log(f"✔ {name} in {result.seconds:.1f} s")
    return results, documents


async def _main(args: argparse.Namespace, names: list[str]) -> int:
    profile = SMOKE if args.smoke else FULL
    if args.rounds:
        profile = dataclasses.replace(
            profile,
            rounds=args.rounds,
            single_rounds=args.rounds,
            storm_rounds=min(args.rounds, profile.storm_rounds),
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.out.resolve().parent / f"run-{profile.name}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    machine = environment.machine()
    _log(
        f"bench: {profile.name} profile, {', '.join(names)}; load average {machine['load_average_at_start']}"
    )
    storage = await asyncio.to_thread(environment.open_storage)
    try:
        postgres = await asyncio.to_thread(environment.postgres_settings, storage.database_url)
        async with RecordingSlackServer() as slack:
            ctx = Context(
                profile=profile, storage=storage, slack=slack, run_dir=run_dir, log=_log, py_spy=args.py_spy
            )
            started = time.monotonic()
            results, documents = await _run(names, ctx)
    finally:
        await asyncio.to_thread(storage.close)
    document = {
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "profile": dataclasses.asdict(profile),
        "started_at": stamp,
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine,
        "load_average_at_end": environment.load_average(),
        "storage": {"kind": storage.kind, "postgres": postgres, "redis_db": environment.BENCH_REDIS_DB},
        "logs": str(run_dir),
        "benchmarks": documents,
        "markdown_table": report.markdown_table(results),
    }
    report.write_json(args.out, document)
    print(report.table(results))
    print(
        f"\n{profile.name} profile on {machine['cores']} cores ({machine['cpu_model']}), load average "
        f"{machine['load_average_at_start']} at start, {document['load_average_at_end']} at end; "
        f"JSON: {args.out}"
    )
    if profile.name == "smoke":
        print("(smoke figures prove that the benchmarks run; they are not measurements)")
    return 0 if all(doc.get("ran") for doc in documents.values()) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = list(BENCHMARKS) if args.names in (["all"], []) else args.names
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(
            f"python -m bench: unknown benchmark {unknown[0]!r}; choose from all, {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(_main(args, names))


if __name__ == "__main__":
    sys.exit(main())
