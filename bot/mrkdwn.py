"""Outside text in Slack messages: escaped once, at render time, and clipped to Slack's limits.

Slack's formatting reference (https://api.slack.com/reference/surfaces/formatting#escaping): in mrkdwn, `&`, `<`
and `>` are control characters — `<!channel>` pings a channel, `<https://x|y>` is a link, `<@U123>` a mention —
and must be sent as `&amp;`, `&lt;`, `&gt;` when they are meant literally. Anything that did not come from the
catalog or the bot's own wording (PagerDuty titles, names and notes, Slack input quoted back, values read from a
service's database) goes through `escape` (or `outside`, which also clips) exactly once, where the message is
built. Slack sends what users type already encoded (`&lt;` for `<`), so input is decoded once on parse
(`unescape`) and escaped once on render, and shows as it was typed.

Inside a link label `|` ends the label and `>` the link, so `link` replaces them; a URL from outside is used only
when it is http(s), otherwise the label stands alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

ELLIPSIS = "…"
_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))


def escape(text: object) -> str:
    """`text` as literal mrkdwn: no mention, link or markup of its own can survive."""
    value = str(text)
    for raw, entity in _ESCAPES:
        value = value.replace(raw, entity)
    return value


def unescape(text: str) -> str:
    """What the user typed, from Slack's encoded form (Slack encodes `&`, `<`, `>` in text it sends us)."""
    for raw, entity in reversed(_ESCAPES):
        text = text.replace(entity, raw)
    return text


def clip(text: str, limit: int, *, marker: str = ELLIPSIS) -> str:
    """`text` cut to at most `limit` characters, ending in `marker` when cut. Never cuts through an entity
    (`&amp;`) that `escape` produced, nor through a surrogate-free code point."""
    if len(text) <= limit:
        return text
    cut = max(0, limit - len(marker))
    head = text[:cut]
    amp = head.rfind("&", max(0, cut - 5))
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head + marker


def outside(text: object, limit: int, *, marker: str = ELLIPSIS) -> str:
    """Outside text escaped and clipped to `limit` characters as Slack counts them (after escaping)."""
    return clip(escape(text), limit, marker=marker)


def safe_url(url: object) -> str | None:
    """`url` when it is an absolute http(s) URL that cannot break out of a `<url|label>` link, else None."""
    if not isinstance(url, str) or not url:
        return None
    if any(ch in url for ch in "<>| \n\r\t") or len(url) > 3000:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url


def label(text: object, limit: int = 300) -> str:
    """Outside text fit for a link label: escaped, and without `|` or `>` (which would end the label)."""
    return outside(str(text).replace("|", "¦"), limit).replace("&gt;", "›")


def link(url: object, text: object, *, limit: int = 300, trusted_label: bool = False) -> str:
    """A mrkdwn link `<url|label>`; only the label when `url` is not a safe http(s) URL. `trusted_label` is for the
    bot's own wording (not escaped, only stripped of `|` and `>`)."""
    shown = str(text).replace("|", "¦").replace(">", "›") if trusted_label else label(text, limit)
    safe = safe_url(url)
    return f"<{safe}|{shown}>" if safe else shown


def listed(items: list[str], limit: int, *, separator: str = ", ", empty: str = "nobody") -> str:
    """Already-rendered `items` joined within `limit` characters; those that do not fit are counted instead
    ("A, B and 23 more"), so a long list still says how long it is."""
    if not items:
        return empty
    shown: list[str] = []
    for index, item in enumerate(items):
        rest = len(items) - index - 1
        tail = f" and {rest} more" if rest else ""
        candidate = separator.join([*shown, item]) + tail
        if len(candidate) > limit:
            if not shown:  # not even the first fits whole: clip it
                return clip(item, max(1, limit - len(tail))) + tail
            return f"{separator.join(shown)} and {len(items) - len(shown)} more"
        shown.append(item)
    return separator.join(shown)


def split(text: str, limit: int) -> list[str]:
    """`text` in parts of at most `limit` characters, cut at a line break or a space when one is near the end and
    never through an entity that `escape` produced: for text longer than one message (a note read in full)."""
    parts: list[str] = []
    while len(text) > limit:
        cut = limit
        for boundary in ("\n", " "):
            at = text.rfind(boundary, limit - limit // 10, limit)
            if at > 0:
                cut = at + 1
                break
        amp = text.rfind("&", max(0, cut - 5), cut)
        if amp > 0 and ";" not in text[amp:cut]:
            cut = amp
        parts.append(text[:cut])
        text = text[cut:]
    return [*parts, text] if text or not parts else parts
