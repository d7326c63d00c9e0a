"""What every /flag test file shares: owners in the bundled catalog, the recording Supabase server, an Ivy and
AI Assistant flag table in the test database, and a way to read rows back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import yaml
from pydantic import SecretStr

from bot.catalog import BUNDLED_CATALOG, Catalog, load_catalog
from bot.settings import Settings
from integrations.flag_table import PostgresFlagTable
from stand_ins.recording_slack import RecordingSlackServer
from stand_ins.recording_supabase import RecordingSupabaseServer

OWNER = "U0OWNER01"
ONCALL_GROUP = "S0ONCALL1"
ON_CALL_ENGINEER = "U0ONCALL1"
STRANGER = "U0STRANGE"
PROJECT = "abcdefghijklmnopqrst"
SUPABASE_TOKEN = "sbp_test_token_for_flags"


@pytest.fixture
async def supabase() -> AsyncIterator[RecordingSupabaseServer]:
    async with RecordingSupabaseServer(token=SUPABASE_TOKEN) as server:
        yield server


@pytest.fixture
def catalog_env(database_url: str) -> dict[str, str]:
    return {
        "IVY_DATABASE_URL": database_url,
        "AI_ASSISTANT_DATABASE_URL": database_url,
        "MIRA_INTERNAL_USERS": "ana@example.com,bo@example.com",
    }


@pytest.fixture
def owned_catalog_path(tmp_path: Path) -> Path:
    """The bundled catalog with owners: a user for every service, plus an on-call user group for Mira."""
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for service in data["services"]:
        service["owners"] = {
            "users": [OWNER],
            "groups": [ONCALL_GROUP] if service["name"] == "mira-copilot" else [],
        }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def catalog(owned_catalog_path: Path, catalog_env: dict[str, str]) -> Catalog:
    return load_catalog(owned_catalog_path, env=catalog_env)


@pytest.fixture
def settings(settings: Settings, supabase: RecordingSupabaseServer) -> Settings:
    return settings.model_copy(
        update={
            "supabase_api_url": supabase.base_url,
            "supabase_access_token": SecretStr(SUPABASE_TOKEN),
            "supabase_project_ref": PROJECT,
        }
    )


@pytest.fixture
async def flag_table(database_url: str) -> PostgresFlagTable:
    table = PostgresFlagTable(database_url, "feature_flags")
    await table.ensure_table()
    return table


@pytest.fixture(autouse=True)
def group(slack: RecordingSlackServer) -> None:
    slack.add_usergroup(ONCALL_GROUP, [ON_CALL_ENGINEER])


async def rows(database_url: str, sql: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await (await conn.execute(sql)).fetchall()


def secrets_path() -> str:
    return f"/v1/projects/{PROJECT}/secrets"
