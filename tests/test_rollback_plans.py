"""Issue 14, plans that can be finished: preflight before Confirm, Skip with a reason and Mark done, waits that
only wait, a watch that cannot read its metrics, verify polling after a hook, one open run per service, the
confirm modal listing every step whole, and the corrected command for swapped arguments.

Real Postgres, Redis, the recording Slack server and a recording deploy hook; the worker is driven with
`run_once(now)` at injected moments, so nothing sleeps and no calendar matters.
"""

# ruff: noqa: F811 - the fixtures are imported from tests.test_rollback and named again as arguments

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.catalog import Catalog
from bot.scheduler import utc_now
from bot.settings import Settings
from integrations.flag_table import PostgresFlagTable
from stand_ins.recording_hooks import RecordingHookServer
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import BotUnderTest, blocks_text, fake_service, running_bot
from tests.test_rollback import (  # noqa: F401 - fixtures
    CONFIRMER,
    REQUESTER,
    STRANGER,
    THIRD_OWNER,
    _click,
    _drive,
    _ephemerals,
    _hook_secrets,
    _owned,
    _request,
    _root_updates,
    _rows,
    _thread,
    catalog,
    catalog_env,
    health,
    healthy,
    hooks,
    mira_events,
    settings,
    supabase,
)


async def submit_view(
    bot: BotUnderTest, view: dict[str, Any], user: str, values: dict[str, str] | None = None
) -> None:
    """Submit a modal the bot opened, as Slack sends it (its callback_id and private_metadata kept)."""
    state = {
        key: {key: {"type": "plain_text_input", "value": value}} for key, value in (values or {}).items()
    }
    payload = {
        "type": "view_submission",
        "team": {"id": "T0CONSOLE"},
        "user": {"id": user},
        "api_app_id": "A0TEST",
        "token": "legacy",
        "trigger_id": "1.2.3",
        "view": {**view, "state": {"values": state}},
    }
    response = await bot.post_signed(urlencode({"payload": json.dumps(payload)}).encode())
    assert response.status_code == 200
    await bot.settle()


def _answers(bot: BotUnderTest) -> list[str]:
    """What the bot told one person: response_url answers and (after a modal) ephemeral messages."""
    return [c.text or "" for c in bot.slack.calls if c.method in ("response_url", "chat.postEphemeral")]


@pytest.fixture
def ivy_env(
    catalog_env: dict[str, str],
    hooks: RecordingHookServer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Ivy's restart hook, its hook secret and its flag table's database."""
    monkeypatch.setenv("IVY_HOOK_SECRET", "ivy-secret")
    return {**catalog_env, "IVY_RESTART_HOOK_URL": hooks.url("ivy"), "IVY_DATABASE_URL": database_url}


@pytest.fixture
async def ivy_catalog(ivy_env: dict[str, str], tmp_path: Path, database_url: str) -> AsyncIterator[Catalog]:
    """The owned bundled catalog with Ivy's router and backend answering ok and its flag table created."""
    await PostgresFlagTable(database_url).ensure_table()
    async with fake_service({"/ai/router/health": ok_json, "/health": ok_json}) as url:
        yield _owned(tmp_path, {**ivy_env, "IVY_BASE_URL": url})


async def ok_json(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _buttons(blocks: list[dict[str, Any]] | None) -> list[str]:
    return [e["action_id"] for b in blocks or [] if b["type"] == "actions" for e in b["elements"]]


def _latest_root(bot: BotUnderTest, root: str) -> list[dict[str, Any]]:
    updates = _root_updates(bot, root)
    if updates:
        return updates[-1].blocks or []
    [posted] = [c for c in bot.slack.calls_to("chat.postMessage") if c.response and c.response["ts"] == root]
    return posted.blocks or []


# --- preflight ---------------------------------------------------------------------------------------------------


async def test_an_unset_variable_and_a_missing_metrics_table_are_shown_before_confirm_and_check_again_clears_them(
    settings: Settings,
    catalog_env: dict[str, str],
    tmp_path: Path,
    slack: RecordingSlackServer,
    database_url: str,
) -> None:
    env = {k: v for k, v in catalog_env.items() if k != "MIRA_INTERNAL_USERS"}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE mira_events")
    async with running_bot(settings, _owned(tmp_path, env), slack) as bot:
        root = await _request(bot, "mira", user=REQUESTER)
        [posted] = [c for c in slack.calls_to("chat.postMessage") if c.thread_ts is None]
        text = blocks_text(posted.blocks)
        assert ":no_entry: not ready: the flag values are not configured: set MIRA_INTERNAL_USERS" in text
        assert text.count('the watch cannot read its metrics: relation "mira_events" does not exist') == 3
        assert "Not ready: steps 5, 6, 8, 10 cannot run as configured" in text
        assert _buttons(posted.blocks) == ["rollback_check_again", "rollback_cancel"]  # no Confirm at all

        await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)  # a forged or stale Confirm
        assert (
            "is not ready: step 5: the flag values are not configured: set MIRA_INTERNAL_USERS"
            in _ephemerals(bot)[-1]
        )
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE mira_events (event_type text, latency_ms int, success bool, created_at timestamptz)"
            )
        await _click(bot, root, "rollback_check_again", "1", user=CONFIRMER)
        assert "Still not ready: step 5: the flag values are not configured" in _ephemerals(bot)[-1]
        remaining = blocks_text(_latest_root(bot, root))
        assert "mira_events" not in remaining and "MIRA_INTERNAL_USERS" in remaining
    assert await _rows(database_url, "SELECT status FROM rollback_runs") == [("pending",)]
    refused = await _rows(
        database_url, "SELECT detail->>'reason' FROM audit_log WHERE action = 'rollback.refused'"
    )
    assert refused == [("preflight",)]

    async with running_bot(
        settings, _owned(tmp_path, catalog_env), slack
    ) as fixed:  # the variable set, restarted
        await _click(fixed, root, "rollback_check_again", "1", user=CONFIRMER)
        assert _ephemerals(fixed)[-1].startswith(":white_check_mark: Every step of rollback #1 can run now")
        assert _buttons(_latest_root(fixed, root)) == ["rollback_review", "rollback_cancel"]


async def test_a_deploy_hook_not_configured_is_refused_up_front(
    settings: Settings, catalog_env: dict[str, str], tmp_path: Path, slack: RecordingSlackServer
) -> None:
    env = {k: v for k, v in catalog_env.items() if k != "FA_ROLLBACK_HOOK_URL"}
    async with running_bot(settings, _owned(tmp_path, env), slack) as bot:
        await _request(bot, "fa", user=REQUESTER)
    [posted] = [c for c in slack.calls_to("chat.postMessage") if c.thread_ts is None]
    assert "not ready: the deploy hook is not configured: set FA_ROLLBACK_HOOK_URL" in blocks_text(
        posted.blocks
    )
    assert "rollback_confirm" not in _buttons(posted.blocks)


# --- the confirm dialog ------------------------------------------------------------------------------------------


async def test_a_long_plans_confirm_opens_a_modal_listing_every_step_whole_and_its_submit_confirms(
    bot: BotUnderTest, database_url: str
) -> None:
    root = await _request(bot, "mira", user=REQUESTER)
    await _click(bot, root, "rollback_review", "1", user=CONFIRMER)
    [opened] = bot.slack.calls_to("views.open")
    view = opened.body["view"]
    assert view["callback_id"] == "rollback_confirm_modal" and view["title"]["text"] == "Confirm rollback"
    text = blocks_text(view["blocks"])
    for title in (
        "Disable MIRA_COPILOT_ENABLED",
        "Roll back the last database migration",
        "Re-enable for everyone",
        "Health is ok after the full re-enable",
    ):
        assert title in text
    assert all(f"\n{n}. *" in "\n" + text for n in range(1, 13))
    assert all(len(b["text"]["text"]) <= 3000 for b in view["blocks"])
    await submit_view(bot, view, STRANGER)
    assert _answers(bot)[-1].startswith(":lock: Only the owners of Mira Co-Pilot may confirm a rollback")
    await submit_view(bot, view, CONFIRMER)
    assert await _rows(database_url, "SELECT status, confirmed_by FROM rollback_runs") == [
        ("running", CONFIRMER)
    ]


async def test_a_short_plans_confirm_dialog_lists_every_step_whole_within_slacks_limit(
    settings: Settings, ivy_catalog: Catalog, slack: RecordingSlackServer
) -> None:
    async with running_bot(settings, ivy_catalog, slack) as bot:
        await _request(bot, "ivy-v2 immediate", user=REQUESTER)
        [posted] = [c for c in bot.slack.calls_to("chat.postMessage") if c.thread_ts is None]
        [confirm] = [
            e
            for b in posted.blocks or []
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == "rollback_confirm"
        ]
        dialog = confirm["confirm"]["text"]["text"]
        assert len(dialog) <= 300
        assert dialog.endswith(
            "4 steps:\n1. Disable v2 features\n2. Switch to the v1 endpoint\n3. Restart services\n"
            "4. Router and backend health are ok"
        )
        assert "Update the frontend to use /ai/router/ instead of /ai/router/v2" in blocks_text(posted.blocks)


# --- skip, mark done ---------------------------------------------------------------------------------------------


async def test_a_failed_step_is_skipped_with_a_reason_shown_and_audited_and_the_run_finishes(
    bot: BotUnderTest, hooks: RecordingHookServer, database_url: str
) -> None:
    hooks.fail_next(500)
    root = await _request(bot, "fa", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    now = utc_now()
    await _drive(bot, now)
    await _click(bot, root, "rollback_skip", "1:1", user=STRANGER)
    assert _ephemerals(bot)[-1].startswith(":lock: Only the owners of FA AI System may skip a rollback step")
    assert bot.slack.calls_to("views.open") == []
    await _click(bot, root, "rollback_skip", "1:1", user=THIRD_OWNER)
    [opened] = bot.slack.calls_to("views.open")
    view = opened.body["view"]
    assert view["callback_id"] == "rollback_skip_modal"
    await submit_view(bot, view, THIRD_OWNER, {"reason": "ran rollback.sh by hand <from the bastion>"})
    await submit_view(bot, view, THIRD_OWNER, {"reason": "again"})  # a second submit skips nothing more
    assert "cannot be skipped now" in _answers(bot)[-1]
    [skipped] = [t for t in _thread(bot, root) if "skipped step 1/2" in t]
    assert f"<@{THIRD_OWNER}> skipped step 1/2" in skipped
    assert "Reason: ran rollback.sh by hand &lt;from the bastion&gt;" in skipped
    await _drive(bot, now)
    assert await _rows(database_url, "SELECT status FROM rollback_runs") == [("done",)]
    assert await _rows(database_url, "SELECT status FROM rollback_steps ORDER BY position") == [
        ("skipped",),
        ("done",),
    ]
    assert await _rows(
        database_url, "SELECT actor, detail->>'reason' FROM audit_log WHERE action = 'rollback.skip'"
    ) == [(THIRD_OWNER, "ran rollback.sh by hand <from the bastion>")]
    assert "1 skipped" in blocks_text(_root_updates(bot, root)[-1].blocks)
    assert len(hooks.calls) == 1


async def test_a_manual_step_done_outside_the_bot_is_marked_done_by_a_confirmer(
    settings: Settings, ivy_catalog: Catalog, slack: RecordingSlackServer, database_url: str
) -> None:
    async with running_bot(settings, ivy_catalog, slack) as bot:
        await _marked_done(bot, database_url)


async def _marked_done(bot: BotUnderTest, database_url: str) -> None:
    root = await _request(bot, "ivy immediate", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    now = utc_now()
    await _drive(bot, now)  # step 1 applied, step 2 (switch to v1) waits for a person
    [ask] = [t for t in _thread(bot, root) if "Step 2/4 waits for the frontend on-call" in t]
    assert "*What to do:* Update the frontend to use /ai/router/ instead of /ai/router/v2" in ask
    assert "rollback_mark_done" in _buttons(_root_updates(bot, root)[-1].blocks)
    await _click(bot, root, "rollback_mark_done", "1:2", user=THIRD_OWNER)
    await _click(bot, root, "rollback_mark_done", "1:2", user=THIRD_OWNER)  # a double click marks once
    assert "cannot be marked done now" in _ephemerals(bot)[-1]
    assert any(
        f"<@{THIRD_OWNER}> marked step 2/4 *Switch to the v1 endpoint* done" in t for t in _thread(bot, root)
    )
    assert await _rows(database_url, "SELECT actor FROM audit_log WHERE action = 'rollback.mark_done'") == [
        (THIRD_OWNER,)
    ]
    assert await _rows(database_url, "SELECT status FROM rollback_steps WHERE position = 2") == [("done",)]


# --- waits, watches, verify --------------------------------------------------------------------------------------


async def test_a_watch_that_cannot_read_its_metrics_says_so_and_offers_retry_skip_abort(
    bot: BotUnderTest, database_url: str
) -> None:
    root = await _request(bot, "mira", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    t0 = utc_now()
    await _drive(bot, t0)
    await _click(bot, root, "rollback_signoff", "1:4", user=THIRD_OWNER)
    await _drive(bot, t0)  # step 6, the first watch, running
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE mira_events")
    await _drive(bot, t0 + timedelta(minutes=31))
    [said] = [
        c for c in bot.slack.calls_to("chat.postMessage") if "could not read its metrics" in (c.text or "")
    ]
    assert 'relation "mira_events" does not exist' in (said.text or "") and "health stayed ok" in (
        said.text or ""
    )
    assert _buttons(said.blocks) == [
        "rollback_retry",
        "rollback_skip",
        "rollback_mark_done",
        "rollback_abort",
    ]
    assert await _rows(database_url, "SELECT status FROM rollback_runs") == [("failed",)]


async def test_a_verify_after_a_restart_hook_polls_until_healthy_instead_of_failing_at_once(
    settings: Settings,
    catalog_env: dict[str, str],
    tmp_path: Path,
    slack: RecordingSlackServer,
    database_url: str,
    hooks: RecordingHookServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AI Assistant's restart: the hook, a 30-second wait that reads nothing (its `ai_messages` table does not
    exist), then /health polled: 503 twice while the service starts, then healthy."""
    answers = iter([503, 503])

    async def starting(request: Request) -> Response:
        status = next(answers, 200)
        return JSONResponse({"status": "healthy" if status == 200 else "starting"}, status_code=status)

    monkeypatch.setenv("AI_ASSISTANT_HOOK_SECRET", "s")
    async with fake_service({"/health": starting, "/info": starting}) as url:
        env = {
            **catalog_env,
            "AI_ASSISTANT_BASE_URL": url,
            "AI_ASSISTANT_RESTART_HOOK_URL": hooks.url("assistant"),
            "AI_ASSISTANT_DATABASE_URL": database_url,
        }
        async with running_bot(settings, _owned(tmp_path, env), slack) as bot:
            root = await _request(bot, "ai-assistant restart", user=REQUESTER)
            await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
            t0 = utc_now()
            await _drive(bot, t0)  # hook called, the wait starts
            await _drive(bot, t0 + timedelta(seconds=20))  # still waiting: no health read yet
            assert await _rows(
                database_url, "SELECT position, status FROM rollback_steps ORDER BY position"
            ) == [(1, "done"), (2, "running"), (3, "pending")]
            for seconds in (31, 33, 40, 50):
                await _drive(bot, t0 + timedelta(seconds=seconds))
    [waited] = [t for t in _thread(bot, root) if "Step 2/3 done" in t]
    assert "waited 30 s" in waited
    [verified] = [t for t in _thread(bot, root) if "Step 3/3 done" in t]
    assert "healthy after" in verified
    assert await _rows(database_url, "SELECT status FROM rollback_runs") == [("done",)]


# --- one open run per service, argument order --------------------------------------------------------------------


async def test_a_second_request_while_one_is_pending_is_refused_and_names_the_open_one(
    bot: BotUnderTest, database_url: str
) -> None:
    root = await _request(bot, "fa", user=REQUESTER)
    await asyncio.gather(
        bot.command("/rollback", "fa again", user=CONFIRMER), bot.command("/rollback", "fa", user=THIRD_OWNER)
    )
    await bot.settle()
    refusals = [t for t in _ephemerals(bot) if "is still open" in t]
    assert len(refusals) == 2
    assert refusals[0].startswith(
        ":no_entry: Rollback #1 of FA AI System (plan `blue-green`) is still open: waiting for confirmation ("
    )
    assert f"p{root.replace('.', '')}|thread>" in refusals[0]
    assert await _rows(database_url, "SELECT id, status FROM rollback_runs") == [(1, "pending")]


async def test_swapped_arguments_get_the_corrected_command_and_one_usage_line(bot: BotUnderTest) -> None:
    reply = (await bot.command("/rollback", "immediate ivy-v2 p95", user=REQUESTER)).json()["text"]
    assert "Did you mean `/rollback ivy-v2 immediate p95`?" in reply
    [usage] = [line for line in reply.splitlines() if line.startswith("Usage:")]
    assert usage.startswith("Usage: `/rollback SERVICE [plan] [reason]`")
    assert len(reply.splitlines()) == 3
    reply = (await bot.command("/rollback", "plans", user=REQUESTER)).json()["text"]
    assert reply.splitlines()[-1] == "Usage: `/rollback plans SERVICE` — the service's rollback plans"
