"""The processes a benchmark starts: the bot (`mira-bot serve`), its baselines, the probe stand-ins, the load.

Each runs as a child process over loopback, as in production: the bot is the console script an operator runs,
configured only through its environment (README, Operator interface). Every child's output goes to a log file
under bench/results/logs, so a failed start shows its reason instead of a timeout. Children are stopped by their
own pid (SIGTERM, then SIGKILL after a grace period), never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from bench.environment import ROOT, free_port

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The parent's environment without proxies (loopback only) and without any catalog or Slack setting of the
    person running the bench, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    for name in list(env):
        if name.startswith(
            ("SLACK_", "PAGERDUTY_", "SUPABASE_", "BOT_", "MIRA_", "IVY_", "AI_ASSISTANT_", "FA_")
        ):
            del env[name]
    for name in ("DATABASE_URL", "REDIS_URL", "HOST", "PORT", "STATE_DIR", "STORM_THRESHOLD", "LOG_LEVEL"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


#: What a bot process runs: everything in one (the default), the HTTP side alone, the background work alone.
SERVE = ("serve",)
WEB_ONLY = ("serve", "--web-only")
WORKER = ("worker",)


def mira_bot_command(args: tuple[str, ...] = SERVE) -> list[str]:
    """`mira-bot serve` (or `args`) from the same environment as this interpreter (the project's .venv)."""
    script = Path(sys.executable).parent / "mira-bot"
    if script.exists():
        return [str(script), *args]
    found = shutil.which("mira-bot")
    return [found, *args] if found else [sys.executable, "-m", "bot.cli", *args]


def split_missing() -> str | None:
    """Why this checkout cannot run the split (`serve --web-only` and `worker`), or None when it can."""
    for args, what in ((("worker", "--help"), "mira-bot worker"), (("serve", "--help"), "--web-only")):
        try:
            done = subprocess.run(
                mira_bot_command(args),
                capture_output=True,
                text=True,
                timeout=60,
                cwd=str(ROOT),
                env=child_environment({}),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"needs {what} ({exc})"
        if done.returncode != 0 or (what == "--web-only" and what not in done.stdout):
            return f"needs {what}: this checkout's CLI does not have it"
    return None


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident set size now, its peak) of a process in MiB, from /proc/PID/status."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _open_log(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


class Child:
    """A child process with its log file and a URL it serves on."""

    stop_signal = signal.SIGTERM

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def spawn(self) -> None:
        with _open_log(self.log_path) as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                cwd=str(ROOT),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def wait_http(self, url: str, timeout: float = 90.0) -> None:
        """Until `url` answers 200, or fail with the child's last log lines."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            while True:
                if self.process is not None and self.process.returncode is not None:
                    raise RuntimeError(
                        f"{self.name} exited with status {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} did not answer {url} within {timeout:g} s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.1)

    async def stop(self, grace: float = 15.0) -> int | None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return process.returncode if process else None
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(self.stop_signal)
        try:
            return await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait()


class Profiler(Child):
    """py-spy recording a running process until stopped (SIGINT makes it write its profile)."""

    stop_signal = signal.SIGINT

    def __init__(self, name: str, pid: int, out: Path, log_dir: Path) -> None:
        command = ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "speedscope"]
        command += ["--output", str(out), "--nonblocking"]
        super().__init__(name, command, child_environment({}), log_dir)


class BotProcess(Child):
    """`mira-bot serve` (or `args`: `serve --web-only`, `worker`, which answers /readyz too) on a free loopback
    port, configured like production through its environment. With `profile_to`, py-spy records it from start to
    stop (a speedscope JSON file to open at speedscope.app)."""

    def __init__(
        self,
        name: str,
        settings: dict[str, str],
        log_dir: Path,
        profile_to: Path | None = None,
        args: tuple[str, ...] = SERVE,
    ) -> None:
        self.port = free_port()
        env = child_environment({"HOST": "127.0.0.1", "PORT": str(self.port), **settings})
        super().__init__(name, mira_bot_command(args), env, log_dir)
        self.profile_to = profile_to
        self.profiler: Profiler | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> BotProcess:
        await self.spawn()
        await self.wait_http(self.url + "/readyz")
        if self.profile_to is not None:
            self.profiler = Profiler(f"py-spy-{self.name}", self.pid, self.profile_to, self.log_path.parent)
            await self.profiler.spawn()
        return self

    async def stop(self, grace: float = 15.0) -> int | None:
        if self.profiler is not None:
            await self.profiler.stop(grace=30.0)
            self.profiler = None
        return await super().stop(grace)

    def rss(self) -> tuple[float, float]:
        return rss_mb(self.pid)


class SplitBot:
    """`mira-bot serve --web-only` and `mira-bot worker` on one database and Redis: requests go to the web one."""

    def __init__(self, web: BotProcess, worker: BotProcess) -> None:
        self.web = web
        self.worker = worker

    @property
    def url(self) -> str:
        return self.web.url

    async def start(self) -> SplitBot:
        await self.web.start()  # first: it migrates the schema the worker then reads
        await self.worker.start()
        return self

    async def stop(self, grace: float = 15.0) -> int | None:
        worker = await self.worker.stop(grace)
        web = await self.web.stop(grace)
        return web if web else worker

    def rss(self) -> tuple[float, float]:
        web, worker = self.web.rss(), self.worker.rss()
        return web[0] + worker[0], web[1] + worker[1]


class ModuleServer(Child):
    """One of the bench's own servers (`python -m bench.<module> …`) on a free loopback port."""

    def __init__(self, name: str, module: str, args: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", module, "--port", str(self.port), *args]
        super().__init__(name, command, child_environment(env), log_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, ready_path: str = "/ready") -> ModuleServer:
        await self.spawn()
        await self.wait_http(self.url + ready_path, timeout=30.0)
        return self


async def run_load(spec: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """Run the load generator (bench/load.py) in its own process and return its result."""
    with _open_log(log_dir / "load.log") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load",
            env=child_environment({}),
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        out, _ = await process.communicate(json.dumps(spec).encode())
    if process.returncode != 0:
        tail = (log_dir / "load.log").read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError("the load generator failed:\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(out)
    return result
