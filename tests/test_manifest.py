"""manifest.yml against the code: the slash commands match the registry, the URLs hit the Bolt route, and the bot
scopes cover every Slack Web API method the source calls. Static: no network, no servers."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.web.async_base_client import AsyncBaseClient
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import CommandRegistry
from handlers.capabilities import build_registry

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "manifest.yml"
SLACK_ROUTE = "/slack/events"  # the one route bot/server.py hands to Bolt

# Slack's limits (https://api.slack.com/reference/manifests, slackapi/manifest-schema). The 100-character command
# description is this project's rule: the slash-command picker truncates longer ones.
COMMAND_DESCRIPTION_MAX = 100
USAGE_HINT_MAX = 1000
COMMAND_NAME_MAX = 32
APP_NAME_MAX = 35
APP_DESCRIPTION_MAX = 140
LONG_DESCRIPTION_RANGE = (175, 4000)
BOT_DISPLAY_NAME_MAX = 80

# Web API method (slack_sdk spelling) → the bot scopes it needs. An empty tuple: nothing beyond `commands`.
SCOPES_FOR_METHOD: dict[str, tuple[str, ...]] = {
    "chat_postMessage": ("chat:write",),
    "chat_update": ("chat:write",),
    "chat_postEphemeral": ("chat:write",),
    "chat_getPermalink": (),  # Slack: "no scope required"
    "conversations_join": ("channels:join",),
    "users_info": ("users:read",),
    "users_lookupByEmail": ("users:read.email",),
    "files_upload_v2": ("files:write",),
    "usergroups_users_list": ("usergroups:read",),
    "reactions_add": ("reactions:write",),
    "views_open": (),
    "views_update": (),
    "conversations_info": ("channels:read",),
    "conversations_list": ("channels:read", "groups:read"),
    "conversations_history": ("channels:history", "groups:history"),
    "conversations_replies": ("channels:history", "groups:history"),
}
WEB_API_CALL = re.compile(r"\.(" + "|".join(SCOPES_FOR_METHOD) + r")\(")

SCANNED_PACKAGES = ("bot", "handlers", "integrations")


def source_files() -> list[Path]:
    # The production packages only: the recording Slack server and the console (stand_ins/) fake Slack, and
    # their calls are not the bot's.
    files = [p for package in SCANNED_PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    assert files, f"no Python source found under {SCANNED_PACKAGES} in {ROOT}"
    return files


def _calls(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    """method → ["path:line", …] for every match of `pattern` in the scanned source."""
    found: dict[str, list[str]] = {}
    for path in source_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in pattern.finditer(line):
                found.setdefault(match.group(1), []).append(f"{path.relative_to(ROOT).as_posix()}:{lineno}")
    return found


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "manifest.yml is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def registry() -> CommandRegistry:
    return build_registry()


@pytest.fixture(scope="module")
def manifest_commands(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = manifest["features"]["slash_commands"]
    names = [entry["command"] for entry in entries]
    assert len(names) == len(set(names)), f"a slash command is listed twice in manifest.yml: {names}"
    return {entry["command"]: entry for entry in entries}


@pytest.fixture(scope="module")
def bot_scopes(manifest: dict[str, Any]) -> set[str]:
    return set(manifest["oauth_config"]["scopes"]["bot"])


# --- shape ----------------------------------------------------------------------------------------------------


def test_metadata(manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"] == {"major_version": 1, "minor_version": 1}


def test_top_level_keys_are_manifest_v1_keys(manifest: dict[str, Any]) -> None:
    known = {"_metadata", "display_information", "features", "oauth_config", "settings"}
    assert set(manifest) <= known, f"unknown top-level keys: {sorted(set(manifest) - known)}"


def test_display_information(manifest: dict[str, Any]) -> None:
    info = manifest["display_information"]
    assert info["name"] == "Mira Bot"
    assert len(info["name"]) <= APP_NAME_MAX
    assert 1 <= len(info["description"]) <= APP_DESCRIPTION_MAX, len(info["description"])
    if "long_description" in info:
        low, high = LONG_DESCRIPTION_RANGE
        assert low <= len(info["long_description"]) <= high, len(info["long_description"])
    assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", info["background_color"])


def test_bot_user(manifest: dict[str, Any]) -> None:
    bot_user = manifest["features"]["bot_user"]
    assert bot_user == {"display_name": "Mira Bot", "always_online": True}
    assert len(bot_user["display_name"]) <= BOT_DISPLAY_NAME_MAX


def test_settings(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False


# --- slash commands against the registry ----------------------------------------------------------------------


def test_exactly_the_eight_commands(manifest_commands: dict[str, dict[str, Any]]) -> None:
    assert sorted(manifest_commands) == sorted(
        ["/health", "/flag", "/latency", "/rollback", "/restart", "/oncall", "/diag", "/help"]
    )


def test_manifest_and_registry_list_the_same_commands(
    manifest_commands: dict[str, dict[str, Any]], registry: CommandRegistry
) -> None:
    missing = sorted(set(registry.commands) - set(manifest_commands))
    extra = sorted(set(manifest_commands) - set(registry.commands))
    assert not missing, f"registered but not in manifest.yml (Slack would never send them): {missing}"
    assert not extra, f"in manifest.yml but not registered (Slack would send them to nobody): {extra}"


def test_descriptions_and_usage_hints_come_from_the_registry(
    manifest_commands: dict[str, dict[str, Any]], registry: CommandRegistry
) -> None:
    for name, command in registry.commands.items():
        entry = manifest_commands.get(name)
        assert entry is not None, f"{name} is registered but missing from manifest.yml"
        assert entry["description"] == command.description, f"{name}: description differs from the registry"
        assert entry.get("usage_hint", "") == command.usage_hint, (
            f"{name}: usage_hint differs from the registry"
        )
        assert entry["should_escape"] is False, name


def test_slack_length_limits(manifest_commands: dict[str, dict[str, Any]], registry: CommandRegistry) -> None:
    for name, entry in manifest_commands.items():
        assert re.fullmatch(r"/[a-z0-9_-]+", name) and len(name) <= COMMAND_NAME_MAX, name
        assert 1 <= len(entry["description"]) <= COMMAND_DESCRIPTION_MAX, (name, len(entry["description"]))
        assert len(entry.get("usage_hint", "")) <= USAGE_HINT_MAX, name
    for name, command in registry.commands.items():
        assert len(command.description) <= COMMAND_DESCRIPTION_MAX, (name, len(command.description))


def test_every_url_is_the_bolt_route(
    manifest: dict[str, Any], manifest_commands: dict[str, dict[str, Any]]
) -> None:
    urls = {f"slash command {name}": entry["url"] for name, entry in manifest_commands.items()}
    urls["interactivity"] = manifest["settings"]["interactivity"]["request_url"]
    for where, url in urls.items():
        assert url.startswith("https://"), f"{where}: {url} is not https"
        assert url.endswith(SLACK_ROUTE), f"{where}: {url} does not end with {SLACK_ROUTE}"
    route_source = (ROOT / "bot" / "server.py").read_text(encoding="utf-8")
    assert f'Route("{SLACK_ROUTE}"' in route_source, f"bot/server.py no longer serves {SLACK_ROUTE}"


# --- scopes against the Web API calls in the source -----------------------------------------------------------


def test_commands_scope(bot_scopes: set[str]) -> None:
    assert "commands" in bot_scopes


def test_scopes_cover_every_web_api_call(bot_scopes: set[str]) -> None:
    problems = [
        f"{method} (at {', '.join(where)}) needs scope {scope}, which manifest.yml does not request"
        for method, where in sorted(_calls(WEB_API_CALL).items())
        for scope in SCOPES_FOR_METHOD[method]
        if scope not in bot_scopes
    ]
    assert not problems, "\n".join(problems)


def test_the_scan_sees_the_known_calls() -> None:
    """Guards the scan itself: an empty result (moved files, a broken regex) must not pass as "no scopes needed"."""
    found = _calls(WEB_API_CALL)
    for method in ("chat_postMessage", "chat_update", "chat_postEphemeral", "conversations_join"):
        assert any(loc.startswith("bot/replies.py:") for loc in found.get(method, [])), method
    assert not any(loc.startswith("stand_ins/") for locs in found.values() for loc in locs)


def test_every_web_api_method_called_has_a_scope_entry() -> None:
    """A Web API method outside the table above would escape the scope check: make whoever adds one map it."""
    client_methods = {
        name
        for name, _ in inspect.getmembers(AsyncWebClient, inspect.isfunction)
        if not name.startswith("_") and not hasattr(AsyncBaseClient, name)
    }
    assert "chat_postMessage" in client_methods
    any_call = re.compile(r"\.(" + "|".join(sorted(client_methods, key=len, reverse=True)) + r")\(")
    unmapped = {m: where for m, where in _calls(any_call).items() if m not in SCOPES_FOR_METHOD}
    assert not unmapped, (
        "Slack Web API methods called without an entry in SCOPES_FOR_METHOD (add the scope they need, "
        f"and request it in manifest.yml): {unmapped}"
    )
