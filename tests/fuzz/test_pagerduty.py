"""Bad input to the PagerDuty route: any body, correctly signed, is answered 202 (or 413 past the size limit) and
never 500, and the delivery worker handles whatever was stored without an unhandled exception; any body that is
not correctly signed is 401, stores nothing and posts nothing; and no unsigned Slack request posts anything.

Run long: `MIRA_FUZZ=long python3 dev.py test tests/fuzz -p no:cacheprovider` (≥ 10,000 examples per target).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.settings import Settings
from bot.signing import pagerduty_signature, sign_pagerduty_webhook, slack_signature
from tests.fuzz.strategies import fuzz, pagerduty_body
from tests.harness import SIGNING_SECRET, BotUnderTest

SECRET = "pd-fuzz-webhook-secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"pagerduty_webhook_secrets": [SecretStr(SECRET)], "storm_threshold": 0}
    )


async def _count(database_url: str, table: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone()  # noqa: S608 - a constant
        return int(row[0]) if row else 0


@fuzz(40)
@given(body=pagerduty_body())
async def test_any_signed_body_is_stored_or_refused_for_size_never_500_and_the_worker_copes(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.set_level(logging.ERROR)
    response = await bot.client.post(
        "/pagerduty/webhook", content=body, headers=sign_pagerduty_webhook(SECRET, body)
    )
    assert response.status_code in (202, 413), response.text
    assert (response.status_code == 413) == (len(body) > 256 * 1024)
    await bot.runtime.delivery.run_once(datetime.now(UTC) + timedelta(seconds=1))
    await bot.settle()
    crashes = [r.getMessage() for r in caplog.records if r.name.startswith(("bot.", "handlers."))]
    assert crashes == [], crashes


#: Header values an HTTP client can send at all (no control characters), ASCII or not.
HEADER_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs"), codec="utf-8"), max_size=200).map(
    str.strip  # HTTP/1.1 allows no leading or trailing whitespace in a header value
)
SIGNATURES = st.one_of(
    st.none(),
    HEADER_TEXT,
    st.lists(st.from_regex(r"v[0-9]=[0-9a-f]{0,64}", fullmatch=True), max_size=5).map(",".join),
    st.just("v1=" + "0" * 64),
)


@fuzz(60)
@given(body=pagerduty_body(), signature=SIGNATURES)
async def test_no_body_without_a_valid_signature_is_stored_or_posted(
    bot: BotUnderTest, database_url: str, body: bytes, signature: str | None
) -> None:
    if signature is not None and pagerduty_signature(SECRET, body) in signature.split(","):
        return  # drew the valid signature itself (it cannot, but never assume)
    # Raw bytes: a client may send any header bytes, not only ASCII.
    headers = [] if signature is None else [(b"X-PagerDuty-Signature", signature.encode())]
    response = await bot.client.post("/pagerduty/webhook", content=body, headers=headers)
    assert response.status_code in (401, 413)
    assert await _count(database_url, "pd_webhooks") == 0
    await bot.runtime.delivery.run_once(datetime.now(UTC))
    assert bot.slack.calls == []


@fuzz(60)
@given(
    body=st.one_of(st.binary(max_size=512), st.text(max_size=512).map(str.encode)),
    timestamp=st.one_of(
        st.none(),
        st.integers(min_value=-(2**40), max_value=2**40).map(str),
        st.builds(lambda: str(int(time.time()))),  # now: only the signature is wrong
        HEADER_TEXT,
    ),
    signature=st.one_of(st.none(), HEADER_TEXT, st.from_regex(r"v0=[0-9a-f]{64}", fullmatch=True)),
)
async def test_no_slack_request_without_a_valid_signature_does_anything(
    bot: BotUnderTest, database_url: str, body: bytes, timestamp: str | None, signature: str | None
) -> None:
    if timestamp is not None and signature == slack_signature(SIGNING_SECRET, timestamp, body):
        return
    headers = [(b"Content-Type", b"application/x-www-form-urlencoded")]
    if timestamp is not None:
        headers.append((b"X-Slack-Request-Timestamp", timestamp.encode()))
    if signature is not None:
        headers.append((b"X-Slack-Signature", signature.encode()))
    response = await bot.client.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 401
    await bot.settle()
    assert bot.slack.calls == []
    assert await _count(database_url, "health_runs") == 0
