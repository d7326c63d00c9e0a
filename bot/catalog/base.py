"""What every catalog model shares: strict frozen models, `${NAME}` references, the error type, and who
owns a service and where its messages go."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_FLAG_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]*$")


class CatalogError(Exception):
    """A bad catalog: `str()` names the file, the path inside it and what was expected."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def missing_env(value: Any) -> list[str]:
    """The `${NAME}` references left unresolved anywhere inside `value` (a model, dict, list or string)."""
    found: list[str] = []
    if isinstance(value, str):
        found.extend(_ENV_REF.findall(value))
    elif isinstance(value, BaseModel):
        for field_name in type(value).model_fields:
            found.extend(missing_env(getattr(value, field_name)))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(missing_env(item))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(missing_env(item))
    return list(dict.fromkeys(found))


def _is_template(value: str) -> bool:
    return "${" in value


def _http_url(value: str) -> str:
    if not _is_template(value) and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("expected an http(s) URL")
    return value


# --- who, where ---------------------------------------------------------------------------------------------


class Owners(_Model):
    """Slack user IDs (U…/W…) and user-group IDs (S…) who may change this service. Empty means nobody: fail closed."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _SLACK_USER.match(item):
                raise ValueError(f"expected a Slack user ID like U0123ABCD, got {item!r}")
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _SLACK_GROUP.match(item):
                raise ValueError(f"expected a Slack user-group ID like S0123ABCD, got {item!r}")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.users or self.groups)


class Channels(_Model):
    """Where this service's alerts and incident updates go; unset means the bot-wide ALERTS/INCIDENTS_CHANNEL.
    The bundled catalog reads them from the environment (`IVY_ALERTS_CHANNEL`, …), so each team gets its own
    channel by setting one variable.

    `incidents_urgency: high` keeps low-urgency incidents out of the incidents channel (they still get their thread
    in the alerts channel), for services whose low-urgency pages would drown it."""

    alerts: str | None = None
    incidents: str | None = None
    incidents_urgency: Literal["high", "low"] = "low"

    @field_validator("alerts", "incidents")
    @classmethod
    def _unset_is_none(cls, value: str | None) -> str | None:
        """`alerts: "${IVY_ALERTS_CHANNEL}"` with the variable unset (or empty) is no channel of its own: every
        caller then falls back to the bot-wide ALERTS_CHANNEL / INCIDENTS_CHANNEL, instead of posting to a channel
        literally named `${IVY_ALERTS_CHANNEL}`."""
        if value is None or not value.strip() or _ENV_REF.search(value):
            return None
        return value.strip()


class RunbookRef(_Model):
    title: str
    file: str
    last_updated: date | str | None = None
    url: str | None = None
