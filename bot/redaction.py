"""Never echo a secret: every configured secret value is blanked from whatever the bot sends to Slack.

Secrets are SecretStr and never put in messages on purpose; this is the net under that rule, for the cases no
one planned — an upstream that quotes the token back in its error ("PagerDuty's words", Supabase's message), or
a user who pastes a token into a command and would see it echoed in the usage answer. Besides the settings'
secrets it blanks the catalog's deploy-hook secrets (`bot.logs.catalog_secrets`: `secret_env` values, URL
credentials and their Basic auth token, query values). Log lines get the same treatment from
`bot.logs.RedactSecrets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.catalog import Catalog
from bot.logs import catalog_secrets, secret_values
from bot.settings import Settings

BLANK = "**********"


class Redactor:
    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @classmethod
    def for_settings(cls, settings: Settings, catalog: Catalog | None = None) -> Redactor:
        """The settings' secrets, and the catalog's deploy-hook secrets when a catalog is given."""
        return cls(secret_values(settings) + (catalog_secrets(catalog) if catalog is not None else []))

    def __call__(self, value: Any) -> Any:
        """`value` (a string, or JSON-like lists and dicts of them) with every secret blanked."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, BLANK)
            return value
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self(item) for item in value)
        return value
