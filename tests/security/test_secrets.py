"""Secrets never leak: with distinctive secret values, none appears in the logs (as the production formatter
writes them), in anything sent to Slack (posts, edits, ephemeral answers, acks), or in error replies — even when
an upstream echoes a token back in its error, or a user pastes one into a command.

The fault suite checks the same for every `mira-bot serve` process it runs (tests/faults/conftest.py), and
`test_a_database_password_never_reaches_the_operator_output` checks a failed start.
"""

from __future__ import annotations

import asyncio
import base64
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
from stand_ins.recording_hooks import RecordingHookServer
from stand_ins.recording_pagerduty import RecordingPagerDutyServer
from stand_ins.recording_slack import RecordingSlackServer
from stand_ins.recording_supabase import RecordingSupabaseServer
from tests import pd_payloads as pd
from tests.faults.harness import SECRETS, free_port, mira_bot_command
from tests.harness import CHANNEL, BotUnderTest, blocks_text, running_bot

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


# --- deploy hooks --------------------------------------------------------------------------------------------

CONFIRMER = "U0OWNER02"
HOOK_USER = "deployer-7f3a"
HOOK_PASSWORD = "hookpass-91c2e4"
HOOK_TOKEN = "qtok-5d8e1b7a9c"
HOOK_SECRET = "hmac-secret-e02b6f"
HOOK_BASIC = base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
HOOK_SECRETS = (HOOK_USER, HOOK_PASSWORD, HOOK_TOKEN, HOOK_SECRET, HOOK_BASIC)


@pytest.fixture
async def hooks() -> AsyncIterator[RecordingHookServer]:
    async with RecordingHookServer() as server:
        server.require_secret("fa", HOOK_SECRET)
        yield server


@pytest.fixture
def hook_catalog(tmp_path: Path, hooks: RecordingHookServer, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    """The FA AI System's rollback hook configured as `http://user:pass@host/path?token=…` with a `secret_env`,
    and two owners (the two-person rule)."""
    monkeypatch.setenv("FA_HOOK_SECRET", HOOK_SECRET)
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for service in data["services"]:
        service["owners"] = {"users": [OWNER, CONFIRMER], "groups": []}
    path = tmp_path / "hook-catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    url = f"http://{HOOK_USER}:{HOOK_PASSWORD}@127.0.0.1:{hooks.port}/hooks/fa?token={HOOK_TOKEN}"
    # FA's probes configured for the preflight of the verify step (never reached: the hook fails first).
    return load_catalog(path, env={"FA_ROLLBACK_HOOK_URL": url, "FA_BASE_URL": "http://127.0.0.1:9/fa"})


def assert_no_hook_secret(*texts: str) -> None:
    for secret in HOOK_SECRETS:
        for text in texts:
            assert secret not in text, f"{secret!r} leaked: …{text[max(0, text.find(secret) - 80) :][:200]}…"


def every_log_record(caplog: pytest.LogCaptureFixture) -> str:
    """Every record as logged (message, arguments, extras, traceback), before any formatter could blank it."""
    return (
        "\n".join(
            json.dumps({**vars(record), "message": record.getMessage()}, default=str)
            for record in caplog.records
        )
        + caplog.text
    )


async def test_a_hook_with_url_credentials_a_query_token_and_a_secret_leaks_nothing_even_when_its_error_echoes_them(
    settings: Settings,
    hook_catalog: Catalog,
    slack: RecordingSlackServer,
    hooks: RecordingHookServer,
    production_log: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The plan shows the hook as scheme + host + path; the hook's error answer quotes its query token, the
    `secret_env` value and the Basic auth it got, and the failed step reports it in the thread; yet no Slack call
    (every one, bodies and answers) and no log record carries any of those secrets."""
    caplog.set_level(logging.DEBUG)
    hooks.fail_next(500, echo=True)
    async with running_bot(settings, hook_catalog, slack) as bot:
        await bot.command("/rollback", "fa", user=OWNER)
        await bot.settle()
        [root] = [
            c for c in bot.slack.calls_to("chat.postMessage") if c.channel == CHANNEL and not c.thread_ts
        ]
        plan = blocks_text(root.blocks)
        assert f"deploy hook http://127.0.0.1:{hooks.port}/hooks/fa (script=" in plan, plan
        await bot.click(CHANNEL, str(root.response["ts"]), "rollback_confirm", "1", user=CONFIRMER)
        await bot.settle()
        await bot.runtime.rollbacks.run_once(bot.runtime.bot.clock())
        await bot.settle()

        [call] = hooks.calls
        assert call.headers["authorization"] == f"Basic {HOOK_BASIC}" and call.signature_ok is True
        thread = [c.text or "" for c in bot.slack.calls_to("chat.postMessage") if c.thread_ts]
        failed = [t for t in thread if "answered 500: deploy refused POST /hooks/fa?" in t]
        assert failed, thread  # the receiver's words reached the thread, its secrets blanked
        assert "Authorization: Basic **********" in failed[0]
        assert_no_hook_secret(
            everything_sent_to_slack(bot.slack), production_log.getvalue(), every_log_record(caplog)
        )


async def test_hook_secrets_pasted_into_a_command_or_logged_carelessly_are_blanked(
    settings: Settings,
    hook_catalog: Catalog,
    slack: RecordingSlackServer,
    production_log: io.StringIO,
) -> None:
    """The net under the rule, as for the settings' secrets: the Slack client and the log formatter know the
    catalog's hook secrets, so a user pasting the hook's token or password is not echoed, and a careless log
    line with the hook URL and its secret is blanked."""
    async with running_bot(settings, hook_catalog, slack) as bot:
        response = await bot.command("/flag", f"set OPENAI_BASE_URL {HOOK_TOKEN} {HOOK_PASSWORD}", user=OWNER)
        await bot.command("/rollback", f"fa {HOOK_SECRET} {HOOK_BASIC} {HOOK_USER}", user=OWNER)
        await bot.settle()
        fa = bot.runtime.bot.catalog.find("fa-ai-system")
        assert fa is not None and fa.rollback_plans[0].steps[0].hook is not None
        logging.getLogger("tests").error(
            "hook at %s with %s", fa.rollback_plans[0].steps[0].hook.url, HOOK_SECRET
        )  # a careless log line
        await bot.settle()
        sent = everything_sent_to_slack(bot.slack)
        assert "`********** **********` is not a valid value" in response.text  # echoed, blanked
        [plan] = [c for c in bot.slack.calls_to("chat.postMessage") if c.channel == CHANNEL]
        assert "reason: ********** ********** **********" in blocks_text(plan.blocks)
        assert "**********" in sent and "**********" in production_log.getvalue()
        assert_no_hook_secret(response.text, sent, production_log.getvalue())
