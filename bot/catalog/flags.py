"""Feature flags, their stores, presets and gradual rollouts, as the runbooks' flag tables name them."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator, model_validator

from bot.catalog.base import _FLAG_NAME, _Model

# --- feature flags ------------------------------------------------------------------------------------------

FlagValue = bool | int | str


class Flag(_Model):
    """One feature flag as the runbook's flag table describes it, typed so a bad value is refused before it ships."""

    name: str
    type: Literal["bool", "int", "enum", "string", "url"]
    default: FlagValue | None = None
    description: str = ""
    allowed: list[str] | None = None
    min: int | None = None
    max: int | None = None
    backend: Literal["supabase_secrets", "postgres_table"]
    risk: Literal["normal", "high"] = "normal"
    #: What to check afterwards: one text, or one per direction (`on`/`off` for true/false flags, `raise`/`lower`
    #: for numbers, `any` for the rest), so turning a flag back on is not verified as if it had been turned off.
    verify: str | dict[Literal["on", "off", "raise", "lower", "any"], str] | None = None
    #: `restart`: the service reads the flag at start (AI Assistant SOP-002), so a change needs a restart to apply.
    applies_on: Literal["change", "restart"] = "change"
    #: Flags a runbook confuses with this one (Ivy's on-call runbook: `export ACTIVE_MODEL=openai` is the provider
    #: switch): a value this flag refuses but one of these takes is answered with that flag's command.
    see_also: list[str] = []

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_keys(cls, value: Any) -> Any:
        """YAML 1.1 reads the keys `on:` and `off:` as true and false: take them back as the words they were."""
        if isinstance(value, dict):
            return {
                ({True: "on", False: "off"}.get(k, k) if isinstance(k, bool) else k): v
                for k, v in value.items()
            }
        return value

    def verify_hint(self, before: str | None, after: str | None) -> str | None:
        """The verification that fits this change: `before`/`after` are the effective wire values (None: unknown)."""
        if self.verify is None or isinstance(self.verify, str):
            return self.verify
        target = after if after is not None else _wire(self.default)
        direction: Literal["on", "off", "raise", "lower", "any"] = "any"
        if self.type == "bool" and target in ("true", "false"):
            direction = "on" if target == "true" else "off"
        elif self.type == "int" and target is not None and before is not None:
            try:
                direction = "raise" if int(target) > int(before) else "lower"
            except ValueError:
                direction = "any"
        return self.verify.get(direction) or self.verify.get("any")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _FLAG_NAME.match(value):
            raise ValueError("expected an UPPER_SNAKE_CASE flag name")
        return value

    @model_validator(mode="after")
    def _typed(self) -> Flag:
        if self.type == "enum" and not self.allowed:
            raise ValueError("an enum flag needs `allowed` values")
        if self.type != "enum" and self.allowed:
            raise ValueError("`allowed` is only for enum flags")
        if self.type != "int" and (self.min is not None or self.max is not None):
            raise ValueError("`min`/`max` are only for int flags")
        if self.default is not None:
            error = self.check_value(self.default)
            if error:
                raise ValueError(f"default {self.default!r}: {error}")
        return self

    def check_value(self, value: FlagValue) -> str | None:
        """None when `value` is acceptable for this flag, else what is allowed (shown to the user as is)."""
        if self.type == "bool":
            return None if isinstance(value, bool) else "expected true or false"
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return "expected a whole number"
            lo = self.min if self.min is not None else "-∞"
            hi = self.max if self.max is not None else "∞"
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                return f"expected a whole number from {lo} to {hi}"
            return None
        if self.type == "enum":
            assert self.allowed is not None
            return None if value in self.allowed else "expected one of " + ", ".join(self.allowed)
        if self.type == "url":
            return (
                None
                if isinstance(value, str) and re.match(r"^https?://[^\s/]+", value)
                else "expected an http(s) URL"
            )
        return None if isinstance(value, str) else "expected text"


def _wire(value: FlagValue | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FlagStore(_Model):
    """Where a service's `postgres_table` flags live: a table the service itself reads (see README, Flags)."""

    dsn: str
    table: str = "feature_flags"


class Preset(_Model):
    """A named group of flag values from a runbook, applied together and revertible in one step."""

    name: str
    description: str
    values: dict[str, FlagValue | None]


class Rollout(_Model):
    """The Mira runbook's gradual re-enable (Rollback step 4): which flags each stage sets."""

    flag: str
    stages: dict[str, dict[str, FlagValue | None]]
