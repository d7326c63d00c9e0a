"""Plain ASGI for the routes where the framework's share shows: a bounded body read and a prebuilt response.

The PagerDuty webhook route answers thousands of webhooks a second in a storm, and per webhook Starlette's
middleware, router, `Request` and `JSONResponse` cost about as much as everything the route itself decides
(docs/PERFORMANCE.md, issue 16). Its answers are a handful of fixed JSON documents, so they are rendered once
(`Prebuilt`) and sent as two ASGI messages; the body is read here with the same limit `BodyLimit` applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send


class BodyTooLarge(Exception):
    """The body (declared or as it streamed in) is over the route's limit."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole request body, at most `limit` bytes (`BodyTooLarge` past it, before reading any of it when
    Content-Length says so); None when the client hung up first."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise BodyTooLarge
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass(frozen=True)
class Prebuilt:
    """A JSON response rendered once: its status, headers and bytes as Starlette's `JSONResponse` sends them."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    @classmethod
    def json(cls, status: int, content: dict[str, str]) -> Prebuilt:
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
        headers = ((b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"))
        return cls(status, headers, body)

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def too_large(limit: int) -> Prebuilt:
    return Prebuilt.json(413, {"error": f"request body larger than {limit} bytes"})
