"""Next steps' commands checked against the catalog when it loads, so a button never offers a preset, a plan or
a flag that does not exist. The registry that runs them is not known to the catalog, so the check covers what the
catalog itself can answer, and which commands a step may name."""

from __future__ import annotations

from collections.abc import Callable

from bot.catalog.service import Service

#: The commands a step may run. A step is a shortcut for typing: the command still parses, guards and confirms.
STEP_COMMANDS = ("/flag", "/rollback", "/restart", "/health", "/latency", "/oncall", "/diag")


def check_step_command(service: Service, command: str, find: Callable[[str], Service | None]) -> str | None:
    """What is wrong with a step's command, or None. `find` is the catalog's `find` (a name or alias → Service),
    so a step may name another service. `/restart` is checked loosely (the service exists): its plans are the
    restart capability's business."""
    words = command.split()
    name, args = words[0].lower(), words[1:]
    if name not in STEP_COMMANDS:
        return f"next step `{command}`: a step runs one of {', '.join(STEP_COMMANDS)}"

    target = find
    if name == "/flag":
        if len(args) == 3 and args[0] == "preset":
            other = target(args[1])
            if other is None:
                return f"next step `{command}` names unknown service {args[1]}"
            if args[2] not in {preset.name for preset in other.presets}:
                return f"next step `{command}` names unknown preset {args[2]} of {other.name}"
            return None
        if len(args) >= 2 and args[0] in ("set", "on", "off", "unset"):
            owner, _, flag_name = args[1].rpartition(":")
            other = target(owner) if owner else service
            if other is None or other.flag(flag_name) is None:
                return f"next step `{command}` names unknown flag {args[1]}"
            return None
        return f"next step `{command}`: a /flag step is `preset SERVICE NAME` or `set|on|off|unset FLAG …`"
    if name in ("/rollback", "/restart"):
        if not args or (other := target(args[0])) is None:
            return f"next step `{command}` names no known service"
        if name == "/rollback" and len(args) > 1 and args[1] not in {p.name for p in other.rollback_plans}:
            return f"next step `{command}` names unknown rollback plan {args[1]} of {other.name}"
        return None
    if name == "/diag" and args:
        other = target(args[0])
        if other is None:
            return f"next step `{command}` names unknown service {args[0]}"
        if len(args) > 1 and (other.diagnostics is None or other.diagnostics.query(args[1]) is None):
            return f"next step `{command}` names unknown diagnostic {args[1]} of {other.name}"
        return None
    if args and name in ("/health", "/latency") and target(args[0]) is None:
        return f"next step `{command}` names unknown service {args[0]}"
    return None
