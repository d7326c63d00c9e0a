"""What a flag is now, and what a change would do: the read side of `/flag`.

Split from :mod:`handlers.flags.changes` (recording, claiming, applying and reverting a change) because reading
needs no claim and no audit: `/flag list`, `/flag get` and every plan read each backend once and compare it with
what the bot last set (`flag_values`). Supabase lists secrets as digests, not values, so a listed digest that no
longer matches the bot's value means someone changed the flag outside the bot, and the bot says so instead of
showing a stale value. Values cross this module as the strings the services read from their environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from bot.catalog import Flag, FlagValue, Service, missing_env
from bot.context import BotContext
from integrations.flag_backends import FlagBackend, StoredFlag, digest_of
from integrations.flag_table import PostgresFlagTable
from integrations.supabase import SupabaseSecrets


class FlagStoreNotConfigured(Exception):
    """The backend a flag lives in cannot be reached with the current settings; `str()` says what to set."""


def to_wire(value: FlagValue | None) -> str | None:
    """A catalog value as the string a service reads from its environment."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def backend_for(bot: BotContext, service: Service, kind: str) -> FlagBackend:
    settings = bot.settings
    if kind == "supabase_secrets":
        missing = [
            name
            for name, value in (
                ("SUPABASE_ACCESS_TOKEN", settings.supabase_access_token),
                ("SUPABASE_PROJECT_REF", settings.supabase_project_ref),
            )
            if not value
        ]
        if missing:
            raise FlagStoreNotConfigured(
                f"{service.display_name}'s flags live in Supabase: set {', '.join(missing)}"
            )
        assert settings.supabase_access_token is not None and settings.supabase_project_ref is not None
        return SupabaseSecrets(
            bot.http,
            settings.supabase_api_url,
            settings.supabase_access_token.get_secret_value(),
            settings.supabase_project_ref,
        )
    store = service.flag_store
    if store is None:
        raise FlagStoreNotConfigured(f"{service.display_name} has no `flag_store` in the catalog")
    missing = missing_env(store)
    if missing:
        raise FlagStoreNotConfigured(
            f"{service.display_name}'s flag table is not configured: set {', '.join(missing)}"
        )
    return PostgresFlagTable(store.dsn, store.table)


@dataclass(frozen=True)
class CurrentValue:
    """What a flag is now, as far as the bot can tell."""

    flag: Flag
    present: bool  # set in the backend (otherwise the service uses its default)
    value: str | None  # the value, when known
    known: bool  # False when set outside the bot and the backend shows only a digest
    outside: bool  # the backend's state is not what the bot last set
    last_set_by: str | None = None
    last_set_at: datetime | None = None
    last_change: int | None = None

    @property
    def effective(self) -> str | None:
        """The value the service runs with: its own, or the default when unset."""
        return self.value if self.present else to_wire(self.flag.default)

    def display(self) -> str:
        if not self.known:
            return "unknown (changed outside the bot)"
        if not self.present:
            return f"{to_wire(self.flag.default)} (default)"
        return str(self.value)

    def as_json(self) -> dict[str, Any]:
        return {"present": self.present, "value": self.value, "known": self.known}


async def _records(bot: BotContext, service: Service) -> dict[str, dict[str, Any]]:
    async with bot.storage.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            "SELECT flag, value, set_by, set_at, change_id FROM flag_values WHERE service = %s",
            (service.name,),
        )
        return {row["flag"]: row for row in await cursor.fetchall()}


def _current(flag: Flag, stored: StoredFlag, record: dict[str, Any] | None) -> CurrentValue:
    last = {
        "last_set_by": record["set_by"] if record else None,
        "last_set_at": record["set_at"] if record else None,
        "last_change": record["change_id"] if record else None,
    }
    recorded_value = record["value"] if record else None
    if stored.digest is not None or (stored.present and stored.value is None):
        # Supabase: only a digest. Known when it matches the value the bot set.
        if not stored.present:
            return CurrentValue(flag, False, None, True, recorded_value is not None, **last)
        if recorded_value is not None and stored.digest == digest_of(recorded_value):
            return CurrentValue(flag, True, recorded_value, True, False, **last)
        return CurrentValue(flag, True, None, False, True, **last)
    outside = record is not None and (stored.value if stored.present else None) != recorded_value
    return CurrentValue(flag, stored.present, stored.value if stored.present else None, True, outside, **last)


async def current_values(bot: BotContext, service: Service, flags: Sequence[Flag]) -> dict[str, CurrentValue]:
    """Every flag's current value, one backend read per backend."""
    records = await _records(bot, service)
    result: dict[str, CurrentValue] = {}
    for kind in dict.fromkeys(flag.backend for flag in flags):
        group = [flag for flag in flags if flag.backend == kind]
        stored = await backend_for(bot, service, kind).read([flag.name for flag in group])
        for flag in group:
            result[flag.name] = _current(flag, stored[flag.name], records.get(flag.name))
    return result


@dataclass(frozen=True)
class PlannedFlag:
    flag: Flag
    before: CurrentValue
    after: str | None  # None: unset, back to the default

    def describe(self, prefix: str = "") -> str:
        """`IVY_MODAL_HEURISTICS true → false` (with `prefix` "ivy-v2:", the flag's whole name), in the words of
        the alerts channel."""
        before = _shown(self.before.effective) if self.before.known else "?"
        after = (
            _shown(self.after)
            if self.after is not None
            else f"{_shown(to_wire(self.flag.default))} (default)"
        )
        return f"{prefix}{self.flag.name} {before} → {after}"

    @property
    def noop(self) -> bool:
        """Nothing would change: unsetting an unset flag, or setting the value the service already runs with (its
        default included), as far as the bot knows. Never for a value changed outside the bot."""
        if not self.before.known:
            return False
        if self.after is None:
            return not self.before.present
        return self.before.effective == self.after

    @property
    def verify_hint(self) -> str | None:
        """The flag's verification for this direction of change (off vs on, lower vs raise)."""
        return self.flag.verify_hint(self.before.effective if self.before.known else None, self.after)


def _shown(value: str | None) -> str:
    """A value as people read it: an empty one as `""`, not as nothing."""
    return '""' if value == "" else str(value)


async def plan(bot: BotContext, service: Service, targets: Mapping[str, str | None]) -> list[PlannedFlag]:
    """What `targets` (flag name → new value or None to unset) would change, with each flag's current value."""
    flags = [flag for name in targets if (flag := service.flag(name)) is not None]
    current = await current_values(bot, service, flags)
    return [PlannedFlag(flag, current[flag.name], targets[flag.name]) for flag in flags]
