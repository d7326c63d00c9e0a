"""/rollback end to end: the request, who may confirm, the step engine and exactly-once, against real Postgres and
Redis, the recording Slack server, the recording Supabase Management API and a recording deploy hook.

Time is injected: the request's expiry reads `bot.clock`, and the rollback worker is driven with `run_once(now)`,
so a 30-minute watch takes no time and nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.catalog import BUNDLED_CATALOG, Catalog, load_catalog
from bot.rollback_worker import RollbackWorker
from bot.runtime import start_runtime
from bot.scheduler import utc_now
from bot.settings import Settings
from bot.signing import sign_slack_request
from stand_ins.recording_hooks import RecordingHookServer
from stand_ins.recording_pagerduty import RecordingPagerDutyServer, oncall_entry
from stand_ins.recording_slack import RecordingSlackServer, SlackCall
from stand_ins.recording_supabase import RecordingSupabaseServer
from tests.harness import (
    CHANNEL,
    SIGNING_SECRET,
    BotUnderTest,
    answer,
    blocks_text,
    fake_service,
    running_bot,
)

REQUESTER = "U0OWNER01"
CONFIRMER = "U0OWNER02"
THIRD_OWNER = "U0OWNER03"
STRANGER = "U0STRANGE"
PROJECT = "abcdefghijklmnopqrst"
SUPABASE_TOKEN = "sbp_test_token_for_rollback"
HOOK_SECRET = "hook-secret-for-rollback-tests"
PD_TOKEN = "pd-token-for-rollback-tests"
MIRA_STEPS = 12


@pytest.fixture
async def supabase() -> AsyncIterator[RecordingSupabaseServer]:
    async with RecordingSupabaseServer(token=SUPABASE_TOKEN) as server:
        yield server


@pytest.fixture
async def hooks() -> AsyncIterator[RecordingHookServer]:
    async with RecordingHookServer() as server:
        server.require_secret("mira", HOOK_SECRET)
        server.require_secret("fa", HOOK_SECRET)
        yield server


class Health:
    """The services' health endpoints, answering as the runbooks say a healthy service does until told not to."""

    def __init__(self) -> None:
        self.mira = "ok"

    async def edge_function(self, request: Request) -> Response:
        return JSONResponse({"status": self.mira})


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
async def healthy(health: Health) -> AsyncIterator[str]:
    async with fake_service(
        {"/functions/v1/agent-chat": health.edge_function, "/health": answer({"status": "healthy"})}
    ) as url:
        yield url


MIRA_EVENTS = """CREATE TABLE IF NOT EXISTS mira_events (
    id bigserial PRIMARY KEY, event_type text NOT NULL, latency_ms integer, success boolean,
    created_at timestamptz NOT NULL DEFAULT now())"""


@pytest.fixture
def mira_events(database_url: str) -> str:
    """Mira's events table, which its watch steps read (empty: no SLO is breached)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(MIRA_EVENTS)
    return database_url


@pytest.fixture
def catalog_env(hooks: RecordingHookServer, healthy: str, mira_events: str) -> dict[str, str]:
    return {
        "MIRA_BASE_URL": healthy,
        "MIRA_DATABASE_URL": mira_events,
        "MIRA_DEPLOY_HOOK_URL": hooks.url("mira"),
        "MIRA_INTERNAL_USERS": "ana@example.com,bo@example.com",
        "FA_BASE_URL": healthy,
        "FA_ROLLBACK_HOOK_URL": hooks.url("fa"),
    }


@pytest.fixture(autouse=True)
def _hook_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRA_DEPLOY_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("FA_HOOK_SECRET", HOOK_SECRET)


@pytest.fixture
def catalog(tmp_path: Path, catalog_env: dict[str, str]) -> Catalog:
    """The bundled catalog with three owners on every service."""
    return _owned(tmp_path, catalog_env)


@pytest.fixture
def settings(settings: Settings, supabase: RecordingSupabaseServer) -> Settings:
    return settings.model_copy(
        update={
            "supabase_api_url": supabase.base_url,
            "supabase_access_token": SecretStr(SUPABASE_TOKEN),
            "supabase_project_ref": PROJECT,
        }
    )


def _owned(tmp_path: Path, env: dict[str, str]) -> Catalog:
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for service in data["services"]:
        service["owners"] = {"users": [REQUESTER, CONFIRMER, THIRD_OWNER], "groups": []}
    path = tmp_path / "owned.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_catalog(path, env=env)


async def _rows(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def _request(bot: BotUnderTest, text: str, user: str = REQUESTER) -> str:
    """Ask for a rollback; the ts of the visible request message (the run's root)."""
    await bot.command("/rollback", text, user=user)
    await bot.settle()
    roots = [c for c in bot.slack.calls_to("chat.postMessage") if c.channel == CHANNEL and not c.thread_ts]
    assert roots and roots[-1].response, "the request was not posted in the channel"
    return str(roots[-1].response["ts"])


async def _click(bot: BotUnderTest, root: str, action_id: str, value: str, user: str) -> None:
    await bot.click(CHANNEL, root, action_id, value, user=user)
    await bot.settle()


def _thread(bot: BotUnderTest, root: str) -> list[str]:
    return [c.text or "" for c in bot.slack.calls_to("chat.postMessage") if c.thread_ts == root]


def _root_updates(bot: BotUnderTest, root: str) -> list[SlackCall]:
    return [c for c in bot.slack.calls_to("chat.update") if c.ts == root]


def _ephemerals(bot: BotUnderTest) -> list[str]:
    return [c.text or "" for c in bot.slack.calls_to("response_url")]


def _secret_posts(supabase: RecordingSupabaseServer) -> list[Any]:
    return [call.body for call in supabase.calls_to("POST")]


async def _drive(bot: BotUnderTest, now: datetime) -> None:
    await bot.runtime.rollbacks.run_once(now)


# --- the request ----------------------------------------------------------------------------------------------


async def test_the_request_shows_every_step_of_the_mira_plan_with_what_it_changes(bot: BotUnderTest) -> None:
    ack = await bot.command("/rollback", "mira p95 above 3 s", user=REQUESTER)
    assert ack.json()["text"] == "Preparing the `standard` rollback of Mira Co-Pilot…"
    await bot.settle()
    [root] = bot.slack.calls_to("chat.postMessage")
    assert root.channel == CHANNEL and root.thread_ts is None
    text = blocks_text(root.blocks)
    assert "Rollback #1: Mira Co-Pilot" in text
    assert "reason: p95 above 3 s" in text
    assert "`MIRA_COPILOT_ENABLED` → `false` (Supabase secrets)" in text
    assert (
        "deploy hook http://127.0.0.1" in text
        and "function=agent-chat" in text
        and "version=previous" in text
    )
    assert "DBA signs off in the thread :warning: Database rollbacks can cause data loss." in text
    assert "`MIRA_ROLLOUT_PERCENT` → `10`" in text
    assert text.count("◻️") == MIRA_STEPS
    assert "Expires at" in text and "(15 min after the request)" in text
    assert f"someone other than <@{REQUESTER}> must confirm" in text
    [actions] = [b for b in root.blocks or [] if b["type"] == "actions"]
    confirm, cancel = actions["elements"]
    assert (confirm["action_id"], confirm["style"], cancel["action_id"]) == (
        "rollback_review",  # 12 steps do not fit Slack's 300-character confirm dialog: a modal lists them
        "danger",
        "rollback_cancel",
    )


async def test_a_service_with_two_plans_asks_which_and_suggests(bot: BotUnderTest) -> None:
    reply = (await bot.command("/rollback", "ivy immediat", user=REQUESTER)).json()["text"]
    assert "Ivy v2 has several rollback plans: `immediate`, `full`" in reply
    assert "Did you mean `immediate`?" in reply
    reply = (await bot.command("/rollback", "mira-copilt", user=REQUESTER)).json()["text"]
    assert "Did you mean `mira-copilot`?" in reply
    await bot.settle()
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_plans_and_status_are_shown_to_the_asker(bot: BotUnderTest) -> None:
    await bot.command("/rollback", "plans ivy-v2", user=STRANGER)
    await bot.command("/rollback", "status", user=STRANGER)
    await bot.settle()
    plans, status = bot.slack.calls_to("response_url")
    assert "*immediate*" in blocks_text(plans.blocks) and "*full*" in blocks_text(plans.blocks)
    assert "`IVY_ORGANIC_ENABLED` → `false`" in blocks_text(plans.blocks)
    assert "*restart* (`/restart ivy-v2 [reason]`, one Confirm)" in blocks_text(plans.blocks)
    assert status.text == "No rollback of any service has been requested yet."


# --- who may confirm ----------------------------------------------------------------------------------------------


async def test_own_confirm_a_strangers_confirm_and_a_late_confirm_are_refused_and_nothing_runs(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, hooks: RecordingHookServer, database_url: str
) -> None:
    root = await _request(bot, "mira", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=STRANGER)
    requested_at = utc_now()
    bot.runtime.bot.clock = lambda: requested_at + timedelta(minutes=16)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    own, strangers, late = _ephemerals(bot)
    assert "the two-person rule says the requester cannot confirm their own rollback" in own
    assert f"<@{CONFIRMER}>" in own and f"<@{REQUESTER}>" not in own.split("Ask")[1]
    assert strangers.startswith(":lock: Only the owners of Mira Co-Pilot may confirm a rollback")
    assert "expired at" in late and "Nothing ran" in late

    await _drive(bot, requested_at + timedelta(minutes=17))
    assert _secret_posts(supabase) == [] and hooks.calls == []
    assert await _rows(database_url, "SELECT status FROM rollback_runs") == [("expired",)]
    assert await _rows(database_url, "SELECT count(*) FROM rollback_steps WHERE status <> 'pending'") == [
        (0,)
    ]
    refusals = await _rows(
        database_url,
        "SELECT actor, detail->>'reason' FROM audit_log WHERE action = 'rollback.refused' ORDER BY id",
    )
    assert [actor for actor, _ in refusals] == [REQUESTER, STRANGER, CONFIRMER]
    assert refusals[2][1] == "expired"
    assert "Expired at" in blocks_text(_root_updates(bot, root)[-1].blocks)


async def test_a_stranger_cannot_even_request_and_an_unowned_service_refuses_everyone(
    bot: BotUnderTest,
    settings: Settings,
    tmp_path: Path,
    catalog_env: dict[str, str],
    slack: RecordingSlackServer,
) -> None:
    await bot.command("/rollback", "fa", user=STRANGER)
    await bot.settle()
    [refusal] = _ephemerals(bot)
    assert refusal.startswith(":lock: Only the owners of FA AI System may request a rollback")

    async with running_bot(settings, load_catalog(env=catalog_env), slack) as unowned:  # no owners at all
        await unowned.command("/rollback", "fa", user=REQUESTER)
        await unowned.settle()
    message = _ephemerals(bot)[-1]
    assert "Nobody may request a rollback of FA AI System yet: no owner is configured" in message
    assert "`services[fa-ai-system].owners`" in message
    assert [c for c in slack.calls_to("chat.postMessage") if not c.thread_ts] == []


# --- the run ------------------------------------------------------------------------------------------------------


async def test_a_mira_rollback_confirmed_by_a_second_owner_runs_every_step_once_and_reports_it(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, hooks: RecordingHookServer, database_url: str
) -> None:
    root = await _request(bot, "mira p95 above 3 s", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    t0 = utc_now()

    await _drive(bot, t0)  # steps 1–3 run, step 4 (the DBA's) waits
    # Supabase has no MIRA_COPILOT_ENABLED secret: the service runs with its default, false, so step 1 changes
    # nothing and records nothing (as `/flag` does), and says so in the thread.
    assert _secret_posts(supabase) == []
    assert any(
        "Step 1/12 done" in t and "nothing to change: MIRA_COPILOT_ENABLED is already false" in t
        for t in _thread(bot, root)
    )
    [hook] = hooks.calls
    assert hook.signature_ok is True
    assert hook.headers["idempotency-key"] == "rollback-1-step-2-attempt-1"
    assert hook.body["inputs"] == {"function": "agent-chat", "version": "previous"}
    assert (hook.body["service"], hook.body["confirmed_by"]) == ("mira-copilot", CONFIRMER)
    thread = _thread(bot, root)
    assert thread[0].startswith(f":rotating_light: <@{CONFIRMER}> confirmed rollback #1")
    assert any("Step 4/12 waits for DBA" in t and "data loss" in t for t in thread)
    await _drive(bot, t0 + timedelta(seconds=30))  # nothing moves without the sign-off
    assert len(hooks.calls) == 1 and _secret_posts(supabase) == []

    await _click(bot, root, "rollback_signoff", "1:4", user=STRANGER)
    assert "Only" in _ephemerals(bot)[-1] and "may sign off step 4" in _ephemerals(bot)[-1]
    await _click(bot, root, "rollback_signoff", "1:4", user=THIRD_OWNER)
    for minutes in (0, 31, 62, 93):  # each stage after a 30-minute watch
        await _drive(bot, t0 + timedelta(minutes=minutes, seconds=1))

    posts = _secret_posts(supabase)
    # Each stage writes only what it changes: the allowlist, then the percentage, then the global flag with 100 %.
    assert [sorted(item["name"] for item in body) for body in posts] == [
        ["MIRA_ENABLED_USERS"],
        ["MIRA_ROLLOUT_PERCENT"],
        ["MIRA_ROLLOUT_PERCENT"],
        ["MIRA_COPILOT_ENABLED", "MIRA_ROLLOUT_PERCENT"],
    ]
    assert {"name": "MIRA_ROLLOUT_PERCENT", "value": "100"} in posts[-1]
    assert len(hooks.calls) == 1
    thread = _thread(bot, root)
    for n in range(1, MIRA_STEPS + 1):
        assert sum(f"Step {n}/12 started" in t for t in thread) == 1, n
        assert sum(f"Step {n}/12 done" in t for t in thread) == 1, n
    final = blocks_text(_root_updates(bot, root)[-1].blocks)
    assert final.count("✅") == MIRA_STEPS and "Done in" in final
    states = {blocks_text(u.blocks).count("🔄") for u in _root_updates(bot, root)}
    assert 1 in states  # the root showed a running step along the way
    [summary] = [c for c in bot.slack.calls_to("chat.postMessage") if c.channel == "#incidents"]
    assert "Rollback #1 of *Mira Co-Pilot* (plan `standard`) finished" in (summary.text or "")
    assert f"/archives/{CHANNEL}/p{root.replace('.', '')}|Thread>" in (summary.text or "")
    audit = await _rows(
        database_url, "SELECT action, outcome FROM audit_log WHERE action LIKE 'rollback.%%' ORDER BY id"
    )
    assert audit[:2] == [("rollback.request", "pending"), ("rollback.confirm", "ok")]
    assert audit.count(("rollback.step", "started")) == MIRA_STEPS
    assert audit.count(("rollback.step", "ok")) == MIRA_STEPS - 1  # the DBA's step ends with its sign-off:
    assert ("rollback.approve", "ok") in audit and audit[-1] == ("rollback.done", "ok")


async def test_a_step_reply_slack_stored_but_answered_5xx_is_not_posted_twice(
    bot: BotUnderTest, supabase: RecordingSupabaseServer, hooks: RecordingHookServer, database_url: str
) -> None:
    """Slack stores step 1's "started" reply and answers 500 anyway: the reply is not resent blindly (it once
    was, through the retrying client: two "started" replies); its claim stays, to be looked up, never reposted."""
    root = await _request(bot, "mira p95 above 3 s", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    bot.slack.fail_after_accept("chat.postMessage", status=500)
    await _drive(bot, utc_now())
    stored = [str(m.text) for m in bot.slack.thread(CHANNEL, root)]
    assert sum("Step 1/12 started" in t for t in stored) == 1
    assert sum("Step 1/12 done" in t for t in stored) == 1
    claims = await _rows(
        database_url, "SELECT key, ts IS NOT NULL FROM rollback_replies WHERE key LIKE 'step:1:%%'"
    )
    assert sorted(claims) == [("step:1:1:done", True), ("step:1:1:started", False)]


async def test_simultaneous_confirms_a_redelivered_click_and_two_workers_run_the_rollback_once(
    bot: BotUnderTest, hooks: RecordingHookServer, database_url: str
) -> None:
    root = await _request(bot, "fa", user=REQUESTER)
    click = bot.click(CHANNEL, root, "rollback_confirm", "1", user=CONFIRMER)
    same_click_again = bot.click(CHANNEL, root, "rollback_confirm", "1", user=CONFIRMER)
    other_owner = bot.click(CHANNEL, root, "rollback_confirm", "1", user=THIRD_OWNER)
    await asyncio.gather(click, same_click_again, other_owner)
    await bot.settle()
    assert sum("already running" in t for t in _ephemerals(bot)) == 2
    second_replica = RollbackWorker(bot.runtime.bot, bot.runtime.rollbacks.runs, owner="another-replica")
    now = utc_now()
    await asyncio.gather(bot.runtime.rollbacks.run_once(now), second_replica.run_once(now))
    await asyncio.gather(bot.runtime.rollbacks.run_once(now), second_replica.run_once(now))

    assert len(hooks.calls) == 1
    assert await _rows(database_url, "SELECT status FROM rollback_runs") == [("done",)]
    assert await _rows(database_url, "SELECT position, attempts FROM rollback_steps ORDER BY position") == [
        (1, 1),
        (2, 1),
    ]
    assert len(await _rows(database_url, "SELECT 1 FROM audit_log WHERE action = 'rollback.confirm'")) == 1
    assert len([c for c in bot.slack.calls_to("chat.postMessage") if c.channel == "#incidents"]) == 1


async def test_a_failing_hook_stops_the_run_with_retry_and_abort_and_retry_completes_it(
    bot: BotUnderTest, hooks: RecordingHookServer, database_url: str
) -> None:
    hooks.fail_next(500)
    root = await _request(bot, "fa shifting traffic back", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    now = utc_now()
    await _drive(bot, now)
    await _drive(bot, now)  # a failed run does not continue on its own
    assert len(hooks.calls) == 1
    failure = [c for c in bot.slack.calls_to("chat.postMessage") if "failed" in (c.text or "")][-1]
    assert "answered 500: deploy failed with 500" in (failure.text or "")
    assert [e["action_id"] for e in failure.blocks[-1]["elements"]] == [
        "rollback_retry",
        "rollback_skip",
        "rollback_mark_done",
        "rollback_abort",
    ]
    root_now = blocks_text(_root_updates(bot, root)[-1].blocks)
    assert "❌" in root_now and "Stopped at step 1" in root_now and "⏭️" not in root_now
    assert await _rows(database_url, "SELECT status FROM rollback_steps ORDER BY position") == [
        ("failed",),
        ("pending",),
    ]

    await _click(bot, root, "rollback_retry", "1:1", user=THIRD_OWNER)
    await _click(bot, root, "rollback_retry", "1:1", user=THIRD_OWNER)  # a double click retries once
    assert "is not waiting for a retry" in _ephemerals(bot)[-1]
    await _drive(bot, now)
    assert [c.headers["idempotency-key"] for c in hooks.calls] == [
        "rollback-1-step-1-attempt-1",
        "rollback-1-step-1-attempt-2",
    ]
    assert await _rows(database_url, "SELECT status FROM rollback_runs") == [("done",)]
    final = blocks_text(_root_updates(bot, root)[-1].blocks)
    assert "attempt 2" in final and "Done in" in final


async def test_abort_after_a_failure_skips_the_rest_and_tells_incidents(
    bot: BotUnderTest, hooks: RecordingHookServer, database_url: str
) -> None:
    hooks.fail_next(502)
    root = await _request(bot, "fa", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    await _drive(bot, utc_now())
    await _click(bot, root, "rollback_abort", "1", user=REQUESTER)
    await _drive(bot, utc_now())
    assert len(hooks.calls) == 1
    assert await _rows(database_url, "SELECT status FROM rollback_steps ORDER BY position") == [
        ("skipped",),
        ("skipped",),
    ]
    [summary] = [c for c in bot.slack.calls_to("chat.postMessage") if c.channel == "#incidents"]
    assert f"was aborted by <@{REQUESTER}>" in (summary.text or "")


async def test_a_restart_during_a_wait_resumes_at_that_step_without_repeating_earlier_ones(
    bot: BotUnderTest,
    settings: Settings,
    catalog: Catalog,
    supabase: RecordingSupabaseServer,
    hooks: RecordingHookServer,
    database_url: str,
) -> None:
    root = await _request(bot, "mira", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    t0 = utc_now()
    await _drive(bot, t0)
    await _click(bot, root, "rollback_signoff", "1:4", user=THIRD_OWNER)
    await _drive(bot, t0 + timedelta(seconds=5))  # step 5 applied, step 6 (a 30-minute watch) running
    assert await _rows(database_url, "SELECT status FROM rollback_steps WHERE position = 6") == [("running",)]
    posts_before = len(_secret_posts(supabase))

    # kill: the first runtime never runs again — its lease is not released, it simply lapses
    restarted = await start_runtime(settings, catalog)
    try:
        await restarted.rollbacks.run_once(t0 + timedelta(seconds=30))  # the dead replica's lease still holds
        assert [t for t in _thread(bot, root) if "Resumed" in t] == []
        await restarted.rollbacks.run_once(t0 + timedelta(minutes=31))
    finally:
        await restarted.close()
    [resumed] = [t for t in _thread(bot, root) if "Resumed after a restart" in t]
    assert (
        "Steps 1–5 are done and will not run again" in resumed
        and "at step 6: Monitor for 30 minutes" in resumed
    )
    assert len(hooks.calls) == 1
    assert len(_secret_posts(supabase)) == posts_before + 1  # only step 7 (10 %), nothing earlier again
    assert await _rows(
        database_url, "SELECT position, attempts FROM rollback_steps WHERE position <= 7 ORDER BY position"
    ) == [(n, 1) for n in range(1, 8)]


async def test_a_manual_step_is_reminded_once(bot: BotUnderTest) -> None:
    root = await _request(bot, "mira", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    t0 = utc_now()
    for minutes in (0, 10, 31, 45, 90):
        await _drive(bot, t0 + timedelta(minutes=minutes))
    reminders = [t for t in _thread(bot, root) if "Still waiting" in t]
    assert len(reminders) == 1
    assert "for DBA to sign off step 4" in reminders[0] and f"<@{REQUESTER}>" in reminders[0]


async def test_a_watch_fails_as_soon_as_health_goes_down(
    bot: BotUnderTest, health: Health, supabase: RecordingSupabaseServer, database_url: str
) -> None:
    root = await _request(bot, "mira", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    t0 = utc_now()
    await _drive(bot, t0)
    await _click(bot, root, "rollback_signoff", "1:4", user=THIRD_OWNER)
    await _drive(bot, t0 + timedelta(minutes=1))  # step 6, the first watch, starts
    health.mira = "down"
    await _drive(bot, t0 + timedelta(minutes=1, seconds=30))  # checked once a minute: not yet
    await _drive(bot, t0 + timedelta(minutes=2, seconds=1))
    assert await _rows(
        database_url, "SELECT position, status FROM rollback_steps WHERE position IN (6, 7) ORDER BY position"
    ) == [
        (6, "failed"),
        (7, "pending"),
    ]
    [failure] = [t for t in _thread(bot, root) if "Step 6/12" in t and "failed" in t]
    assert "health went down during the watch" in failure and "`edge-function` down" in failure
    await _drive(bot, t0 + timedelta(minutes=40))
    assert len(_secret_posts(supabase)) == 1  # the internal stage's allowlist; the 10 % stage never ran


async def test_the_hook_secret_and_the_hooks_query_string_never_reach_slack(
    bot: BotUnderTest, hooks: RecordingHookServer
) -> None:
    hooks.fail_next(500)
    root = await _request(bot, "fa", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    await _drive(bot, utc_now())
    everything = " ".join(
        (c.text or "") + blocks_text(c.blocks) for c in bot.slack.calls if c.method != "auth.test"
    )
    assert HOOK_SECRET not in everything


async def test_the_requester_cancels_and_a_later_confirm_is_told_so(
    bot: BotUnderTest, hooks: RecordingHookServer, database_url: str
) -> None:
    root = await _request(bot, "fa", user=REQUESTER)
    await _click(bot, root, "rollback_cancel", "1", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    await _drive(bot, utc_now())
    assert hooks.calls == []
    assert _ephemerals(bot)[-1] == f"Rollback #1 was already cancelled by <@{REQUESTER}>."
    assert f"Cancelled by <@{REQUESTER}>: nothing ran." in blocks_text(_root_updates(bot, root)[-1].blocks)
    assert await _rows(database_url, "SELECT action FROM audit_log WHERE action = 'rollback.cancel'") == [
        ("rollback.cancel",)
    ]


async def test_one_rollback_at_a_time_per_service(bot: BotUnderTest, hooks: RecordingHookServer) -> None:
    hooks.fail_next(500)
    root = await _request(bot, "fa", user=REQUESTER)
    await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
    await _drive(bot, utc_now())  # stopped on the failed hook: still active
    await bot.command("/rollback", "fa again", user=CONFIRMER)
    await bot.settle()
    refusal = _ephemerals(bot)[-1]
    assert refusal.startswith(
        ":no_entry: Rollback #1 of FA AI System (plan `blue-green`) is still open: stopped on a failed step ("
    )
    assert f"/archives/{CHANNEL}/p{root.replace('.', '')}|thread>" in refusal


async def test_a_watch_fails_when_the_slo_was_breached_over_its_window(
    settings: Settings,
    catalog: Catalog,
    catalog_env: dict[str, str],
    tmp_path: Path,
    slack: RecordingSlackServer,
    database_url: str,
) -> None:
    """Mira's watch reads p95 from mira_events over the watch window: 5 s answers breach the 3 s SLO."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            """INSERT INTO mira_events (event_type, latency_ms, success, created_at)
               SELECT 'agent_response', 5000, true, now() - n * interval '10 seconds' FROM generate_series(1, 60) n"""
        )
    async with running_bot(settings, catalog, slack) as bot:
        root = await _request(bot, "mira", user=REQUESTER)
        await _click(bot, root, "rollback_confirm", "1", user=CONFIRMER)
        t0 = utc_now()
        await _drive(bot, t0)
        await _click(bot, root, "rollback_signoff", "1:4", user=THIRD_OWNER)
        await _drive(bot, t0)
        await _drive(bot, t0 + timedelta(minutes=31))
    [failure] = [t for t in _thread(bot, root) if "Step 6/12" in t and "failed" in t]
    assert "SLO breached: p95 5000 &gt; 3000" in failure  # a step's result is escaped: Slack shows `>`


async def test_the_services_primary_on_call_in_pagerduty_may_confirm_and_others_are_told_so(
    settings: Settings,
    catalog_env: dict[str, str],
    tmp_path: Path,
    slack: RecordingSlackServer,
    database_url: str,
) -> None:
    """Not an owner, but paged for Mira right now (level 1 of its escalation policy): may confirm."""
    paged, secondary = "U0PAGED01", "U0SECOND1"
    slack.add_user(paged, "paged@example.com")
    slack.add_user(secondary, "second@example.com")
    async with RecordingPagerDutyServer(PD_TOKEN) as pagerduty:
        pagerduty.add_user("PUPAGED", "Paged Person", "paged@example.com")
        pagerduty.add_user("PUSECOND", "Second Person", "second@example.com")
        pagerduty.set_oncalls(
            [
                oncall_entry(("PUPAGED", "Paged Person"), escalation_policy=("PEPMIRA", "Mira")),
                oncall_entry(
                    ("PUSECOND", "Second Person"), escalation_policy=("PEPMIRA", "Mira"), escalation_level=2
                ),
            ]
        )
        with_pagerduty = settings.model_copy(
            update={"pagerduty_api_token": SecretStr(PD_TOKEN), "pagerduty_api_url": pagerduty.base_url}
        )
        catalog = _owned(tmp_path, {**catalog_env, "MIRA_PD_ESCALATION_POLICY": "PEPMIRA"})
        async with running_bot(with_pagerduty, catalog, slack) as bot:
            root = await _request(bot, "mira", user=REQUESTER)
            await _click(bot, root, "rollback_confirm", "1", user=secondary)
            refusal = _ephemerals(bot)[-1]
            assert refusal.startswith(":lock: Only the owners of Mira Co-Pilot may confirm a rollback")
            assert "The current primary on-call of Mira Co-Pilot in PagerDuty may too." in refusal
            await _click(bot, root, "rollback_confirm", "1", user=paged)
    assert await _rows(database_url, "SELECT status, confirmed_by FROM rollback_runs") == [("running", paged)]
    assert [c.query["escalation_policy_ids[]"] for c in pagerduty.calls if c.path == "/oncalls"] == [
        ["PEPMIRA"]
    ] * 2


async def test_a_replayed_rollback_request_makes_one_request(bot: BotUnderTest, database_url: str) -> None:
    """Issue 12: a byte-identical signed /rollback sent again within Slack's window made a second request. The
    replay is answered 200 and does nothing: one rollback row, one request message."""
    body = bot.command_body("/rollback", "fa router p95 above 3 s", user=REQUESTER)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **sign_slack_request(SIGNING_SECRET, body),
    }
    for _ in range(2):
        assert (await bot.client.post("/slack/events", content=body, headers=headers)).status_code == 200
        await bot.settle()
    roots = [c for c in bot.slack.calls_to("chat.postMessage") if c.channel == CHANNEL and not c.thread_ts]
    assert len(roots) == 1
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        [(count,)] = await (await conn.execute("SELECT count(*) FROM rollback_runs")).fetchall()
    assert count == 1
