"""Debounced root edits spend Slack's edit allowance on the latest state: a root whose incident's later events
already wait in the outbox is edited once they are delivered, not before (at most DEBOUNCE_BACKLOG later). In the
2,000-event storm the roots' acknowledgements took the minute's 50 edits while the resolves already waited, and
four resolves were shown a minute late. Real route, Postgres, Redis and the recording Slack server; the worker on
an injected clock."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr

from bot.catalog import Catalog
from bot.settings import Settings
from handlers.incidents import root_edits
from stand_ins.recording_slack import RecordingSlackServer
from tests.harness import BotUnderTest, running_bot
from tests.test_incidents import ALERTS, SECRET_NEW, T0, send
from tests.test_storm_digest_thread import _ack, _drain, _resolve, _roots, _trigger


def _edits(slack: RecordingSlackServer, ts: str) -> list[str]:
    return [c.body["text"] for c in slack.calls_to("chat.update", channel=ALERTS) if c.body.get("ts") == ts]


async def _acknowledged_with_a_resolve_waiting(bot: BotUnderTest, number: int) -> str:
    """The incident's root posted, its acknowledgement delivered (the root dirty, not edited yet: not quiet),
    then its resolve stored and not claimed yet. Returns the root's ts."""
    assert await send(bot, _trigger(number, T0)) == 202
    await _drain(bot, T0 + timedelta(seconds=10))
    acked_at = T0 + timedelta(seconds=20)
    assert await send(bot, _ack(number, acked_at)) == 202
    assert await bot.runtime.delivery.run_once(acked_at) == 1
    assert await send(bot, _resolve(number, acked_at + timedelta(seconds=5))) == 202
    return str(_roots(bot.slack, ALERTS)[number].ts)


async def test_a_root_is_edited_once_its_waiting_events_are_delivered_not_before(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> None:
    signed = settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)]})
    async with running_bot(signed, catalog, slack) as bot:
        root_ts = await _acknowledged_with_a_resolve_waiting(bot, 740)
        runtime = bot.runtime.bot
        quiet = T0 + timedelta(seconds=30)  # the acknowledgement is 10 s old: quiet, but the resolve waits
        assert await root_edits.flush_roots(runtime, runtime.budget, quiet) == 0
        assert _edits(slack, root_ts) == []

        await _drain(bot, quiet + timedelta(seconds=1))  # the resolve delivered, then the edit
        assert [text.split(":")[0] for text in _edits(slack, root_ts)] == ["Resolved"]


async def test_a_root_waits_for_its_incidents_backlog_no_longer_than_the_backlog_debounce(
    settings: Settings, catalog: Catalog, slack: RecordingSlackServer
) -> None:
    signed = settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET_NEW)]})
    async with running_bot(signed, catalog, slack) as bot:
        root_ts = await _acknowledged_with_a_resolve_waiting(bot, 741)
        runtime = bot.runtime.bot
        dirty_since = T0 + timedelta(seconds=20)
        almost = dirty_since + root_edits.DEBOUNCE_BACKLOG - timedelta(seconds=1)
        assert await root_edits.flush_roots(runtime, runtime.budget, almost) == 0
        waited = dirty_since + root_edits.DEBOUNCE_BACKLOG
        assert await root_edits.flush_roots(runtime, runtime.budget, waited) == 2  # both channels' roots
        assert [text.split(":")[0] for text in _edits(slack, root_ts)] == ["Acknowledged"]
