"""A recording deploy hook: the far end of a rollback's `deploy` steps, for tests and the console.

It accepts what `integrations.deploy_hooks` sends — a signed webhook POST at `/hooks/{name}`, or a GitHub
`workflow_dispatch` at `/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches` — records each call with its
headers and JSON body, checks the `X-Mira-Signature` when a secret is registered, and answers what the test asks:
200 by default, `fail_next(status)` for an outage (`echo=True`: a receiver whose error quotes what it got -- the
query string, the Authorization header, the secret it checks with), `status_after(polls)` to make a status URL
report `running` before `success`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations.deploy_hooks import sign
from stand_ins.recording_base import RecordingServer


@dataclass(frozen=True)
class HookRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    signature_ok: bool | None  # None: no secret registered for this hook


@dataclass
class _StatusScript:
    running_polls: int
    final: str
    polls: int = 0


@dataclass
class _Faults:
    statuses: list[tuple[int, bool]] = field(default_factory=list)  # (status, echo the request)


class RecordingHookServer(RecordingServer):
    name: ClassVar[str] = "hooks"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[HookRequest] = []
        self._secrets: dict[str, str] = {}
        self._faults = _Faults()
        self._status: dict[str, _StatusScript] = {}
        self.app = Starlette(
            routes=[
                Route("/hooks/{name}", self._hook, methods=["POST"]),
                Route(
                    "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches",
                    self._hook,
                    methods=["POST"],
                ),
                Route("/status/{name}", self._status_endpoint, methods=["GET"]),
            ]
        )

    def url(self, name: str) -> str:
        return f"{self.base_url}/hooks/{name}"

    def status_url(self, name: str) -> str:
        return f"{self.base_url}/status/{name}"

    def require_secret(self, name: str, secret: str) -> None:
        """Check the signature of calls to `/hooks/{name}` against `secret`."""
        self._secrets[name] = secret

    def fail_next(self, status: int = 500, count: int = 1, *, echo: bool = False) -> None:
        """Answer the next `count` hook calls with `status`; with `echo`, the error quotes the request's query
        string and Authorization header and the hook's registered secret, as a careless receiver would."""
        self._faults.statuses.extend([(status, echo)] * count)

    def status_after(self, name: str, running_polls: int, final: str = "success") -> None:
        """`/status/{name}` answers `running` `running_polls` times, then `final`."""
        self._status[name] = _StatusScript(running_polls, final)

    async def wait_for_calls(self, count: int, timeout: float = 10.0) -> list[HookRequest]:  # noqa: ASYNC109
        cond = self._require_cond()
        async with cond:
            await asyncio.wait_for(cond.wait_for(lambda: len(self.calls) >= count), timeout)
        return list(self.calls)

    async def _hook(self, request: Request) -> Response:
        raw = await request.body()
        name = request.path_params.get("name", "")
        secret = self._secrets.get(name)
        signature_ok = None
        if secret is not None:
            expected = sign(secret, request.headers.get("x-mira-timestamp", ""), raw)
            signature_ok = hmac.compare_digest(expected, request.headers.get("x-mira-signature", ""))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        self.calls.append(HookRequest(request.url.path, dict(request.headers), body, signature_ok))
        cond = self._require_cond()
        async with cond:
            cond.notify_all()
        if signature_ok is False:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if self._faults.statuses:
            status, echo = self._faults.statuses.pop(0)
            if echo:
                quoted = (
                    f"deploy refused {request.method} {request.url.path}?{request.url.query} "
                    f"(Authorization: {request.headers.get('authorization', 'none')}; "
                    f"checked with secret {secret or 'none'})"
                )
                return JSONResponse({"error": quoted}, status_code=status)
            return JSONResponse({"error": f"deploy failed with {status}"}, status_code=status)
        if request.url.path.endswith("/dispatches"):
            return Response(status_code=204)
        return JSONResponse({"ok": True, "accepted": body.get("step")})

    async def _status_endpoint(self, request: Request) -> Response:
        script = self._status.get(request.path_params["name"])
        if script is None:
            return JSONResponse({"status": "success"})
        script.polls += 1
        state = "running" if script.polls <= script.running_polls else script.final
        return JSONResponse({"status": state})
