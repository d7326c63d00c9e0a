"""The recording Slack server's fault injection: refused, accepted-then-failed, held and late calls; rate limits.

Split from :mod:`stand_ins.recording_slack`, whose call pipeline (:meth:`RecordingSlackServer._api_endpoint`)
consults these: a *refusing* fault (:meth:`~SlackFaults.fail_next`) or Slack's per-channel rate limit
(:meth:`~SlackFaults.enforce_rate_limit`) answers before anything is applied (:meth:`~SlackFaults._check_faults`);
the others are taken after (:meth:`~SlackFaults._take_fault`) -- the call is carried out and then answered with a
failure (:meth:`~SlackFaults.fail_after_accept`), never answered (:meth:`~SlackFaults.accept_and_hang`), or
carried out late (:meth:`~SlackFaults.apply_late`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse, Response

from stand_ins.recording_base import take_fault
from stand_ins.slack_records import NO_ANSWER, SlackCall, _Fault
from stand_ins.slack_store import SlackMessageStore


class SlackFaults(SlackMessageStore):
    """Fault injection and rate limiting of :class:`stand_ins.recording_slack.RecordingSlackServer`."""

    _faults: dict[str, list[_Fault]]
    _held: asyncio.Event
    _rate_limits: dict[str, float]
    _last_accepted: dict[tuple[str, str], float]
    rate_limited_count: int

    # ------------------------------------------------------------------ configuration

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        count: int = 1,
        error: str | None = None,
    ) -> None:
        """Make the next ``count`` calls to ``method`` fail with HTTP ``status``.

        ``429`` carries ``Retry-After: retry_after`` and ``{"ok": false, "error":
        "ratelimited"}``; other statuses answer ``error`` (default ``internal_error``).
        ``method`` may also be ``"files.upload_bytes"`` or ``"response_url"``.
        The failed calls are still recorded, with their status.
        """
        self._faults.setdefault(method, []).append(
            _Fault(status=status, retry_after=retry_after, remaining=count, error=error)
        )

    def fail_after_accept(
        self, method: str, status: int = 500, count: int = 1, error: str | None = None
    ) -> None:
        """The next ``count`` calls to ``method`` are carried out (a message is stored) and then answered with
        HTTP ``status`` anyway: the client cannot tell that Slack applied them, as after a timeout."""
        self._faults.setdefault(method, []).append(
            _Fault(status=status, retry_after=1, remaining=count, error=error, mode="accept")
        )

    def accept_and_hang(self, method: str, count: int = 1) -> None:
        """The next ``count`` calls to ``method`` are carried out and never answered (until
        :meth:`release_held` or :meth:`stop`): the moment after Slack accepted a post and before the poster got
        the ``ts`` — where a process killed now leaves a posted message it never recorded. Held calls are
        recorded with status :data:`NO_ANSWER`; :meth:`wait_held` waits for them."""
        self._faults.setdefault(method, []).append(
            _Fault(status=NO_ANSWER, retry_after=1, remaining=count, error=None, mode="hang")
        )

    def apply_late(self, method: str, after: float, count: int = 1) -> None:
        """The next ``count`` calls to ``method`` go unanswered for ``after`` seconds; only then are they carried out
        (a message is stored, with the ``ts`` of that moment) and answered. With ``after`` longer than the client's
        timeout, the client gives up first and the message appears later: "Slack stored it at 12 s, the client gave
        up at 10 s". The call is recorded on arrival with status :data:`NO_ANSWER`; once applied it shows status
        200 and its ``response``."""
        self._faults.setdefault(method, []).append(
            _Fault(status=200, retry_after=1, remaining=count, error=None, mode="late", delay=after)
        )

    def release_held(self) -> None:
        """Answer every call held by :meth:`accept_and_hang` (clients that are gone get nothing)."""
        self._held.set()
        self._held = asyncio.Event()

    async def wait_held(self, count: int = 1, timeout: float = 10.0) -> list[SlackCall]:
        """Wait until ``count`` calls are being held; return them."""
        cond = self._require_cond()

        def held() -> list[SlackCall]:
            return [c for c in self._calls if not c.answered]

        async with asyncio.timeout(timeout), cond:
            await cond.wait_for(lambda: len(held()) >= count)
        return held()

    def enforce_rate_limit(
        self, method: str = "chat.postMessage", per_channel_per_second: float = 1.0
    ) -> None:
        """Apply Slack's per-channel limit to ``method`` from now on.

        A call for a channel arriving sooner than ``1 / per_channel_per_second`` after
        the previous *accepted* call for that channel gets ``429`` with
        ``Retry-After: 1``; :attr:`rate_limited_count` counts those.
        """
        if per_channel_per_second <= 0:
            raise ValueError("per_channel_per_second must be positive")
        self._rate_limits[method] = 1.0 / per_channel_per_second

    # ------------------------------------------------------------------ per call

    def _take_fault(self, method: str) -> _Fault | None:
        return take_fault(self._faults, method)

    @staticmethod
    def _fault_response(fault: _Fault) -> Response:
        if fault.status == 429:
            return JSONResponse(
                {"ok": False, "error": fault.error or "ratelimited"},
                status_code=429,
                headers={"Retry-After": str(fault.retry_after)},
            )
        return JSONResponse({"ok": False, "error": fault.error or "internal_error"}, status_code=fault.status)

    def _check_faults(self, method: str, body: dict[str, Any], now: float) -> Response | None:
        """Injected failure (refusing ones; see :meth:`_api_endpoint` for the others) or enforced rate limit."""
        faults = self._faults.get(method)
        if faults and faults[0].mode == "refuse":
            fault = self._take_fault(method)
            assert fault is not None
            return self._fault_response(fault)
        interval = self._rate_limits.get(method)
        channel = body.get("channel") or body.get("channel_id")
        if interval is not None and isinstance(channel, str) and channel:
            key = (method, self.channel_id(channel))
            last = self._last_accepted.get(key)
            if last is not None and now - last < interval:
                self.rate_limited_count += 1
                return JSONResponse(
                    {"ok": False, "error": "ratelimited"}, status_code=429, headers={"Retry-After": "1"}
                )
            self._last_accepted[key] = now
        return None
