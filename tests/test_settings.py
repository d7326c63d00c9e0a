"""The operator interface: defaults, parsing, one-line errors, and secrets that never print."""

from __future__ import annotations

import logging
from io import StringIO
from pathlib import Path

import pytest

from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults() -> None:
    settings = load_settings()
    assert settings.slack_api_url == "https://slack.com/api/"
    assert (settings.alerts_channel, settings.incidents_channel) == ("#mira-copilot-alerts", "#incidents")
    assert (settings.host, settings.port) == ("0.0.0.0", 3000)
    assert settings.database_url is None and settings.redis_url is None  # embedded servers
    assert not settings.socket_mode


def test_comma_separated_lists_and_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAGERDUTY_WEBHOOK_SECRETS", "old-secret, new-secret")
    (tmp_path / ".env").write_text("BOT_ADMINS=U0ALICE01,S0ONCALL1\nSLACK_API_URL=http://127.0.0.1:9/api\n")
    settings = load_settings()
    assert [s.get_secret_value() for s in settings.pagerduty_webhook_secrets] == ["old-secret", "new-secret"]
    assert settings.bot_admins == ["U0ALICE01", "S0ONCALL1"]
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT is invalid"),
        ("PORT", "70000", "expected a TCP port number between 0 and 65535"),
        ("SLACK_BOT_TOKEN", "xoxp-user-token", "expected a Slack bot token starting with xoxb-"),
        ("DATABASE_URL", "mysql://x", "expected a PostgreSQL URL"),
        ("REDIS_URL", "localhost:6379", "expected a Redis URL"),
        ("LOG_FORMAT", "xml", "expected json or console"),
        ("BOT_ADMINS", "alice", "not a Slack user or group ID: alice"),
        ("SLACK_API_URL", "slack.com/api", "expected an http(s) base URL"),
        ("BOT_CATALOG", "/nonexistent/catalog.yaml", "no such file"),
    ],
)
def test_malformed_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(f"{name} is invalid")
    assert message in text


def test_malformed_secret_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://admin:hunter2-very-secret@db/x")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)


def test_serve_requires_slack_credentials() -> None:
    with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN is not set: `mira-bot serve` expects"):
        load_settings().require_slack()


def test_secrets_never_reach_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-distinctive-token-4711")
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:pw-distinctive-0815@db/x")
    settings = load_settings()
    assert "distinctive" not in repr(settings)
    stream = StringIO()
    configure_logging(settings.model_copy(update={"log_format": "json"}), stream)
    try:
        logging.getLogger("test").error(
            "connecting to postgresql://bot:pw-distinctive-0815@db/x with xoxb-distinctive-token-4711",
            extra={"settings": settings},
        )
    finally:
        logging.getLogger().handlers.clear()
    output = stream.getvalue()
    assert "connecting to" in output
    assert "distinctive" not in output
