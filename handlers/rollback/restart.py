"""/restart SERVICE [reason]: the runbooks' Level-1 restart (AI Assistant SOP-001, Ivy's "restart services", FA's
"restart tasks"), which the on-call may do alone.

The service's `restart_plan` in the catalog runs through the same engine as a rollback (preflight, the request
message, the worker, Retry / Skip / Mark done / Abort, the thread), with one difference: one Confirm by an owner
or the service's primary on-call — the requester may confirm their own (no two-person rule). The confirmed
restart is announced in the service's alerts channel and in the thread of its open incident
(handlers/rollback/announce.py). A restart and a rollback of one service are never open together (one open
run per service, held by Postgres).

Other capabilities rely on this command's text: a "next step" button may run `/restart ai-assistant` as the
clicking user through the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.catalog import Catalog, RollbackPlan, Service
from bot.commands import Check, Command, UsageError
from bot.context import CommandContext
from handlers.rollback import guards
from handlers.rollback.request import make_request

DESCRIPTION = (
    "Restart a service (its runbook's Level-1 restart), confirmed once by an owner or the primary on-call"
)
USAGE = f"`/restart SERVICE [reason]` — {DESCRIPTION}"


@dataclass(frozen=True)
class RequestRestart:
    service: Service
    plan: RollbackPlan
    reason: str | None


def _restartable(catalog: Catalog) -> list[str]:
    return [s.name for s in catalog.services if s.restart_plan is not None]


def parse(text: str, catalog: Catalog) -> RequestRestart:
    words = text.split()
    if not words:
        raise UsageError(
            f"Tell me which service to restart: {', '.join(_restartable(catalog))}.", usage=USAGE
        )
    service = catalog.find(words[0])
    if service is None and len(words) > 1 and (second := catalog.find(words[1])) is not None:
        raise UsageError(
            f"I don't know a service called `{words[0]}`; the service comes first.",
            suggestion=" ".join(["/restart", second.name, words[0], *words[2:]]),
            usage=USAGE,
        )
    if service is None:
        raise UsageError(
            f"I don't know a service called `{words[0]}`. Services: {', '.join(catalog.names())}.",
            suggestion=catalog.suggest(words[0]),
            usage=USAGE,
        )
    if service.restart_plan is None:
        others = ", ".join(_restartable(catalog)) or "none"
        raise UsageError(
            f"{service.display_name} has no restart plan in the catalog (`services[{service.name}].restart_plan`). "
            f"Services with one: {others}.",
            usage=USAGE,
        )
    return RequestRestart(service, service.restart_plan, " ".join(words[1:]) or None)


def acknowledge(request: RequestRestart, catalog: Catalog) -> str:
    return f"Preparing the restart of {request.service.display_name}…"


async def guard(request: RequestRestart, ctx: CommandContext) -> Check | None:
    """The service's owners or its primary on-call (PagerDuty); nobody when neither is configured."""
    return guards.owners_check(request.service, "restart", "request")


async def run(request: RequestRestart, ctx: CommandContext) -> None:
    await make_request(ctx, request.service, request.plan, request.reason, "restart")


COMMAND = Command(
    name="/restart",
    description=DESCRIPTION,
    usage_hint="SERVICE [reason]",
    examples=("/restart ai-assistant unresponsive after the config change", "/restart fa"),
    dangerous=True,
    parse=parse,
    acknowledge=acknowledge,
    run=run,
    guard=guard,
)
