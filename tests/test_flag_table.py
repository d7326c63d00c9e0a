"""PostgresFlagTable against real Postgres (each test in its own schema, see conftest.database_url)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from integrations.flag_backends import FlagBackend, FlagBackendError
from integrations.flag_table import FLAG_TABLE_DDL, PostgresFlagTable
from tests.harness import closed_port, silent_server


def rows(database_url: str, table: str = "feature_flags") -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(database_url) as conn:
        found = conn.execute(f"SELECT name, value, updated_by FROM {table}").fetchall()
    return {name: (value, by) for name, value, by in found}


@pytest.fixture
async def flags(database_url: str) -> PostgresFlagTable:
    table = PostgresFlagTable(database_url)
    await table.ensure_table()
    return table


def test_satisfies_the_backend_protocol(database_url: str) -> None:
    table = PostgresFlagTable(database_url)
    assert isinstance(table, FlagBackend)
    assert table.kind == "postgres_table"
    assert "127.0.0.1" not in repr(table)


def test_ddl_is_the_documented_table() -> None:
    assert FLAG_TABLE_DDL.format(table="feature_flags") == (
        "CREATE TABLE IF NOT EXISTS feature_flags (name text PRIMARY KEY, value text NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now(), updated_by text)"
    )


async def test_ensure_table_creates_the_documented_columns_and_is_idempotent(database_url: str) -> None:
    table = PostgresFlagTable(database_url)
    await table.ensure_table()
    await table.ensure_table()

    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'feature_flags' AND table_schema = current_schema() ORDER BY ordinal_position"
        ).fetchall()
    assert columns == [
        ("name", "text", "NO"),
        ("value", "text", "NO"),
        ("updated_at", "timestamp with time zone", "NO"),
        ("updated_by", "text", "YES"),
    ]


async def test_set_then_read(flags: PostgresFlagTable, database_url: str) -> None:
    response = await flags.set(
        {"IVY_MODAL_HEURISTICS": "false", "AI_RATE_LIMIT_PER_MIN": "30"}, actor="U0ALICE01"
    )

    assert response.status == 200
    assert response.summary == "2 rows inserted"
    found = await flags.read(["IVY_MODAL_HEURISTICS", "AI_RATE_LIMIT_PER_MIN", "AI_BURST_LIMIT"])
    assert set(found) == {"IVY_MODAL_HEURISTICS", "AI_RATE_LIMIT_PER_MIN", "AI_BURST_LIMIT"}
    assert found["IVY_MODAL_HEURISTICS"].present and found["IVY_MODAL_HEURISTICS"].value == "false"
    assert found["AI_RATE_LIMIT_PER_MIN"].value == "30" and found["AI_RATE_LIMIT_PER_MIN"].digest is None
    assert not found["AI_BURST_LIMIT"].present and found["AI_BURST_LIMIT"].value is None
    assert rows(database_url) == {
        "IVY_MODAL_HEURISTICS": ("false", "U0ALICE01"),
        "AI_RATE_LIMIT_PER_MIN": ("30", "U0ALICE01"),
    }


async def test_update_records_who_and_when(flags: PostgresFlagTable, database_url: str) -> None:
    await flags.set({"IVY_MODAL_HEURISTICS": "false"}, actor="U0ALICE01")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE feature_flags SET updated_at = now() - interval '1 hour'")

    response = await flags.set({"IVY_MODAL_HEURISTICS": "true", "AI_BURST_LIMIT": "5"}, actor="U0BOB0002")

    assert response.summary == "1 row inserted, 1 row updated"
    assert rows(database_url) == {
        "IVY_MODAL_HEURISTICS": ("true", "U0BOB0002"),
        "AI_BURST_LIMIT": ("5", "U0BOB0002"),
    }
    with psycopg.connect(database_url) as conn:
        [(age,)] = conn.execute(
            "SELECT now() - updated_at < interval '1 minute' FROM feature_flags WHERE name = 'IVY_MODAL_HEURISTICS'"
        ).fetchall()
    assert age is True


async def test_set_is_one_transaction(flags: PostgresFlagTable, database_url: str) -> None:
    await flags.set({"AI_BURST_LIMIT": "10"})

    with pytest.raises(FlagBackendError) as caught:
        # Postgres text cannot hold NUL: the second row fails after the first was sent.
        await flags.set({"IVY_ORGANIC_ENABLED": "false", "AI_BURST_LIMIT": "5\x00"})

    assert "NUL" in str(caught.value)
    assert caught.value.status is None
    assert rows(database_url) == {"AI_BURST_LIMIT": ("10", None)}


async def test_a_row_the_server_rejects_rolls_back_the_rows_before_it(
    flags: PostgresFlagTable, database_url: str
) -> None:
    # Unlike NUL (refused by the driver), NULL is refused by the server after the first row was upserted there.
    values = {"IVY_ORGANIC_ENABLED": "false", "AI_BURST_LIMIT": None}

    with pytest.raises(FlagBackendError) as caught:
        await flags.set(values)  # type: ignore[arg-type]

    assert 'null value in column "value"' in str(caught.value)
    assert rows(database_url) == {}


async def test_unset_deletes_rows(flags: PostgresFlagTable, database_url: str) -> None:
    await flags.set({"IVY_MODAL_HEURISTICS": "false", "IVY_ORGANIC_ENABLED": "false", "AI_BURST_LIMIT": "5"})

    response = await flags.unset(
        ["IVY_MODAL_HEURISTICS", "IVY_ORGANIC_ENABLED", "ACTIVE_MODEL"], actor="U0ALICE01"
    )

    assert (response.status, response.summary) == (200, "2 rows deleted")
    found = await flags.read(["IVY_MODAL_HEURISTICS", "AI_BURST_LIMIT"])
    assert not found["IVY_MODAL_HEURISTICS"].present
    assert found["AI_BURST_LIMIT"].value == "5"
    assert (await flags.unset(["IVY_MODAL_HEURISTICS"])).summary == "0 rows deleted"


async def test_values_are_bound_never_interpolated(flags: PostgresFlagTable, database_url: str) -> None:
    nasty = "x'); DROP TABLE feature_flags; --"
    await flags.set({"OPENAI_MODEL": nasty})
    assert (await flags.read(["OPENAI_MODEL"]))["OPENAI_MODEL"].value == nasty


async def test_schema_qualified_table(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema is not None
    table = PostgresFlagTable(database_url, table=f"{schema[0]}.service_flags")
    await table.ensure_table()
    await table.set({"ENABLE_HAIKU_ROUTING": "false"})
    assert rows(database_url, "service_flags") == {"ENABLE_HAIKU_ROUTING": ("false", None)}


@pytest.mark.parametrize(
    "bad",
    [
        "feature_flags; DROP TABLE users",
        'feature_flags"',
        "Feature_Flags",
        "public.feature_flags.extra",
        "1flags",
        "",
        "feature flags",
        "public.",
    ],
)
async def test_bad_table_names_are_refused_before_any_sql(bad: str) -> None:
    # A DSN that would hang if anything tried to connect: the refusal must come first.
    async with silent_server() as port:
        with pytest.raises(ValueError, match="invalid flag table name"):
            PostgresFlagTable(f"postgresql://u:pw@127.0.0.1:{port}/db", table=bad)


async def test_unreachable_database_without_the_password() -> None:
    password = "s3cret-Passw0rd"
    table = PostgresFlagTable(f"postgresql://flags:{password}@127.0.0.1:{closed_port()}/flags")

    with pytest.raises(FlagBackendError) as caught:
        await table.read(["IVY_MODAL_HEURISTICS"])

    assert str(caught.value) == "the flag table's database is unreachable (connection refused)"
    assert password not in str(caught.value) and caught.value.status is None


async def test_wrong_password_is_named_without_the_password(postgres_server_url: str) -> None:
    params = conninfo_to_dict(postgres_server_url)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        pytest.skip("the test server uses a socket, where trust auth ignores passwords")
    password = "definitely-not-it-9f2c"
    dsn = make_conninfo(postgres_server_url, user="no_such_flags_user", password=password)
    table = PostgresFlagTable(dsn)

    with pytest.raises(FlagBackendError) as caught:
        await table.read(["X"])

    assert str(caught.value) in (
        "the flag table's database refused the login (authentication failed)",
        'the flag table\'s database refused the login (role "no_such_flags_user" does not exist)',
    )
    assert password not in str(caught.value)


async def test_hanging_database_is_cut_at_the_timeout() -> None:
    async with silent_server() as port:
        table = PostgresFlagTable(f"postgresql://u:pw@127.0.0.1:{port}/db", timeout=0.3)
        with pytest.raises(FlagBackendError) as caught:
            await table.set({"X": "1"})

    assert str(caught.value) == "the flag table's database could not be reached within 0.3 s"


async def test_missing_table_names_the_relation(database_url: str) -> None:
    table = PostgresFlagTable(database_url)  # no ensure_table: writes never create it

    with pytest.raises(FlagBackendError) as caught:
        await table.set({"IVY_MODAL_HEURISTICS": "false"})

    assert str(caught.value) == 'relation "feature_flags" does not exist'
    with pytest.raises(FlagBackendError, match='relation "feature_flags" does not exist'):
        await table.read(["IVY_MODAL_HEURISTICS"])


async def test_invalid_dsn_is_not_echoed() -> None:
    table = PostgresFlagTable("host=127.0.0.1 password=hunter2-xyz port=notaport")

    with pytest.raises(FlagBackendError) as caught:
        await table.read(["X"])

    assert "hunter2-xyz" not in str(caught.value)


async def test_refuses_to_send_nothing(flags: PostgresFlagTable) -> None:
    with pytest.raises(ValueError):
        await flags.set({})
    with pytest.raises(ValueError):
        await flags.unset([])
    assert await flags.read([]) == {}
