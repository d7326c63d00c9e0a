"""The operator interface: every setting the bot reads, from the environment and an optional `.env`.

Secrets are `SecretStr` so that a settings object that reaches a log line or a traceback prints `**********`.
A missing or malformed setting stops start-up with one line naming the setting and what it expects
(`SettingsError`), because an operator reading a crash loop in `kubectl logs` needs the fix, not a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_PAGERDUTY_API_URL = "https://api.pagerduty.com"
DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com"
DEFAULT_SUPABASE_API_URL = "https://api.supabase.com"

_SLACK_ID = re.compile(r"^[USWG][A-Z0-9]{2,}$")

# What each setting expects, in the words of the one-line start-up error.
EXPECTATIONS: dict[str, str] = {
    "SLACK_BOT_TOKEN": "a Slack bot token starting with xoxb-",
    "SLACK_SIGNING_SECRET": "the app's signing secret (Basic Information → App Credentials)",
    "SLACK_APP_TOKEN": "an app-level token starting with xapp- (only for Socket Mode)",
    "SLACK_API_URL": "an http(s) base URL of the Slack Web API ending in /api/",
    "DATABASE_URL": "a PostgreSQL URL like postgresql://user:pass@host:5432/db (unset: embedded server)",
    "REDIS_URL": "a Redis URL like redis://host:6379/0 (unset: embedded server)",
    "PAGERDUTY_API_TOKEN": "a PagerDuty REST API token",
    "PAGERDUTY_API_URL": "an http(s) base URL of the PagerDuty REST API",
    "PAGERDUTY_EVENTS_URL": "an http(s) base URL of the PagerDuty Events API v2",
    "PAGERDUTY_FROM_EMAIL": "the email of a PagerDuty user, sent as From when Slack has no email",
    "PAGERDUTY_WEBHOOK_SECRETS": "comma-separated webhook signing secrets (several during rotation)",
    "SUPABASE_ACCESS_TOKEN": "a Supabase personal access token (sbp_…)",
    "SUPABASE_API_URL": "an http(s) base URL of the Supabase Management API",
    "SUPABASE_PROJECT_REF": "the Supabase project ref (20 lowercase letters)",
    "BOT_CATALOG": "the path of a service catalog YAML file",
    "ALERTS_CHANNEL": "a Slack channel name (#name) or ID",
    "INCIDENTS_CHANNEL": "a Slack channel name (#name) or ID",
    "BOT_ADMINS": "comma-separated Slack user IDs (U…/W…) or user-group IDs (S…)",
    "HOST": "an interface address to listen on, e.g. 0.0.0.0",
    "PORT": "a TCP port number between 0 and 65535",
    "LOG_LEVEL": "one of DEBUG, INFO, WARNING, ERROR",
    "LOG_FORMAT": "json or console",
    "STATE_DIR": "a writable directory for the embedded servers' data",
    "STORM_THRESHOLD": "new incidents per minute per channel above which they are grouped in a digest (0: never)",
    "SLACK_POSTS_PER_SECOND": "posts per second per Slack channel, shared by all replicas (Slack allows about 1)",
    "DELIVERY_LEASE_SECONDS": "seconds a delivery worker holds a claimed PagerDuty event before another may take it",
    "ROLLBACK_LEASE_SECONDS": "seconds without a heartbeat after which another replica takes over a running rollback",
    "STALE_CLAIM_SECONDS": "seconds after which a Slack post claimed but not recorded counts as abandoned",
    "SLACK_TIMEOUT_SECONDS": "seconds the bot waits for one Slack Web API answer before giving up on it",
    "SCHEDULER_TICK_SECONDS": "seconds between two checks for due scheduled jobs",
}


class SettingsError(Exception):
    """A setting is missing or malformed; `str()` is the one line shown to the operator."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("not an http(s) URL")
    return value


class Settings(BaseSettings):
    """Everything the operator can set. Field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL

    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None

    pagerduty_api_token: SecretStr | None = None
    pagerduty_api_url: str = DEFAULT_PAGERDUTY_API_URL
    pagerduty_events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL
    pagerduty_from_email: str | None = None
    pagerduty_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # How long one PagerDuty REST request may take (connect, send, each read). A write that gets no answer within
    # it is read back (GET /incidents/{id}) and the user is told what PagerDuty shows.
    pagerduty_timeout_seconds: float = Field(default=10.0, gt=0)

    supabase_access_token: SecretStr | None = None
    supabase_api_url: str = DEFAULT_SUPABASE_API_URL
    supabase_project_ref: str | None = None

    bot_catalog: Path | None = None
    alerts_channel: str = "#mira-copilot-alerts"
    incidents_channel: str = "#incidents"
    bot_admins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    state_dir: Path = Path(".state")
    storm_threshold: int = Field(default=10, ge=0)
    # Delivery timing. A post claimed longer ago than STALE_CLAIM_SECONDS without its Slack `ts` recorded is
    # taken to be abandoned by a worker that died; it is looked up in Slack (message metadata) before it is posted
    # again. It must exceed the longest time one post can take (Slack's Retry-After included); the fault tests
    # shorten both windows so that a restart is observed in seconds, not minutes.
    slack_posts_per_second: float = Field(default=0.8, gt=0)
    # chat.update is a Tier 3 method: about 50 a minute per workspace (https://api.slack.com/apis/rate-limits),
    # whatever the channel. Root and digest edits share this allowance across replicas (bot/slack_budget.py).
    slack_updates_per_minute: int = Field(default=50, gt=0)
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    rollback_lease_seconds: float = Field(default=60.0, gt=0)
    stale_claim_seconds: float = Field(default=120.0, gt=0)
    # How long one Slack Web API call may take before the client gives up. A post that timed out may still be
    # applied by Slack afterwards, so its lookup waits this long plus a margin (bot/slack_once.py).
    slack_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    scheduler_tick_seconds: float = Field(default=30.0, gt=0)

    @field_validator("pagerduty_webhook_secrets", "bot_admins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object) -> object:
        if isinstance(value, str):
            return value.upper() if value.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else value.lower()
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("wrong token kind")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("wrong token kind")
        return value

    @field_validator("slack_api_url", "pagerduty_api_url", "pagerduty_events_url", "supabase_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("slack_api_url")
    @classmethod
    def _slack_trailing_slash(cls, value: str) -> str:
        # slack_sdk joins base_url + method without inserting a slash.
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^postgres(ql)?://", value.get_secret_value()):
            raise ValueError("not a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^(redis|rediss|unix)://", value.get_secret_value()):
            raise ValueError("not a redis:// URL")
        return value

    @field_validator("bot_admins")
    @classmethod
    def _slack_ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _SLACK_ID.match(v)]
        if bad:
            raise ValueError(f"not a Slack user or group ID: {bad[0]}")
        return value

    @field_validator("bot_catalog")
    @classmethod
    def _catalog_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app-level token is set; the HTTP server still runs for webhooks and probes."""
        return self.slack_app_token is not None

    def require_slack(self) -> None:
        """`serve` needs both Slack credentials; the console does not (it signs with its own)."""
        for name in ("slack_bot_token", "slack_signing_secret"):
            if getattr(self, name) is None:
                env = name.upper()
                raise SettingsError(
                    f"{env} is not set: `mira-bot serve` expects {EXPECTATIONS[env]} "
                    "(or run `mira-bot console`, which needs no Slack workspace)"
                )


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning the first validation error into a one-line `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        expected = EXPECTATIONS.get(name, "a valid value")
        reason = str(error.get("msg", "")).removeprefix("Value error, ")
        # Never echo the value itself: it may be a secret.
        raise SettingsError(f"{name} is invalid ({reason}): expected {expected}") from None
