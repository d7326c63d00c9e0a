"""The useful part of a failing health answer, for /health to show beside "HTTP 503 (expected 200)".

A thin helper of integrations/probes.py, apart so the probes stay readable: plain text out, never escaped here
(the renderer escapes it), fields that look like credentials left out, always short.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

_MISSING = object()

#: A failing answer's summary is at most this long; fields that look like credentials are left out.
BODY_CHARS = 200
_SECRET_KEY = re.compile(r"pass|secret|token|key|auth|cookie|dsn|credential", re.IGNORECASE)
_SCALARS = (str, int, float, bool, type(None))


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _fields(document: dict[str, Any], known: str | None, prefix: str = "") -> list[str]:
    """`key: value` for a JSON object's scalar fields, and one level of nested objects (`checks.db: down`);
    not the `known` field (the probe's `json_field`, whose value the probe's detail already quotes)."""
    parts = []
    for key, value in document.items():
        if _SECRET_KEY.search(str(key)) or f"{prefix}{key}" == known:
            continue
        if isinstance(value, _SCALARS):
            parts.append(f"{prefix}{key}: {_scalar(value)}")
        elif isinstance(value, dict) and not prefix:
            parts.extend(_fields(value, known, f"{key}."))
    return parts


def body_summary(response: httpx.Response, known: str | None = None) -> str:
    """What a failing health answer says, in one short line: a JSON object's fields (FA's ALB check answers
    `{"status": "unhealthy", "healthy_targets": 0}` with its 503, the P0 "Zero healthy targets"), or a short
    plain-text body; nothing for an HTML error page, a long text or an empty body."""
    try:
        document = response.json()
    except (ValueError, UnicodeDecodeError):
        document = _MISSING
    if isinstance(document, dict):
        summary = ", ".join(_fields(document, known))
    elif document is not _MISSING:
        summary = json.dumps(document, ensure_ascii=False)
    else:
        try:
            text = response.text.strip()
        except Exception:
            return ""
        if not text or text.startswith("<") or "html" in response.headers.get("content-type", ""):
            return ""
        summary = " ".join(text.split()) if len(text) <= BODY_CHARS * 2 else ""
    return summary if len(summary) <= BODY_CHARS else summary[: BODY_CHARS - 1] + "…"
