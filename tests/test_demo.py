"""The demo: the default console on a fresh machine, its stand-ins for the four services, their latency tables and
the events that keep flowing, the rotation on call, `break` / `slow` / `mend`, and every bundled rollback plan run
to done. The console is driven in-process; assertions are on what reached the recording Slack server."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from stand_ins.console_runner import REAL_SERVICE_SETTINGS, configured_services
from stand_ins.demo_events import TABLES
from tests.console_harness import console_for_test, console_settings_for_test, everything
from tests.test_cli import MIRA_BOT, _clean_env

SERVICES = ("mira-copilot", "ivy-v2", "ai-assistant", "fa-ai-system")


async def _row(dsn: str, query: str) -> tuple[Any, ...]:
    """One row of a query on the demo services' database (their `now()` is the console's clock)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (await conn.execute(query)).fetchone()
    assert row is not None
    return tuple(row)


# --- the default console ----------------------------------------------------------------------------------------


def test_on_a_fresh_machine_the_console_is_the_demo_and_says_so(tmp_path: Path) -> None:
    """`mira-bot` with nothing configured: the stand-ins answer /health, and the banner names the settings."""
    result = subprocess.run(
        [*MIRA_BOT],
        input="/health\nquit\n",
        env=_clean_env(STATE_DIR=str(tmp_path / "state")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    banner = result.stdout.splitlines()[0]
    assert banner.startswith("(demo: ") and "local stand-ins" in banner and "--no-demo" in banner
    for name in REAL_SERVICE_SETTINGS:
        assert f"`{name}`" in banner
    assert "Health: 4 ok" in result.stdout
    assert not (tmp_path / "state").exists()  # the demo is a throwaway world


def test_a_setting_for_a_real_service_gives_the_bare_console(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """IVY_BASE_URL set: no stand-ins, and the banner says which setting made it so and how to get the demo."""
    env = _clean_env(IVY_BASE_URL="http://127.0.0.1:9", DATABASE_URL=database_url, REDIS_URL=redis_url)
    result = subprocess.run(
        [*MIRA_BOT],
        input="/health fa\nquit\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "(no demo: the services are what your settings point at (IVY_BASE_URL); `--demo` plays local stand-ins.)"
    )
    assert "FA AI System: not configured" in result.stdout


def test_no_demo_gives_the_bare_console(tmp_path: Path, database_url: str, redis_url: str) -> None:
    env = _clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url)
    result = subprocess.run(
        [*MIRA_BOT, "console", "--no-demo"],
        input="/health fa\nbreak fa\nquit\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("(no demo: ")
    assert "FA AI System: not configured (3 probes: 3 not configured)" in result.stdout
    assert "(break plays a demo stand-in: start the console without --no-demo)" in result.stdout


def test_which_settings_count_as_real_services(tmp_path: Path) -> None:
    settings = console_settings_for_test("postgresql://x", "redis://x", tmp_path)
    assert configured_services(settings, {}) == []
    assert configured_services(settings, {"FA_DATABASE_URL": "postgresql://fa", "SLACK_API_URL": "x"}) == [
        "FA_DATABASE_URL"
    ]
    with_pd = settings.model_copy(update={"pagerduty_api_token": "t"})
    assert configured_services(with_pd, {}) == ["PAGERDUTY_API_TOKEN"]


# --- tables, events, rotation ------------------------------------------------------------------------------------


async def test_every_latency_table_is_seeded_and_within_its_slos(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        for service in SERVICES:
            mark = typist.mark
            await typist.type(f"/latency {service} 5m")
            [post] = typist.calls_since(mark, "chat.postMessage", "#ops")
            text = everything(post)
            assert "within its SLOs" in text, text
            assert "does not exist" not in text and "no events" not in text.lower()
        assert typist.console.stand_ins is not None
        for table in TABLES:
            count, span = await _row(
                typist.console.stand_ins.dsn,
                f"SELECT count(*), max(created_at) - min(created_at) FROM {table.table}",
            )
            assert count > 1000 and span >= timedelta(days=6), table.table


async def test_events_keep_flowing_by_the_consoles_clock(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A jump of ten minutes: /latency 5m still has the last five minutes' events (the skipped ten were filled in,
    dated by the console's clock, and the services' `now()` moved with it); the flow also inserts on its own."""
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        stand_ins = typist.console.stand_ins
        assert stand_ins is not None
        await typist.type("clock +10m")
        mark = typist.mark
        await typist.type("/latency fa 5m")
        [post] = typist.calls_since(mark, "chat.postMessage", "#ops")
        assert "within its SLOs" in everything(post)
        count, newest = await _row(
            stand_ins.dsn,
            "SELECT count(*), max(created_at) FROM query_events WHERE created_at >= now() - interval '5 minutes'",
        )
        assert count >= 90  # one event every 3 s of the console's clock
        assert abs(newest - typist.console.clock()) < timedelta(seconds=30)
        # Without a command, the background task keeps inserting (polled, not timed).
        (before,) = await _row(stand_ins.dsn, "SELECT max(id) FROM ai_messages")
        for _ in range(300):
            (latest,) = await _row(stand_ins.dsn, "SELECT max(id) FROM ai_messages")
            if latest > before:
                break
            await asyncio.sleep(0.1)
        assert latest > before


async def test_the_demo_starts_with_a_rotation_on_call(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        mark = typist.mark
        await typist.type("/oncall")
        [post] = typist.said(mark, "Primary <@U0BOB>", "chat.postMessage")
        text = everything(post)
        assert text.count("Primary <@U0BOB>") == 4  # every service's escalation policy has the rotation
        assert text.count("Secondary <@U0CAROL>") == 4 and "unknown" not in text


# --- break, slow, mend -------------------------------------------------------------------------------------------


async def test_break_fa_answers_503_with_no_healthy_targets_and_mend_puts_it_right(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        stand_ins = typist.console.stand_ins
        assert stand_ins is not None
        fa_health = f"{stand_ins.server.url}/fa/health"
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.get(fa_health)).status_code == 200
            await typist.type("break fa")
            broken = await http.get(fa_health)
            assert broken.status_code == 503 and broken.json()["healthy_targets"] == 0
            mark = typist.mark
            await typist.type("/health fa")
            assert typist.said(mark, "FA AI System: down", "chat.postMessage", "#ops")
            await typist.type("mend fa")
            assert (await http.get(fa_health)).status_code == 200
        mark = typist.mark
        await typist.type("/health fa")
        assert typist.said(mark, "FA AI System: ok", "chat.postMessage", "#ops")


async def test_every_service_breaks_slows_and_mends(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        for service in SERVICES:
            await typist.type(f"break {service}")
            mark = typist.mark
            await typist.type(f"/health {service}")
            assert typist.said(mark, ": down (", "chat.postMessage", "#ops"), service
            await typist.type(f"slow {service}")
            mark = typist.mark
            await typist.type(f"/latency {service} 5m")
            assert typist.said(mark, "BREACH", "chat.postMessage", "#ops"), service
            await typist.type(f"mend {service}")
            mark = typist.mark
            await typist.type(f"/health {service}")
            assert typist.said(mark, ": ok (", "chat.postMessage", "#ops"), service
        await typist.type("slow ivy", "break fa", "mend all", "clock +6m")
        mark = typist.mark
        await typist.type("/latency ivy 5m", "/health")
        assert typist.said(mark, "within its SLOs", "chat.postMessage")
        assert typist.said(mark, "Health: 4 ok", "chat.postMessage")


async def test_slow_ivy_shows_a_breach(database_url: str, redis_url: str, tmp_path: Path) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        mark = typist.mark
        await typist.type("/latency ivy 5m")
        assert typist.said(mark, "within its SLOs", "chat.postMessage")
        await typist.type("slow ivy")
        mark = typist.mark
        await typist.type("/latency ivy 5m")
        [post] = typist.said(mark, "over its SLOs", "chat.postMessage", "#ops")
        assert "BREACH (p95 " in post.body["text"]


async def test_help_lists_the_demo_commands(database_url: str, redis_url: str, tmp_path: Path) -> None:
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        shown = await typist.type("help", "break", "slow nosuch")
    for command in (
        "`break SERVICE`",
        "`slow SERVICE`",
        "`mend SERVICE`, `mend all`",
        "`fill TEXT`",
        "`submit`",
    ):
        assert command in shown
    assert "(usage: break SERVICE | slow SERVICE | mend SERVICE | mend all" in shown
    assert "(no service 'nosuch'; services: mira-copilot, ivy-v2, ai-assistant, fa-ai-system)" in shown


# --- every bundled plan runs to done -------------------------------------------------------------------------------


def _plans() -> list[str]:
    """Every plan of the bundled catalog as the command that requests it: the rollback plans and the Level-1
    restart plans."""
    from bot.catalog import load_catalog

    services = load_catalog(env={}).services
    return [f"/rollback {s.name} {p.name}" for s in services for p in s.rollback_plans] + [
        f"/restart {s.name}" for s in services if s.restart_plan is not None
    ]


@pytest.mark.parametrize("request_text", _plans())
async def test_every_bundled_plan_runs_to_done_in_the_demo(
    database_url: str, redis_url: str, tmp_path: Path, request_text: str
) -> None:
    """Requested by the console user, confirmed by Dana, manual steps signed off, waits passed with `clock`."""
    async with console_for_test(database_url, redis_url, tmp_path) as typist:
        mark = typist.mark
        await typist.type(f"{request_text} demo tour", "as U0DANA")
        await typist.type(f"press {typist.button('Confirm')}")
        if typist.console.modals:  # a plan too long for a dialog is confirmed in a modal
            await typist.type("submit")
        pressed: set[str] = set()
        for _ in range(20):
            if typist.said(mark, "steps done. Requested by", "chat.postMessage", "#incidents"):
                break
            signoffs = [
                b.number
                for b in typist.console.renderer.buttons.values()
                if b.label.startswith("Signed off") and b.number not in pressed
            ]
            if signoffs:
                pressed.add(signoffs[-1])
                await typist.type(f"press {signoffs[-1]}")
            else:
                await typist.type("clock +31m")
        [summary] = typist.said(mark, "steps done. Requested by", "chat.postMessage", "#incidents")
        text = everything(summary)
        assert "finished" in text and "failed" not in text, text
