"""What a handler is given: the bot's shared parts, who invoked it and where, and a way to reply.

Handlers see these plain objects only; nothing here knows about HTTP, signatures or retries.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import BackgroundWork
from bot.catalog import Catalog
from bot.group_commit import GroupCommits
from bot.replies import Reply
from bot.scheduler import utc_now
from bot.settings import Settings
from bot.single_flight import SingleFlight
from bot.slack_budget import ChannelBudget
from bot.storage import Storage
from bot.worker import new_replica_id
from integrations.pagerduty import PagerDutyClient


@dataclass
class BotContext:
    """The process-wide parts, built once at start."""

    settings: Settings
    catalog: Catalog
    storage: Storage
    slack: AsyncWebClient
    # The same Web API without blind retries, for posts that must happen once (see build_slack_client).
    slack_unretried: AsyncWebClient
    http: httpx.AsyncClient
    # The one per-channel Slack budget of this process: the delivery worker, incident buttons and every other
    # post to a channel take their slot here, so the process keeps one in-flight request per channel.
    budget: ChannelBudget
    pagerduty: PagerDutyClient | None = None  # None until PAGERDUTY_API_TOKEN is set
    background: BackgroundWork = field(default_factory=BackgroundWork)
    # What "now" is for time-dependent decisions (a rollback request's expiry, the scheduler, the handoff's ticks,
    # reminders and test deadlines): tests and the console's `clock` command move it instead of sleeping.
    clock: Callable[[], datetime] = utc_now
    # The name this replica claims rows under: delivery claims and incident locks, root and digest claims, the
    # handoff's post, rollback leases and scheduler slots all use it.
    replica: str = field(default_factory=new_replica_id)
    # Durations and freshness (how old a shared probe result is): monotonic, unlike `clock`, which the console and
    # tests move; tests replace it to step past a window without sleeping.
    monotonic: Callable[[], float] = time.monotonic
    # Checks shared by the callers that ask together (bot/single_flight.py: /health's probes during a crowd).
    flights: SingleFlight = field(default_factory=SingleFlight)
    # Statements of callers that write together, one per batch (bot/group_commit.py: /health's runs).
    batches: GroupCommits = field(default_factory=GroupCommits)


@dataclass(frozen=True)
class Invocation:
    """A slash command as typed: who, where, what."""

    command: str
    text: str
    user_id: str
    channel_id: str
    team_id: str | None = None
    trigger_id: str | None = None


@dataclass
class CommandContext:
    bot: BotContext
    invocation: Invocation
    reply: Reply


@dataclass
class ActionContext:
    """A button click: who clicked, which message it was on, and the action's value."""

    bot: BotContext
    user_id: str
    channel_id: str
    message_ts: str | None
    action_id: str
    value: str | None
    reply: Reply
    payload: dict[str, Any] = field(default_factory=dict)
    #: Runs a command line ("/flag preset ivy-v2 emergency") as if the clicking user typed it where the button
    #: is: the registry's parse, ack answer, guard and post-ack work (bot/app.py). Set by the platform.
    run_command: Callable[[str], Awaitable[None]] | None = None


@dataclass
class ViewContext:
    """A submitted modal: who submitted it, its input values by action_id, and what the opener stored in it."""

    bot: BotContext
    user_id: str
    callback_id: str
    values: dict[str, str | None]
    private_metadata: str
    reply: Reply
