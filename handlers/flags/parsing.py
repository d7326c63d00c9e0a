"""Parsing `/flag`: the command text as a typed request, or a usage error that says what is allowed.

Split from :mod:`handlers.flags.command` (authorize → act → render, and the buttons) so that the first of the four
steps reads on its own: every value is checked against the catalog here, before the ack, so a bad value is
answered with the allowed values and nothing is sent anywhere. Presets and rollout stages are the runbooks'
(Mira §5 Feature Flag Management and Rollback step 4; Ivy release runbook Feature Flag Controls).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.catalog import Catalog, Flag, Service, missing_env
from bot.commands import UsageError, did_you_mean
from handlers.flags.changes import to_wire

SUBCOMMANDS = ("list", "get", "set", "on", "off", "unset", "preset", "revert", "rollout", "history")
HISTORY_DEFAULT = 10
HISTORY_MAX = 20  # one section per change, each clipped: well inside Slack's 50 blocks
TRUE_WORDS = {"true", "on", "yes", "1", "enable", "enabled"}
FALSE_WORDS = {"false", "off", "no", "0", "disable", "disabled"}


# --- parse ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFlags:
    service: Service | None


@dataclass(frozen=True)
class GetFlag:
    service: Service
    flag: Flag


@dataclass(frozen=True)
class ChangeFlags:
    """A change request: `targets` maps flag names to new wire values (None: unset, back to the default)."""

    service: Service
    kind: str  # set | unset | preset | rollout
    label: str | None
    targets: dict[str, str | None]


@dataclass(frozen=True)
class RevertChange:
    change_id: int


@dataclass(frozen=True)
class ListPresets:
    """`/flag preset [SERVICE]`: what each preset sets, to read before applying one."""

    service: Service | None


@dataclass(frozen=True)
class FlagHistory:
    """`/flag history [service|FLAG] [N]`: the last N changes, of one service or one flag, newest first."""

    service: Service | None
    flag: Flag | None
    limit: int


FlagRequest = ListFlags | GetFlag | ChangeFlags | RevertChange | ListPresets | FlagHistory


def find_flag(reference: str, catalog: Catalog) -> tuple[Service, Flag]:
    """`AI_BURST_LIMIT` or `ivy-v2:AI_BURST_LIMIT`, case-insensitively; ambiguous names need the service."""
    service_name, _, name = reference.rpartition(":")
    services = catalog.services
    if service_name:
        service = catalog.find(service_name)
        if service is None:
            raise UsageError(
                f"I don't know a service called `{service_name}`.", suggestion=catalog.suggest(service_name)
            )
        services = [service]
    matches = [(s, f) for s in services if (f := s.flag(name)) is not None]
    if len(matches) == 1:
        return matches[0]
    if matches:
        choices = " or ".join(f"`{s.name}:{f.name}`" for s, f in matches)
        raise UsageError(f"`{name}` is a flag of several services: write {choices}.")
    known = [f.name for s in services for f in s.flags]
    suggestion = did_you_mean(name, known)
    raise UsageError(f"I don't know a flag called `{name}`.", suggestion=suggestion)


def _checked(flag: Flag, raw: str) -> str | None:
    """The wire value for `raw` when `flag` takes it, else None."""
    try:
        return parse_value(flag, raw)
    except UsageError:
        return None


def _value_suggestion(service: Service | None, flag: Flag, raw: str) -> tuple[str, str | None]:
    """For a value `flag` refuses: the flag of `see_also` that takes it (a runbook's name for that switch), else
    the nearest allowed value of an enum; as an explanation and a whole command to run."""
    prefix = f"{service.name}:" if service else ""
    for other_name in flag.see_also:
        other = service.flag(other_name) if service else None
        wire = _checked(other, raw) if other else None
        if other is not None and wire is not None:
            return (
                f" `{raw}` is a value of `{other.name}`, not of `{flag.name}`.",
                f"/flag set {prefix}{other.name} {wire}",
            )
    if flag.type == "enum" and flag.allowed:
        near = [c for c in flag.allowed if c.lower().startswith(raw.lower())] if raw else []
        choice = near[0] if len(near) == 1 else did_you_mean(raw, flag.allowed)
        if choice:
            return "", f"/flag set {prefix}{flag.name} {choice}"
    return "", None


def parse_value(flag: Flag, text: str, service: Service | None = None) -> str:
    """The wire value for `text`, checked against the flag's type; a UsageError lists what is allowed and, when
    `service` is given, suggests the command that was probably meant."""
    raw = text.strip()
    value: Any
    if flag.type == "bool":
        if raw.lower() in TRUE_WORDS:
            return "true"
        if raw.lower() in FALSE_WORDS:
            return "false"
        value = raw
    elif flag.type == "int":
        value = int(raw) if re.fullmatch(r"-?\d+", raw) else raw
    elif flag.type == "enum":
        assert flag.allowed is not None
        value = next((choice for choice in flag.allowed if choice.lower() == raw.lower()), raw)
    else:
        value = raw
    error = flag.check_value(value)
    if error or not raw:
        hint, suggestion = _value_suggestion(service, flag, raw) if service else ("", None)
        raise UsageError(
            f"`{raw}` is not a valid value for `{flag.name}`: {error or 'expected a value'}.{hint}",
            suggestion=suggestion,
            subcommand="set",
        )
    wire = to_wire(value)
    assert wire is not None
    return wire


def _service_arg(words: list[str], catalog: Catalog) -> Service:
    service = catalog.find(words[0])
    if service is None:
        raise UsageError(f"I don't know a service called `{words[0]}`.", suggestion=catalog.suggest(words[0]))
    return service


def parse(text: str, catalog: Catalog) -> FlagRequest:
    """The request, or a UsageError; the one usage line it shows is the named subcommand's or, unnamed, that of
    the subcommand the text starts with (bot.commands.Command.usage_line)."""
    return _parse(text.split(), catalog)


def _reordered(words: list[str], catalog: Catalog) -> str | None:
    """`/flag IVY_MODAL_HEURISTICS off` → `/flag off IVY_MODAL_HEURISTICS`; `/flag AI_BURST_LIMIT 5` → `/flag set
    AI_BURST_LIMIT 5`: a flag named first, as the runbooks' `export FLAG=value` lines put it."""
    reference, _, inline = words[0].partition("=")
    rest = ([inline] if inline else []) + words[1:]
    try:
        find_flag(reference, catalog)
    except UsageError:
        return None
    if len(rest) == 1 and rest[0].lower() in ("get", "on", "off", "unset"):
        return f"/flag {rest[0].lower()} {reference}"
    if rest and rest[0].lower() not in SUBCOMMANDS:
        return f"/flag set {reference} {' '.join(rest)}"
    return f"/flag get {reference}" if not rest else None


def _parse(words: list[str], catalog: Catalog) -> FlagRequest:
    if not words:
        raise UsageError("Tell me what to do with flags.")
    sub, args = words[0].lower(), words[1:]
    if sub not in SUBCOMMANDS:
        reordered = _reordered(words, catalog)
        if reordered:
            raise UsageError(
                "The subcommand comes first, then the flag.",
                suggestion=reordered,
                subcommand=reordered.split()[1],
            )
        raise UsageError(
            f"`{words[0]}` is not a /flag subcommand.", suggestion=did_you_mean(sub, list(SUBCOMMANDS))
        )
    if sub == "list":
        if len(args) > 1:
            raise UsageError("`/flag list` takes at most a service.")
        return ListFlags(_service_arg(args, catalog) if args else None)
    if sub == "revert":
        if len(args) != 1 or not args[0].isdigit():
            raise UsageError("`/flag revert` takes the number of a change, e.g. `/flag revert 42`.")
        return RevertChange(int(args[0]))
    if sub == "history":
        return _parse_history(args, catalog)
    if sub == "preset":
        return _parse_preset(args, catalog)
    if sub == "rollout":
        return _parse_rollout(args, catalog)
    if not args:
        raise UsageError(f"`/flag {sub}` needs a flag name.")
    service, flag = find_flag(args[0], catalog)
    if sub == "get":
        if len(args) > 1:
            raise UsageError("`/flag get` takes one flag.")
        return GetFlag(service, flag)
    if sub == "unset":
        if len(args) > 1:
            raise UsageError("`/flag unset` takes one flag (it goes back to its default).")
        return ChangeFlags(service, "unset", None, {flag.name: None})
    if sub in ("on", "off"):
        if flag.type != "bool" or len(args) > 1:
            raise UsageError(
                f"`/flag {sub}` is for true/false flags; use `/flag set {flag.name} VALUE`.",
                suggestion=f"/flag set {service.name}:{flag.name} {' '.join(args[1:]) or 'VALUE'}"
                if flag.type != "bool"
                else None,
            )
        return ChangeFlags(service, "set", None, {flag.name: "true" if sub == "on" else "false"})
    if len(args) < 2:
        raise UsageError(f"`/flag set {flag.name}` needs a value.")
    return ChangeFlags(service, "set", None, {flag.name: parse_value(flag, " ".join(args[1:]), service)})


def _parse_history(args: list[str], catalog: Catalog) -> FlagHistory:
    limit = HISTORY_DEFAULT
    if args and args[-1].isdigit():
        limit = max(1, min(int(args[-1]), HISTORY_MAX))
        args = args[:-1]
    if len(args) > 1:
        raise UsageError("`/flag history` takes a service or a flag, and how many changes.")
    if not args:
        return FlagHistory(None, None, limit)
    service = catalog.find(args[0])
    if service is not None and ":" not in args[0]:
        return FlagHistory(service, None, limit)
    flag_service, flag = find_flag(args[0], catalog)
    return FlagHistory(flag_service, flag, limit)


def _parse_preset(args: list[str], catalog: Catalog) -> ChangeFlags | ListPresets:
    if not args:
        return ListPresets(None)
    service = catalog.find(args[0])
    swapped = catalog.find(args[1]) if service is None and len(args) == 2 else None
    if swapped is not None and any(p.name == args[0].lower() for p in swapped.presets):
        raise UsageError(
            "The service comes first, then the preset.",
            suggestion=f"/flag preset {swapped.name} {args[0].lower()}",
            subcommand="preset",
        )
    if len(args) > 2:
        raise UsageError(
            "`/flag preset` takes a service and a preset name, e.g. `/flag preset ivy-v2 emergency`."
        )
    service = _service_arg(args, catalog)
    if len(args) == 1:
        return ListPresets(service)
    names = [p.name for p in service.presets]
    preset = next((p for p in service.presets if p.name == args[1].lower()), None)
    if preset is None:
        available = ", ".join(f"`{n}`" for n in names) or "none"
        raise UsageError(
            f"{service.display_name} has no preset `{args[1]}` (presets: {available}).",
            suggestion=did_you_mean(args[1], names),
        )
    return ChangeFlags(
        service, "preset", preset.name, {name: to_wire(v) for name, v in preset.values.items()}
    )


def _parse_rollout(args: list[str], catalog: Catalog) -> ChangeFlags:
    if len(args) != 2:
        raise UsageError(
            "`/flag rollout` takes a flag and a stage, e.g. `/flag rollout MIRA_COPILOT_ENABLED 10%`."
        )
    service, flag = find_flag(args[0], catalog)
    if service.rollout is None or service.rollout.flag != flag.name:
        raise UsageError(f"`{flag.name}` has no gradual rollout in the catalog.")
    stages = list(service.rollout.stages)
    stage = args[1].lower()
    if stage not in service.rollout.stages:
        raise UsageError(
            f"`{args[1]}` is not a rollout stage of `{flag.name}` (stages: {', '.join(stages)}).",
            suggestion=did_you_mean(stage, stages),
        )
    values = service.rollout.stages[stage]
    missing = missing_env(values)
    if missing:
        raise UsageError(f"The `{stage}` stage is not configured: set {', '.join(missing)}.")
    return ChangeFlags(service, "rollout", stage, {name: to_wire(v) for name, v in values.items()})


def acknowledge(request: FlagRequest, catalog: Catalog) -> str:
    if isinstance(request, ListFlags):
        return f"Reading the flags of {request.service.display_name if request.service else 'every service'}…"
    if isinstance(request, GetFlag):
        return f"Reading `{request.flag.name}` of {request.service.display_name}…"
    if isinstance(request, RevertChange):
        return f"Reverting change {request.change_id}…"
    if isinstance(request, ListPresets):
        return (
            f"Listing the presets of {request.service.display_name if request.service else 'every service'}…"
        )
    if isinstance(request, FlagHistory):
        subject = (
            request.flag.name if request.flag else (request.service.display_name if request.service else "")
        )
        return f"Reading the flag history{' of ' + subject if subject else ''}…"
    what = {"preset": f"preset `{request.label}`", "rollout": f"rollout stage `{request.label}`"}.get(
        request.kind, ", ".join(f"`{name}`" for name in request.targets)
    )
    return f"Checking {what} on {request.service.display_name}…"
