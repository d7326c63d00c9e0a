"""The one escaping function and its helpers (bot/mrkdwn.py): Slack's three control characters, clipping that
never cuts an entity, link labels and URLs from outside."""

from __future__ import annotations

import pytest

from bot import mrkdwn


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("<!channel> down", "&lt;!channel&gt; down"),
        ("<@U123|bob>", "&lt;@U123|bob&gt;"),
        ("<https://evil.example|click me>", "&lt;https://evil.example|click me&gt;"),
        ("R&D > ops", "R&amp;D &gt; ops"),
        ("*bold* _it_", "*bold* _it_"),
        ("&lt;", "&amp;lt;"),
    ],
)
def test_escape_leaves_no_control_character(raw: str, shown: str) -> None:
    assert mrkdwn.escape(raw) == shown
    assert mrkdwn.unescape(mrkdwn.escape(raw)) == raw


def test_slack_encoded_input_is_decoded_once() -> None:
    assert mrkdwn.unescape("a &lt;b&gt; &amp;amp; c") == "a <b> &amp; c"


def test_clip_never_cuts_an_entity_and_marks_the_cut() -> None:
    text = mrkdwn.outside("x" * 8 + "&&&&", 12)
    assert len(text) <= 12 and text.endswith("…")
    assert text == "x" * 8 + "…"
    assert mrkdwn.outside("short", 10) == "short"
    assert len(mrkdwn.outside("y" * 5000, 3000)) == 3000


def test_links_from_outside() -> None:
    assert mrkdwn.link("https://pd.example/i/1", "A|B>C") == "<https://pd.example/i/1|A¦B›C>"
    assert mrkdwn.link("javascript:alert(1)", "x") == "x"
    assert mrkdwn.link("https://a.example/x|y", "x") == "x"
    assert mrkdwn.link(None, "<!here>") == "&lt;!here›"
    assert mrkdwn.safe_url("http://h.example/p?q=1") == "http://h.example/p?q=1"
    assert mrkdwn.safe_url("ftp://h.example") is None
