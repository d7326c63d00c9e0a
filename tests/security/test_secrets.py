"""Secrets never leak: with distinctive secret values, none appears in the logs (as the production formatter
writes them), in anything sent to Slack (posts, edits, ephemeral answers, acks), or in error replies — even when
an upstream echoes a token back in its error, or a user pastes one into a command.

The fault suite checks the same for every `mira-bot serve` process it runs (tests/faults/conftest.py), and
`test_a_database_password_never_reaches_the_operator_output` checks a failed start.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from bot.catalog import BUNDLED_CATALOG, Catalog, load_catalog
from bot.logs import configure_logging
from bot.settings import Settings
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from stand_ins.recording_supabase import RecordingSupabaseServer
from tests import pd_payloads as pd
from tests.faults.harness import SECRETS, free_port, mira_bot_command
from tests.harness import BotUnderTest

OWNER = "U0OWNER01"
PROJECT = "abcdefghijklmnopqrst"


@pytest.fixture
async def supabase() -> AsyncIterator[RecordingSupabaseServer]:
    async with RecordingSupabaseServer(token=SECRETS.supabase_access_token) as server:
        yield server


@pytest.fixture
async def pagerduty() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(SECRETS.pagerduty_api_token) as server:
        yield server


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for service in data["services"]:
        service["owners"] = {"users": [OWNER], "groups": []}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_catalog(path, env={})


@pytest.fixture
def settings(
    settings: Settings, supabase: RecordingSupabaseServer, pagerduty: RecordingPagerDutyServer
) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr(SECRETS.slack_bot_token),
            "slack_signing_secret": SecretStr("test-signing-secret-0123456789"),  # the harness signs with it
            "supabase_api_url": supabase.base_url,
            "supabase_access_token": SecretStr(SECRETS.supabase_access_token),
            "supabase_project_ref": PROJECT,
            "pagerduty_api_url": pagerduty.base_url,
            "pagerduty_api_token": SecretStr(SECRETS.pagerduty_api_token),
            "pagerduty_webhook_secrets": [SecretStr(SECRETS.pagerduty_webhook_secret)],
            "pagerduty_from_email": "bot@example.com",
        }
    )


@pytest.fixture
def production_log(settings: Settings) -> Iterator[io.StringIO]:
    """The root logger as `mira-bot serve` configures it (JSON, secrets blanked), writing here."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(settings.model_copy(update={"log_format": "json", "log_level": "DEBUG"}), stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved


def everything_sent_to_slack(slack: RecordingSlackServer) -> str:
    return "\n".join(json.dumps({"body": c.body, "response": c.response}, default=str) for c in slack.calls)


def assert_nowhere(*texts: str) -> None:
    for secret in [*SECRETS.values(), "test-signing-secret-0123456789"]:
        for text in texts:
            assert secret not in text, f"a secret leaked: …{text[max(0, text.find(secret) - 80) :][:200]}…"


async def test_upstream_errors_that_echo_the_token_never_reach_slack_or_the_logs(
    bot: BotUnderTest,
    supabase: RecordingSupabaseServer,
    pagerduty: RecordingPagerDutyServer,
    production_log: io.StringIO,
) -> None:
    # Supabase refuses, quoting the Authorization header it got.
    supabase.fail_next("GET", 401, body={"message": f"Invalid token Bearer {SECRETS.supabase_access_token}"})
    await bot.command("/flag", "off MIRA_MODE_COMMAND_ENABLED", user=OWNER)
    await bot.settle()
    # PagerDuty refuses an acknowledgement, quoting its token in its own words.
    pagerduty.add_incident("PLEAK01", 7, "Edge function 503s", "PSVC001", service_name="Mira Co-Pilot")
    pagerduty.fail_next(
        "PUT",
        400,
        body={"error": {"message": f"Token token={SECRETS.pagerduty_api_token} may not", "errors": ["x"]}},
    )
    await bot.click("C0OPS0001", "1.1", "incident_ack", "PLEAK01", user=OWNER)
    await bot.settle()
    told = [c.text for c in bot.slack.calls_to("response_url")]
    assert len(told) == 2 and all(told)  # both users were answered (the errors were not swallowed)
    assert_nowhere(everything_sent_to_slack(bot.slack), production_log.getvalue())


async def test_a_token_pasted_into_a_command_is_not_echoed_back(
    bot: BotUnderTest, production_log: io.StringIO
) -> None:
    response = await bot.command("/flag", f"set OPENAI_BASE_URL {SECRETS.supabase_access_token}", user=OWNER)
    unknown = await bot.command(f"/{SECRETS.pagerduty_api_token}", "x")
    await bot.settle()
    assert_nowhere(
        response.text, unknown.text, everything_sent_to_slack(bot.slack), production_log.getvalue()
    )


async def test_webhooks_and_failures_log_no_secret(
    bot: BotUnderTest, database_url: str, production_log: io.StringIO
) -> None:
    body = pd.body(pd.event("incident.triggered", pd.incident(id="PLEAK02")))
    bad = await bot.client.post(
        "/pagerduty/webhook", content=body, headers={"X-PagerDuty-Signature": "v1=00"}
    )
    assert bad.status_code == 401
    good = pd.body(pd.event("incident.triggered", pd.incident(id="PLEAK03")))
    from bot.signing import sign_pagerduty_webhook

    assert (
        await bot.client.post(
            "/pagerduty/webhook",
            content=good,
            headers=sign_pagerduty_webhook(SECRETS.pagerduty_webhook_secret, good),
        )
    ).status_code == 202
    bot.slack.fail_next("chat.postMessage", 500, count=3)
    await bot.runtime.delivery.run_once(datetime.now(UTC))
    logging.getLogger("tests").error(
        "settings at failure: %s", bot.runtime.bot.settings
    )  # a careless log line
    await bot.settle()
    assert_nowhere(bad.text, everything_sent_to_slack(bot.slack), production_log.getvalue())
    assert "**********" in production_log.getvalue()


async def test_a_database_password_never_reaches_the_operator_output(tmp_path: Path) -> None:
    """A start that fails on the database says which setting, in one line, without the URL or its password."""
    password = "FAULTSUITE-dbpassword-9d2e"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SLACK_BOT_TOKEN": SECRETS.slack_bot_token,
        "SLACK_SIGNING_SECRET": SECRETS.slack_signing_secret,
        "DATABASE_URL": f"postgresql://mira:{password}@127.0.0.1:{free_port()}/mira",
        "REDIS_URL": "redis://127.0.0.1:6379/14",
        "STATE_DIR": str(tmp_path / "state"),
        "PORT": str(free_port()),
        "LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        *mira_bot_command(),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    output = (stdout + stderr).decode()
    assert process.returncode == 2
    assert "DATABASE_URL" in output
    assert password not in output and SECRETS.slack_bot_token not in output and "mira:" not in output
