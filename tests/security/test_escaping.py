"""Outside text is escaped before it reaches Slack (issue 12, part 2).

Every string that did not come from the catalog or the bot's own wording — PagerDuty titles, notes, agent,
assignee and responder names, status updates, conference bridges, priorities, escalation-policy names, on-call
names, Slack modal input, `/rollback` reasons, command arguments quoted back — carries the hostile markers below
and goes through the real routes: signed PagerDuty webhooks, signed Slack commands, clicks and modal submissions,
the delivery worker's timers, the recording PagerDuty's webhook echo. Then every call the recording Slack server
received (and every ack the bot answered a command with) is walked, text, blocks recursively, attachments and
views, and must hold no special mention, no user mention other than the real Slack users of the test, no link to
a host from outside, no raw `&`, no stray `>` and nothing escaped twice. Each hostile field carries a tag of its
own, and each tag must show up somewhere, so a field that never reached Slack cannot pass by being absent.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import yaml
from pydantic import SecretStr

from bot import mrkdwn
from bot.catalog import BUNDLED_CATALOG, Catalog, load_catalog
from bot.settings import Settings
from bot.signing import sign_pagerduty_webhook
from stand_ins.recording_pagerduty import RecordingPagerDutyServer, oncall_entry
from stand_ins.recording_slack import RecordingSlackServer
from tests import pd_payloads as pd
from tests.harness import USER, BotUnderTest

HOSTILE = "<!channel> <!here> <!everyone> <@U0EVIL666> <https://x|y> & *bold* a|b>c"
EVIL_USER = "U0EVIL666"
REAL_USERS = {USER, "U0BOB0001"}  # Slack users of the test, mentioned by ID the bot looked up
#: Hosts of the links the bot builds itself: PagerDuty's html_url (the payload builders' and the recording
#: PagerDuty's), Slack's permalinks (the recording Slack's), the catalog's runbook.
OWN_HOSTS = {"mira-demo.pagerduty.com", "mira.pagerduty.com", "console.slack.test", "runbooks.example"}
SECRET = "pd-webhook-secret-escaping"
PD_TOKEN = "pd-token-escaping"
POLICY = ("PEPMIRA", "Mira escalation")
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
ALERTS = "#mira-copilot-alerts"


def hostile(tag: str) -> str:
    return f"{tag} {HOSTILE}"


def hostile_word(tag: str) -> str:
    """The markers in one word, for arguments quoted back one word at a time."""
    return tag + HOSTILE.replace(" ", "")


# --- the checker ------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"<([^<>]*)>")
_RAW_AMP = re.compile(r"&(?!amp;|lt;|gt;)")
_NOT_MRKDWN_KEYS = {
    "private_metadata", "value", "action_id", "block_id", "callback_id", "url", "image_url", "channel",
    "ts", "thread_ts", "metadata", "color", "style", "type", "response_type", "emoji", "trigger_id", "token",
}  # fmt: skip


def mrkdwn_strings(value: Any, key: str = "") -> Iterator[str]:
    """Every string Slack parses as mrkdwn in a payload: top-level text, attachments' text/fallback, blocks'
    mrkdwn texts and fields, views' mrkdwn — everything except plain_text objects and identifiers."""
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            return
        for k, v in value.items():
            if k not in _NOT_MRKDWN_KEYS:
                yield from mrkdwn_strings(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from mrkdwn_strings(item, key)
    elif isinstance(value, str) and key:
        yield value


def problems_in(text: str) -> list[str]:
    """What in one mrkdwn string is markup that outside text could have planted."""
    found = []
    for token in _TOKEN.findall(text):
        target, _, label = token.partition("|")
        if target.startswith("!"):
            found.append(f"special mention <{token}>")
        elif target.startswith("@"):
            if target[1:] not in REAL_USERS:
                found.append(f"user mention <{token}>")
        elif target.startswith("#"):
            found.append(f"channel link <{token}>")
        else:
            host = urlsplit(target).hostname or ""
            if urlsplit(target).scheme not in ("http", "https") or not (
                host in OWN_HOSTS or host.startswith("127.0.0.1")
            ):
                found.append(f"link from outside <{token}>")
            if "|" in label:
                found.append(f"label broken by | in <{token}>")
    rest = _TOKEN.sub("", text)
    if "<" in rest or ">" in rest:
        found.append(f"raw < or > outside the bot's links in {text!r}")
    if _RAW_AMP.search(text):
        found.append(f"raw & in {text!r}")
    for twice in ("&amp;amp;", "&amp;lt;", "&amp;gt;"):
        if twice in text:
            found.append(f"escaped twice ({twice}) in {text!r}")
    return found


def assert_nothing_planted(slack: RecordingSlackServer, acks: list[dict[str, Any]], tags: list[str]) -> None:
    payloads = [(c.method, c.body) for c in slack.calls] + [("ack", a) for a in acks]
    bad = [
        f"{method}: {problem}"
        for method, body in payloads
        for text in mrkdwn_strings(body)
        for problem in problems_in(text)
    ]
    assert bad == [], "\n".join(bad[:40])
    shown = "\n".join(text for _, body in payloads for text in mrkdwn_strings(body))
    missing = [tag for tag in tags if tag not in shown]
    assert missing == [], f"these hostile fields never reached Slack, so they prove nothing: {missing}"


# --- the world --------------------------------------------------------------------------------------------------


@pytest.fixture
async def pagerduty() -> AsyncIterator[RecordingPagerDutyServer]:
    async with RecordingPagerDutyServer(PD_TOKEN) as server:
        server.add_user("PUALICE", "Alice Example", "alice@example.com")
        yield server


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """The bundled catalog, with the test user owning every service (so /rollback may be requested) and the
    runbook linked."""
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for service in data["services"]:
        service["owners"] = {"users": [USER], "groups": []}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_catalog(
        path,
        env={"MIRA_PD_ESCALATION_POLICY": POLICY[0], "MIRA_RUNBOOK_URL": "https://runbooks.example/mira"},
    )


@pytest.fixture
def settings(
    settings: Settings, pagerduty: RecordingPagerDutyServer, slack: RecordingSlackServer
) -> Settings:
    slack.add_user(USER, "alice@example.com", "Alice Example")
    return settings.model_copy(
        update={
            "pagerduty_webhook_secrets": [SecretStr(SECRET)],
            "pagerduty_api_token": SecretStr(PD_TOKEN),
            "pagerduty_api_url": pagerduty.base_url,
            "pagerduty_from_email": "oncall-bot@example.com",
            "storm_threshold": 0,
        }
    )


async def send(bot: BotUnderTest, payload: dict[str, Any]) -> None:
    body = pd.body(payload)
    response = await bot.client.post(
        "/pagerduty/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Webhook-Id": payload["event"]["id"],
            **sign_pagerduty_webhook(SECRET, body),
        },
    )
    assert response.status_code == 202


async def drain(bot: BotUnderTest, now: datetime) -> None:
    worker = bot.runtime.delivery
    for _ in range(30):
        if await worker.run_once(now) == 0:
            break
    await worker.run_once(now + timedelta(seconds=10))
    await bot.settle()


async def command(bot: BotUnderTest, acks: list[dict[str, Any]], name: str, typed: str) -> None:
    """A slash command as Slack sends it: what the user typed, entity-encoded."""
    response = await bot.command(name, mrkdwn.escape(typed))
    assert response.status_code == 200
    acks.append(response.json())
    await bot.settle()


def hostile_incident(tag: str, incident_id: str, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": incident_id,
        "number": 7,
        "title": hostile(f"{tag}TITLE"),
        "priority": hostile(f"{tag}PRIO"),
        "escalation_policy": hostile(f"{tag}POLICY"),
        "assignees": [("PUEVIL1", hostile(f"{tag}ASSIGNEE"), "evil1@outside.example")],
        "conference_url": "https://x|<!channel>",
        "conference_number": hostile(f"{tag}BRIDGE"),
        "created_at": T0,
        **changes,
    }
    inc = pd.incident(**fields)
    inc["html_url"] = "https://evil.example/x|<!channel>"  # not a link the bot may build
    return inc


# --- the tests --------------------------------------------------------------------------------------------------


async def test_every_pagerduty_field_of_every_event_type_is_escaped_in_every_channel_and_thread(
    bot: BotUnderTest,
) -> None:
    inc = hostile_incident("A", "PEVIL01")
    agent = ("PUEVIL2", hostile("AGENT"))
    responder = ("PUEVIL3", hostile("RESPONDER"))
    tags = ["ATITLE", "APRIO", "APOLICY", "AASSIGNEE", "ABRIDGE", "AGENT", "RESPONDER", "NOTE", "STATUSUPD"]
    tags += ["RESPMSG", "REASSIGNED", "NEWPRIO", "BTITLE", "BASSIGNEE"]
    events = [pd.event("incident.triggered", inc, occurred_at=T0, event_id="e-trigger")]
    extra: dict[str, dict[str, Any]] = {
        "incident.annotated": {"content": hostile("NOTE")},
        "incident.status_update_published": {"message": hostile("STATUSUPD")},
        "incident.responder.added": {"responder": responder, "message": hostile("RESPMSG")},
        "incident.responder.replied": {"responder": responder, "message": hostile("RESPMSG")},
        "incident.conference_bridge.updated": {
            "conference_url": "javascript:alert(1)",
            "conference_numbers": [(hostile("BRIDGELABEL"), hostile("BRIDGENUM"))],
        },
        "incident.custom_field_values.updated": {"custom_fields": {"env": hostile("FIELD")}},
        "incident.workflow.started": {"workflow": hostile("WORKFLOW")},
    }
    changed: dict[str, dict[str, Any]] = {
        "incident.reassigned": {"assignees": [("PUEVIL4", hostile("REASSIGNED"), "evil4@outside.example")]},
        "incident.priority_updated": {"priority": hostile("NEWPRIO")},
        "incident.acknowledged": {"status": "acknowledged"},
        "incident.resolved": {"status": "resolved"},
    }
    minute = 1
    for event_type in pd.DOCUMENTED_EVENT_TYPES:
        if event_type == "incident.triggered" or event_type.startswith("service."):
            continue
        snapshot = hostile_incident("A", "PEVIL01", **changed.get(event_type, {}))
        events.append(
            pd.event(
                event_type,
                snapshot,
                occurred_at=T0 + timedelta(minutes=minute),
                event_id=f"e-{event_type}",
                agent=agent,
                **extra.get(event_type, {}),
            )
        )
        minute += 1
    events.append(  # an event type PagerDuty may add one day, named by outside text
        pd.event(
            "incident.<!channel>",
            inc,
            occurred_at=T0 + timedelta(minutes=minute),
            event_id="e-unknown",
            agent=agent,
        )
    )
    # A second incident left open: its root, the nudge naming its assignees (no Slack account), the resolution
    # reminder. (Incidents of services outside the catalog are not posted at all.)
    other = pd.incident(
        id="PEVIL02",
        number=8,
        title=hostile("BTITLE"),
        assignees=[("PUEVIL5", hostile("BASSIGNEE"), "evil5@outside.example")],
        created_at=T0,
    )
    events.append(pd.event("incident.triggered", other, occurred_at=T0, event_id="e-other"))
    for payload in events:
        await send(bot, payload)
    await drain(bot, T0 + timedelta(minutes=minute + 1))
    worker = bot.runtime.delivery
    for later in (timedelta(minutes=16), timedelta(minutes=61), timedelta(hours=49)):
        await worker.run_once(T0 + later)
    await bot.settle()

    posted = bot.slack.calls_to("chat.postMessage")
    assert {c.channel for c in posted} >= {bot.slack.channel_id(ALERTS), bot.slack.channel_id("#incidents")}
    assert any(c.thread_ts for c in posted) and bot.slack.calls_to("chat.update")
    assert any(str(c.text).startswith(":bell:") for c in posted), "\n".join(str(c.text)[:60] for c in posted)
    assert any(str(c.text).startswith("Post-mortem draft") for c in posted)
    assert_nothing_planted(bot.slack, [], tags)
    # Decoded once by Slack, the note reads exactly as PagerDuty had it.
    notes = [c.text for c in posted if str(c.text).startswith(":memo:")]
    assert notes and mrkdwn.unescape(notes[0]).endswith(hostile("NOTE"))


async def test_storm_digest_titles_are_escaped(bot: BotUnderTest, settings: Settings) -> None:
    bot.runtime.bot.settings = settings.model_copy(update={"storm_threshold": 2})
    for n in range(4):
        inc = hostile_incident(f"S{n}", f"PSTORM{n}", number=100 + n)
        await send(bot, pd.event("incident.triggered", inc, occurred_at=T0, event_id=f"storm-{n}"))
    await drain(bot, T0 + timedelta(seconds=5))
    assert any("Incident storm" in str(c.text) for c in bot.slack.calls_to("chat.postMessage"))
    assert_nothing_planted(bot.slack, [], ["S3TITLE"])


async def _submit(bot: BotUnderTest, callback_id: str, text: str, channel: str) -> None:
    view = {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps({"incident": "PEVIL09", "channel": channel, "ts": None}),
        "state": {"values": {"text": {"text": {"type": "plain_text_input", "value": text}}}},
    }
    payload = {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": USER}, "view": view}
    response = await bot.post_signed(urlencode({"payload": json.dumps(payload)}).encode())
    assert response.status_code == 200
    await bot.settle()


async def test_resolve_and_note_modal_input_and_pagerduty_errors_are_escaped(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    pagerduty.add_incident(
        "PEVIL09",
        9,
        hostile("MTITLE"),
        "PSVC001",
        assignees=[("PUALICE", "Alice Example", "alice@example.com")],
        service_name="Mira Co-Pilot",
    )
    pagerduty.send_webhooks_to(f"{bot.server.url}/pagerduty/webhook", [SECRET])
    now = datetime.now(UTC) - timedelta(seconds=5)
    inc = pd.incident(id="PEVIL09", number=9, title=hostile("MTITLE"), created_at=now)
    await send(bot, pd.event("incident.triggered", inc, occurred_at=now, event_id="m-trigger"))
    await drain(bot, datetime.now(UTC) + timedelta(seconds=2))
    root = next(c for c in bot.slack.calls_to("chat.postMessage", channel=ALERTS) if not c.thread_ts)
    channel, ts = root.response["channel"], root.response["ts"]

    await bot.click(channel, ts, "incident_note", "PEVIL09")
    await bot.settle()
    [opened] = bot.slack.calls_to("views.open")
    await _submit(bot, "incident_note_modal", hostile("MODALNOTE"), channel)  # modal values arrive unencoded
    await bot.click(channel, ts, "incident_resolve", "PEVIL09")
    await bot.settle()
    await _submit(bot, "incident_resolve_modal", hostile("RESOLUTION"), channel)
    await bot.runtime.bot.storage.redis.flushdb()  # the click lock of the first note
    pagerduty.fail_next("POST", 400, body={"error": {"message": hostile("PDERROR"), "code": 2001}})
    await _submit(bot, "incident_note_modal", "another note", channel)
    await pagerduty.wait_for_webhooks(2)
    await drain(bot, datetime.now(UTC) + timedelta(seconds=2))

    assert [n["content"] for n in pagerduty.notes("PEVIL09")][:1] == [hostile("MODALNOTE")]  # sent as typed
    assert opened.body["view"]["title"]["type"] == "plain_text"
    assert_nothing_planted(bot.slack, [], ["MTITLE", "MODALNOTE", "RESOLUTION", "PDERROR"])


async def test_oncall_and_the_handoff_escape_pagerduty_user_names(
    bot: BotUnderTest, pagerduty: RecordingPagerDutyServer
) -> None:
    rotation = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    week = timedelta(days=7)
    pagerduty.add_user("PUEVIL6", hostile("OUTGOING"), "no Slack account")
    pagerduty.add_user("PUEVIL7", hostile("INCOMING"), "no Slack account")
    pagerduty.set_oncalls(
        [
            oncall_entry(
                ("PUEVIL6", hostile("OUTGOING")),
                schedule=("PSCH", hostile("SCHEDULE")),
                escalation_policy=POLICY,
                start=(rotation - week).isoformat(),
                end=rotation.isoformat(),
            ),
            oncall_entry(
                ("PUEVIL7", hostile("INCOMING")),
                schedule=("PSCH", hostile("SCHEDULE")),
                escalation_policy=POLICY,
                start=rotation.isoformat(),
                end=(rotation + week).isoformat(),
            ),
            oncall_entry(("PUEVIL8", hostile("SECONDARY")), escalation_policy=POLICY, escalation_level=2),
        ]
    )
    await send(  # an open incident, which the checklist's first item lists
        bot, pd.event("incident.triggered", hostile_incident("H", "PEVIL10"), occurred_at=T0, event_id="h-1")
    )
    await drain(bot, T0 + timedelta(seconds=1))
    bot.runtime.bot.clock = lambda: rotation + timedelta(hours=3)
    acks: list[dict[str, Any]] = []
    await command(bot, acks, "/oncall", "")
    await command(bot, acks, "/oncall", "handoff")
    await command(bot, acks, "/oncall", "checklist")
    await command(bot, acks, "/oncall", "handoff")  # already posted: the link to it
    assert any(str(c.text).startswith("On-call handoff") for c in bot.slack.calls_to("chat.postMessage"))
    assert_nothing_planted(bot.slack, acks, ["OUTGOING", "INCOMING", "SECONDARY", "HTITLE"])


async def test_rollback_reasons_and_bad_command_arguments_are_escaped_when_quoted_back(
    bot: BotUnderTest,
) -> None:
    acks: list[dict[str, Any]] = []
    await command(bot, acks, "/rollback", f"mira-copilot standard {hostile('REASON')}")
    # Slack's own encoding of a real mention and a special mention typed into the command: decoded, escaped.
    response = await bot.command("/rollback", "ivy-v2 immediate <!channel> <@U0EVIL666|evil> REASON2")
    acks.append(response.json())
    await bot.settle()
    rollback_posts = [c for c in bot.slack.calls if "Rollback #" in str(c.text)]
    assert len(rollback_posts) >= 2
    quoted = ["FLAGQ", "FLAGW", "HEALTHQ", "HEALTHW", "LATENCYQ", "ONCALLQ", "ROLLBACKQ", "STATUSQ", "PLANSQ"]
    await command(bot, acks, "/flag", hostile("FLAGQ"))
    await command(bot, acks, "/flag", f"get {hostile('FLAGQ')}")
    await command(bot, acks, "/health", hostile("HEALTHQ"))
    await command(bot, acks, "/latency", f"mira {hostile('LATENCYQ')}")
    await command(bot, acks, "/oncall", hostile("ONCALLQ"))
    await command(bot, acks, "/rollback", hostile("ROLLBACKQ"))
    await command(bot, acks, "/rollback", f"status {hostile_word('STATUSQ')}")
    await command(bot, acks, "/rollback", f"plans {hostile_word('PLANSQ')}")
    await command(bot, acks, "/flag", f"get {hostile_word('FLAGW')}")
    await command(bot, acks, "/health", hostile_word("HEALTHW"))
    assert_nothing_planted(bot.slack, acks, ["REASON", "REASON2", *quoted])
    # What the user typed is what Slack shows: decoded once on parse, escaped once on render.
    reasons = [t for c in rollback_posts for t in mrkdwn_strings(c.body) if "REASON " in t]
    assert any(mrkdwn.unescape(t).endswith(hostile("REASON")) for t in reasons)


async def test_the_checker_catches_what_it_is_for() -> None:
    """The checker itself: each kind of planted markup is found, the bot's own markup is not."""
    assert (
        problems_in("Acknowledged by <@U0ALICE01> <https://mira-demo.pagerduty.com/incidents/P1|[#1] x>")
        == []
    )
    assert problems_in("&lt;!channel&gt; &amp; *bold* a¦b›c") == []
    for planted in ("<!channel>", "<!here>", "<@U0EVIL666>", "<https://x|y>", "a & b", "a > b", "&amp;lt;"):
        assert problems_in(f"title {planted}"), planted
    assert problems_in("<https://mira-demo.pagerduty.com/i|a|b>")  # a label broken by |
    assert list(mrkdwn_strings({"text": {"type": "plain_text", "text": "<!here>"}, "value": "<!here>"})) == []
