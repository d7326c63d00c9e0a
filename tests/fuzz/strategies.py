"""What the fuzz targets draw from: command text as people (and attackers) type it, and PagerDuty payloads of any
shape. `examples(n)` is the per-target count: `n` in CI, the long profile's 10,000 under MIRA_FUZZ=long.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from bot.catalog import load_catalog
from tests import pd_payloads as pd


def examples(fast: int) -> int:
    """`fast` examples in the CI profile; the long profile's count (≥ 10,000) otherwise."""
    profile = settings.get_profile("long")
    return fast if settings.default.max_examples < profile.max_examples else settings.default.max_examples


def fuzz(fast: int) -> settings:
    return settings(max_examples=examples(fast))


INJECTIONS = [
    "'; DROP TABLE audit_log; --",
    "1; DELETE FROM flag_changes",
    "' OR '1'='1",
    '"); DROP TABLE pd_webhooks; --',
    "1 UNION SELECT secret FROM pg_shadow",
    "$$; DROP SCHEMA public CASCADE; $$",
    "%s%s%s%(x)s",
    "{0}{table}",
    "\\x00\\'",
    "Robert'); DROP TABLE incidents;--",
]

_CATALOG = load_catalog(env={})
VOCABULARY = sorted(
    {
        *(name for s in _CATALOG.services for name in [s.name, *s.aliases, s.display_name]),
        *(f.name for s in _CATALOG.services for f in s.flags),
        *(f"{s.name}:{f.name}" for s in _CATALOG.services for f in s.flags),
        *(p.name for s in _CATALOG.services for p in s.presets),
        *("list", "get", "set", "on", "off", "unset", "preset", "revert", "rollout", "help", "-h", "?"),
        *("status", "plans", "handoff", "checklist", "all", "errors", "5m", "1h", "24h", "7d", "10%", "100%"),
        *("true", "false", "0", "1", "-1", "42", "600", "601", "99999999999999999999", "1e9", "NaN"),
        *INJECTIONS,
    }
)
SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u200b", "\u3000", " \r\n "])
WORD = st.one_of(
    st.sampled_from(VOCABULARY),
    st.text(min_size=1, max_size=12),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    st.sampled_from(["x" * 5_000, "🔥" * 2_000, "\u0000", "\ufeff", "é́́", "<@U0ALICE01>", "<!channel>", "`"]),
)


@st.composite
def command_text(draw: st.DrawFn) -> str:
    """Words from the commands' own vocabulary, arbitrary text and hostile strings, joined by odd spacing."""
    words = draw(st.lists(WORD, max_size=6))
    text = ""
    for word in words:
        text += word + draw(SPACES)
    if draw(st.booleans()):
        text = draw(SPACES) + text
    return text


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(
        ["incident", "PABC123", "Mira Co-Pilot", "2026-03-04T05:06:07Z", "x" * 20_000, *INJECTIONS]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)

EVENT_TYPES = sorted(pd.DOCUMENTED_EVENT_TYPES)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _replace(payload: Any, path: tuple[Any, ...], value: Any) -> Any:
    payload = json.loads(json.dumps(payload))
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return payload


@st.composite
def pagerduty_body(draw: st.DrawFn) -> bytes:
    """A V3 webhook body: a real payload with some fields replaced by anything (nulls where objects belong, huge
    strings, unicode, injection strings), or an arbitrary JSON document, or arbitrary bytes."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "document", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=512))
    if kind == "document":
        return json.dumps(draw(JSON_VALUES)).encode()
    event_type = draw(st.sampled_from(EVENT_TYPES))
    inc = pd.incident(
        id=draw(st.sampled_from(["PFUZZ01", "PFUZZ02", "PFUZZ03"])),
        title=draw(st.text(max_size=200)) or "t",
        service_name=draw(st.sampled_from(["Mira Co-Pilot", "Ivy v2", "Unknown service"])),
    )
    payload: Any = pd.event(event_type, inc, event_id=draw(st.text(min_size=1, max_size=30)))
    paths = _paths(payload)
    for path in draw(st.lists(st.sampled_from(paths), max_size=3)):
        try:
            payload = _replace(payload, path, draw(JSON_VALUES))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this path
    return json.dumps(payload, ensure_ascii=draw(st.booleans())).encode()
