"""The lifecycle shared by the recording fakes (:mod:`stand_ins.recording_slack`, :mod:`stand_ins.recording_supabase`,
:mod:`stand_ins.recording_pagerduty`).

Every recording server is a real HTTP server on an ephemeral loopback port, served by uvicorn in the *caller's*
event loop: the tests and the console talk to it over HTTP exactly as they would to the real API (so the real
clients, their encoding, retries and timeouts are what is exercised), binding port 0 means parallel runs never
collide, and running in the caller's loop lets a test ``await`` both the bot and the fake without threads.

:class:`RecordingServer` holds only that lifecycle -- start, stop, the port and URL, the condition ``wait_for``
waits on and the event that releases hung requests; each subclass keeps its own routes (``self.app``), recording
and fault injection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar

import uvicorn
from starlette.applications import Starlette

__all__ = ["RecordingServer"]

_Call = TypeVar("_Call")

#: How long :meth:`RecordingServer.start` waits for uvicorn to bind its port.
START_TIMEOUT = 10.0


class _InLoopServer(uvicorn.Server):
    """uvicorn server that leaves signal handling to the host process.

    ``uvicorn.Server.serve`` normally swaps in its own SIGINT/SIGTERM handlers and re-raises the signal only after
    shutting down.  Embedded in pytest or in the console, Ctrl-C must reach the host program immediately.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RecordingServer:
    """A fake API served on ``127.0.0.1:<ephemeral port>`` from the running event loop.

    Subclasses set :attr:`name` (used for the uvicorn task's name, ``recording-<name>-server``), build
    :attr:`app` in ``__init__`` (after calling ``super().__init__()``), and may override :meth:`_starting` /
    :meth:`_stopping` for their own background work.  Use as an async context manager, or call :meth:`start` /
    :meth:`stop` explicitly.
    """

    name: ClassVar[str] = "recording"
    app: Starlette

    def __init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._cond: asyncio.Condition | None = None
        self._release: asyncio.Event | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> Self:
        """Serve in the running event loop and wait until the port is bound."""
        label = type(self).__name__
        if self._task is not None:
            raise RuntimeError(f"{label} is already running")
        self._cond = asyncio.Condition()
        self._release = asyncio.Event()
        await self._starting()
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = _InLoopServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(), name=f"recording-{self.name}-server")
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if self._task.done():
                # Surface the startup failure (uvicorn raises SystemExit on bind errors).
                task, self._task = self._task, None
                await self._stopping()
                try:
                    task.result()
                except SystemExit as exc:
                    raise RuntimeError(f"{label} failed to start") from exc
                raise RuntimeError(f"{label} exited during startup")
            if time.monotonic() > deadline:
                await self.stop()
                raise TimeoutError(f"{label} did not start within {START_TIMEOUT:g}s")
            await asyncio.sleep(0.005)
        self._port = server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Release hung requests, shut uvicorn down and wait for it; safe to call twice."""
        if self._release is not None:
            self._release.set()
        await self._stopping()
        task, self._task = self._task, None
        if self._server is not None:
            self._server.should_exit = True
        if task is not None:
            await task
        self._server = None
        self._port = None

    async def _starting(self) -> None:
        """Hook: start the subclass's own background work, just before uvicorn starts."""

    async def _stopping(self) -> None:
        """Hook: stop the subclass's own background work, before uvicorn shuts down (or when it failed to start).

        Must be safe to call when nothing was started, and twice.
        """

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------------ URLs

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------------------------------ internals

    async def _wait_matching(
        self, matching: Callable[[], list[_Call]], count: int, timeout: float, report: Callable[[], str]
    ) -> list[_Call]:
        """Wait until `matching()` holds `count` calls (woken per recorded call, no polling); on timeout raise
        TimeoutError with `report()`, so a failing test says what the server did receive."""
        cond = self._require_cond()
        try:
            async with asyncio.timeout(timeout), cond:
                await cond.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            raise TimeoutError(report()) from None
        return matching()

    @staticmethod
    def _received(calls: Sequence[Any], wanted: str, matched: int) -> str:
        """The timeout report of a REST fake: what was awaited, and the last calls (method, path, status, body)."""
        lines = [f"{wanted}; {matched} matched. Received {len(calls)} call(s):"]
        lines += [f"  {c.method} {c.path} [{c.status}] {json.dumps(c.body)[:200]}" for c in calls[-25:]]
        return "\n".join(lines)

    def _require_cond(self) -> asyncio.Condition:
        """The condition :meth:`wait_for`-style helpers wait on, notified whenever something is recorded."""
        if self._cond is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use `async with`")
        return self._cond


class _Counted(Protocol):
    remaining: int


F = TypeVar("F", bound=_Counted)


def take_fault(faults: dict[str, list[F]], method: str) -> F | None:
    """The next fault queued for `method`, used once more: it leaves the queue when its count is spent. The one
    fault queue of the recording servers that key faults by method (Slack, Supabase)."""
    queue = faults.get(method)
    if not queue:
        return None
    fault = queue[0]
    fault.remaining -= 1
    if fault.remaining <= 0:
        queue.pop(0)
    return fault
