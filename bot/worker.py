"""One start/stop loop for the bot's background workers, and the replica's name.

The delivery worker, the rollback worker and the scheduler differ in what a pass does, not in how they run: a
pass, then a pause of `poll` seconds (cut short by `wake()` or `stop()`), a pass that raises is logged and the
loop carries on (the next pass retries), and `stop()` ends the loop between passes. A worker whose pass returns
True had more to do and goes again at once (the delivery worker after a full batch); `stop(grace)` gives a pass
in flight `grace` seconds to finish before it is cancelled (a rollback step mid-deploy), and `stopped()` runs
once the loop has ended (the rollback worker hands its leases on there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

log = logging.getLogger(__name__)


def new_replica_id() -> str:
    """The name this replica claims rows under (`claimed_by`, lease owners, job runs): host and process, plus a
    few random characters so two runtimes in one process (tests, the console) are two replicas."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Subclasses implement `run_pass`; `name` names the task and `failure` is what a failed pass logs."""

    name = "worker"
    failure = "worker pass failed; retrying"

    def __init__(self, *, poll: float) -> None:
        self.poll = poll
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    async def run_pass(self) -> bool:
        """One pass of the loop; True when there is more to do at once."""
        raise NotImplementedError

    async def stopped(self) -> None:
        """Runs after the loop has ended, on every `stop()`."""

    def wake(self) -> None:
        """Run the next pass now rather than at the next poll."""
        self._wake.set()

    async def between_passes(self) -> None:
        """Return once no pass of the loop is running."""
        await self._idle.wait()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            self._idle.clear()
            # Cleared before the pass, not after it: a wake-up that arrives while the pass runs (a webhook
            # stored after this pass claimed its batch) must run the next pass at once, not wait out the poll.
            self._wake.clear()
            try:
                again = await self.run_pass()
            except Exception:
                log.exception(self.failure, extra={"worker": self.name})
                again = False
            finally:
                self._idle.set()
            if again:
                continue
            wake = asyncio.ensure_future(self._wake.wait())
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({wake, stopping}, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
                stopping.cancel()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, grace: float = 0.0) -> None:
        """End the loop: at once (`grace` 0, the pass in flight is cancelled), or after the pass in flight when
        it finishes within `grace` seconds."""
        if self._task is not None:
            self._stopping.set()
            try:
                if grace <= 0:
                    raise TimeoutError
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self.stopped()
