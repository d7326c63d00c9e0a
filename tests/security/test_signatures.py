"""Who may talk to the bot: every Slack request and every PagerDuty webhook must carry a valid signature of its
exact body, or it is refused (401; 413 past the size limit; 400 for a signed body Slack could not have sent) and
has no effect at all — no Slack call, no row, no PagerDuty call.

Slack: v0 HMAC-SHA256 of `v0:{timestamp}:{body}` under the signing secret, timestamp within 5 minutes
(https://api.slack.com/authentication/verifying-requests-from-slack). PagerDuty: `X-PagerDuty-Signature`, one or
more `v1=` HMAC-SHA256 of the body, one per active secret (V3 webhooks, "Verifying Signatures").
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import psycopg
import pytest
from pydantic import SecretStr

from bot.settings import Settings
from bot.signing import pagerduty_signature, sign_pagerduty_webhook, slack_signature
from tests import pd_payloads as pd
from tests.harness import SIGNING_SECRET, BotUnderTest, click_body

PD_SECRETS = ("pd-signature-secret-current", "pd-signature-secret-next")
TABLES = ("pd_webhooks", "health_runs", "audit_log", "flag_changes", "incident_actions")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(s) for s in PD_SECRETS]})


async def assert_no_effect(bot: BotUnderTest, database_url: str, *, signed: bool = False) -> None:
    """Nothing reached Slack (for an unsigned request not even Bolt's auth.test) and no table changed."""
    await bot.settle()
    await bot.runtime.delivery.run_once(datetime.now(UTC))
    allowed = {"auth.test"} if signed else set()
    assert [c.method for c in bot.slack.calls if c.method not in allowed] == []
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for table in TABLES:
            row = await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone()  # noqa: S608 - constants
            assert row == (0,), f"{table} changed"


def slack_bodies(bot: BotUnderTest) -> dict[str, bytes]:
    view = {
        "type": "view_submission",
        "team": {"id": "T0CONSOLE"},
        "user": {"id": "U0ALICE01"},
        "api_app_id": "A0TEST",
        "token": "legacy",
        "trigger_id": "1.2.3",
        "view": {
            "type": "modal",
            "callback_id": "incident_note_modal",
            "private_metadata": json.dumps({"incident": "PABC123", "channel": "C0OPS0001", "ts": None}),
            "state": {"values": {"text": {"text": {"type": "plain_text_input", "value": "a note"}}}},
        },
    }
    return {
        "command": bot.command_body("/health"),
        "dangerous command": bot.command_body("/flag", "off MIRA_COPILOT_ENABLED"),
        "button": click_body(bot.slack, "C0OPS0001", "1700000000.000100", "incident_ack", "PABC123"),
        "modal": urlencode({"payload": json.dumps(view)}).encode(),
    }


def slack_headers(case: str, body: bytes) -> dict[str, str] | list[tuple[bytes, bytes]]:
    now = int(time.time())

    def signed(timestamp: int | str, signature: str) -> dict[str, str]:
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": signature,
        }

    good = slack_signature(SIGNING_SECRET, str(now), body)
    return {
        "no signature header": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(now),
        },
        "no timestamp header": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Signature": good,
        },
        "wrong v0 digest": signed(now, "v0=" + "0123456789abcdef" * 4),
        "signed with another secret": signed(now, slack_signature("not-the-signing-secret", str(now), body)),
        "v1= prefix": signed(now, good.replace("v0=", "v1=", 1)),
        "timestamp 6 minutes old": signed(now - 360, slack_signature(SIGNING_SECRET, str(now - 360), body)),
        "timestamp 6 minutes ahead": signed(now + 360, slack_signature(SIGNING_SECRET, str(now + 360), body)),
        "signature of a different body": signed(
            now, slack_signature(SIGNING_SECRET, str(now), body + b"&x=1")
        ),
        "empty signature": signed(now, ""),
        "timestamp not a number": signed("1e9", slack_signature(SIGNING_SECRET, "1e9", body)),
        "digest in upper case": signed(now, "v0=" + good[3:].upper()),
        "non-ASCII signature": [
            (b"Content-Type", b"application/x-www-form-urlencoded"),
            (b"X-Slack-Request-Timestamp", str(now).encode()),
            (b"X-Slack-Signature", ("v0=" + "é" * 32).encode()),
        ],
    }[case]


SLACK_CASES = [
    "no signature header",
    "no timestamp header",
    "wrong v0 digest",
    "signed with another secret",
    "v1= prefix",
    "timestamp 6 minutes old",
    "timestamp 6 minutes ahead",
    "signature of a different body",
    "empty signature",
    "timestamp not a number",
    "digest in upper case",
    "non-ASCII signature",
]


async def test_badly_signed_slack_requests_are_401_and_change_nothing(
    bot: BotUnderTest, database_url: str
) -> None:
    """Every case against one bot (one bot per case would cost a start each): any effect of any case shows."""
    for case in SLACK_CASES:
        for kind, body in slack_bodies(bot).items():  # a command, a dangerous one, a button, a modal
            response = await bot.client.post("/slack/events", content=body, headers=slack_headers(case, body))
            assert response.status_code == 401, f"{case}, {kind}: {response.status_code}"
    await assert_no_effect(bot, database_url)


async def test_the_same_requests_correctly_signed_are_accepted(bot: BotUnderTest) -> None:
    """The control: what the cases above alter is all that makes them fail."""
    for body in slack_bodies(bot).values():
        assert (await bot.post_signed(body)).status_code == 200


async def test_a_slack_body_over_the_limit_is_413_and_changes_nothing(
    bot: BotUnderTest, database_url: str
) -> None:
    body = bot.command_body("/health") + b"&padding=" + b"x" * (1024 * 1024)
    assert (await bot.post_signed(body)).status_code == 413
    await assert_no_effect(bot, database_url)


async def test_a_signed_body_that_is_not_utf8_is_400_not_500(bot: BotUnderTest, database_url: str) -> None:
    assert (await bot.post_signed(b"command=%2Fhealth&text=\xff\xfe")).status_code == 400
    await assert_no_effect(bot, database_url)


async def test_a_signed_payload_bolt_cannot_read_is_400_not_500(bot: BotUnderTest, database_url: str) -> None:
    """Slack never sends these; if something signed does, it is refused plainly (and logged), not a 500."""
    for payload in (
        {},
        {"type": "block_actions"},
        {"actions": None},
        {"type": "view_submission", "view": 3},
        [],
    ):
        response = await bot.post_signed(urlencode({"payload": json.dumps(payload)}).encode())
        # 404: Bolt's answer for a payload no listener handles
        assert response.status_code in (200, 400, 404), f"{payload}: {response.status_code}"
    await assert_no_effect(bot, database_url, signed=True)


# --- PagerDuty -------------------------------------------------------------------------------------------------

PD_BODY = pd.body(pd.event("incident.triggered", pd.incident(), event_id="evt-signature-1"))


def pd_headers(case: str, body: bytes) -> dict[str, str]:
    good = pagerduty_signature(PD_SECRETS[0], body)
    return {
        "no signature header": {},
        "empty signature": {"X-PagerDuty-Signature": ""},
        "signed with another secret": sign_pagerduty_webhook("not-our-secret", body),
        "v0= prefix": {"X-PagerDuty-Signature": good.replace("v1=", "v0=", 1)},
        "no prefix": {"X-PagerDuty-Signature": good.removeprefix("v1=")},
        "signature of a different body": sign_pagerduty_webhook(PD_SECRETS[0], body + b" "),
        "several signatures, none matching": sign_pagerduty_webhook(["old-a", "old-b", "old-c"], body),
        "right digest, truncated": {"X-PagerDuty-Signature": good[:-2]},
        "right digest, upper case": {"X-PagerDuty-Signature": "v1=" + good[3:].upper()},
        "right digest under another header": {"X-Signature": good},
        "garbage between signatures": {"X-PagerDuty-Signature": "v1=,,;v1=zz, v1=" + "0" * 64},
    }[case]


PD_CASES = [
    "no signature header",
    "empty signature",
    "signed with another secret",
    "v0= prefix",
    "no prefix",
    "signature of a different body",
    "several signatures, none matching",
    "right digest, truncated",
    "right digest, upper case",
    "right digest under another header",
    "garbage between signatures",
]


async def test_badly_signed_pagerduty_webhooks_are_401_and_change_nothing(
    bot: BotUnderTest, database_url: str
) -> None:
    for case in PD_CASES:
        response = await bot.client.post(
            "/pagerduty/webhook", content=PD_BODY, headers=pd_headers(case, PD_BODY)
        )
        assert response.status_code == 401, f"{case}: {response.status_code}"
    await assert_no_effect(bot, database_url)


async def test_one_matching_signature_among_several_is_accepted(bot: BotUnderTest, database_url: str) -> None:
    """The control, and rotation: any one valid `v1=` among others is enough."""
    headers = sign_pagerduty_webhook(["retired-secret", PD_SECRETS[1], "other"], PD_BODY)
    response = await bot.client.post("/pagerduty/webhook", content=PD_BODY, headers=headers)
    assert response.status_code == 202


async def test_a_pagerduty_body_over_the_limit_is_413_and_stores_nothing(
    bot: BotUnderTest, database_url: str
) -> None:
    body = b'{"event": {"id": "' + b"x" * (256 * 1024) + b'"}}'
    response = await bot.client.post(
        "/pagerduty/webhook", content=body, headers=sign_pagerduty_webhook(PD_SECRETS[0], body)
    )
    assert response.status_code == 413
    await assert_no_effect(bot, database_url)
