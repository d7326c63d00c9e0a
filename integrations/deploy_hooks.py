"""Deploy hooks: the HTTP calls a rollback's `deploy` steps make, and the status polling that follows.

Two kinds, both from the catalog:
- `webhook`: a JSON POST signed with a shared secret (`X-Mira-Signature: sha256=HMAC(secret, "{timestamp}.{body}")`
  and `X-Mira-Timestamp`), the scheme Slack and GitHub use, so the receiver can reject forgeries and replays.
- `github_workflow`: GitHub's `POST /repos/{owner}/{repo}/actions/workflows/{id}/dispatches` with a token,
  `{"ref": …, "inputs": {…}}`; GitHub answers 204 and runs the workflow.

Every call carries `Idempotency-Key: rollback-{run}-step-{n}-attempt-{k}`: the bot never sends one attempt twice,
and a receiver that dedupes on the key is safe even against a proxy's retry. When a status URL is known (the
catalog's `status_url`, or a `status_url` in the hook's JSON answer) it is polled until it reports success or
failure, or the hook's timeout passes. Errors are `DeployHookError`s worded for the thread; the secret and the URL's
query string never appear in them.

A hook URL may carry credentials: `https://user:pass@host/path?token=…` (httpx sends the userinfo as Basic auth).
Everything secret about a hook -- the `secret_env` value, the URL's user and password, their Basic auth token, the
query values -- is `hook_secrets(...)`: it is blanked from the hook's own answer before that answer is quoted
(a receiver that echoes its request must not put the token in the thread), and the bot adds it to the secrets its
Slack client and its log lines blank (`bot.redaction.catalog_secrets`). A hook is shown as `where(url)`: scheme,
host and path only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

from integrations.transport_errors import connection_cause

SUCCESS = {"success", "succeeded", "completed", "complete", "ok", "done", "deployed"}
FAILURE = {"failure", "failed", "error", "errored", "cancelled", "canceled", "timed_out"}


class DeployHookError(Exception):
    """The hook refused, failed or timed out; `str()` is safe to show in Slack."""


@dataclass(frozen=True)
class HookCall:
    kind: str  # webhook | github_workflow
    url: str
    inputs: Mapping[str, str]
    secret: str | None
    idempotency_key: str
    context: Mapping[str, Any]  # who and what: service, plan, step, run id — sent to webhooks
    status_url: str | None = None
    timeout_s: float = 600
    poll_s: float = 5


@dataclass(frozen=True)
class HookResult:
    status: int
    summary: str  # "webhook answered 202" / "deployed (status URL: success after 3 polls)"


BLANK = "**********"


def where(url: str) -> str:
    """Scheme, host (and port) and path: never the user and password, the query string or the fragment, which
    is where hook URLs carry their credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an unreadable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}{parts.path}"


def hook_secrets(url: str | None, secret: str | None = None) -> list[str]:
    """Every value that is secret about a hook: `secret` (the `secret_env` value), the URL's user and password
    (as written and percent-decoded), `user:password`, the Basic auth token httpx makes of them, and the values of
    the query string (and the query string itself). Longest first, so a longer secret is blanked before a part
    of it."""
    found = [secret or ""]
    if url:
        try:
            parts = urlsplit(url)
            user, password = parts.username, parts.password
        except ValueError:
            parts, user, password = None, None, None
        if parts is not None:
            if user is not None or password is not None:
                decoded = (unquote(user or ""), unquote(password or ""))
                basic = base64.b64encode(f"{decoded[0]}:{decoded[1]}".encode()).decode()
                found += [user or "", password or "", *decoded, f"{decoded[0]}:{decoded[1]}", basic]
            if parts.query:
                found.append(parts.query)
                for pair in parts.query.split("&"):
                    found.append(pair.partition("=")[2])
                found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    return sorted({value for value in found if value}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with each of `secrets` blanked."""
    for value in secrets:
        if value in text:
            text = text.replace(value, BLANK)
    return text


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _request(call: HookCall) -> tuple[bytes, dict[str, str]]:
    headers = {"Content-Type": "application/json", "Idempotency-Key": call.idempotency_key}
    if call.kind == "github_workflow":
        inputs = dict(call.inputs)
        body = json.dumps({"ref": inputs.pop("ref", "main"), "inputs": inputs}).encode()
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = "2022-11-28"
        if call.secret:
            headers["Authorization"] = f"Bearer {call.secret}"
        return body, headers
    body = json.dumps({**call.context, "inputs": dict(call.inputs)}, sort_keys=True).encode()
    if call.secret:
        timestamp = str(int(time.time()))
        headers["X-Mira-Timestamp"] = timestamp
        headers["X-Mira-Signature"] = sign(call.secret, timestamp, body)
    return body, headers


def _answer_words(response: httpx.Response, secrets: list[str]) -> str:
    """The start of what the hook said, its secrets blanked first (clipping first could leave half a token)."""
    text = response.text.strip().replace("\n", " ")
    try:
        document = response.json()
        if isinstance(document, dict):
            text = str(document.get("message") or document.get("error") or text)
    except ValueError:
        pass
    return scrub(text, secrets)[:200]


def _status_url_from(response: httpx.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        return None
    url = document.get("status_url") if isinstance(document, dict) else None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


async def trigger(
    http: httpx.AsyncClient, call: HookCall, *, monotonic: Callable[[], float] = time.monotonic
) -> HookResult:
    """Call the hook once, then follow its status URL if there is one."""
    body, headers = _request(call)
    secrets = hook_secrets(call.url, call.secret) + hook_secrets(call.status_url)
    try:
        response = await http.post(call.url, content=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        cause = connection_cause(exc, urlsplit(call.url).hostname)
        raise DeployHookError(
            scrub(f"could not reach the deploy hook at {where(call.url)}: {cause}", secrets)
        ) from None
    if not response.is_success:
        raise DeployHookError(
            scrub(
                f"the deploy hook at {where(call.url)} answered {response.status_code}: {_answer_words(response, secrets)}",
                secrets,
            )
        )
    status_url = _status_url_from(response) or call.status_url
    if status_url is None:
        return HookResult(response.status_code, f"{where(call.url)} answered {response.status_code}")
    return await _follow(http, status_url, call, monotonic, secrets + hook_secrets(status_url))


async def _follow(
    http: httpx.AsyncClient,
    status_url: str,
    call: HookCall,
    monotonic: Callable[[], float],
    secrets: list[str],
) -> HookResult:
    deadline = monotonic() + call.timeout_s
    polls = 0
    last = "no answer yet"
    while True:
        polls += 1
        try:
            response = await http.get(status_url, headers={"Accept": "application/json"}, timeout=30.0)
            document = response.json() if response.is_success else None
            state = str(document.get("status", "")).lower() if isinstance(document, dict) else ""
            last = scrub(state, secrets) or f"HTTP {response.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            state, last = "", f"unreadable ({type(exc).__name__})"
        if state in SUCCESS:
            return HookResult(200, f"{where(status_url)} reported {state} after {polls} poll(s)")
        if state in FAILURE:
            raise DeployHookError(f"the deployment reported {state} at {where(status_url)}")
        if monotonic() + call.poll_s > deadline:
            raise DeployHookError(
                f"the deployment did not finish within {call.timeout_s:g} s (last status: {last})"
            )
        await asyncio.sleep(call.poll_s)
