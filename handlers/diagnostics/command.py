"""/diag: list the runbooks' named queries, or run one read-only and answer with its table in the channel.

parse → (no authorization: nothing in /diag can write, so it is open to everyone) → act → render.

* `/diag` lists every service's queries (name, what it answers, the runbook section it comes from), and
  `/diag SERVICE` one service's: catalog data held in memory, so the list is the ack's answer.
* `/diag SERVICE NAME [window] [limit] [key=value…]` runs one: a word like `2h` is the window, a number the
  limit, `key=value` a filter the query declares (`window=` and `limit=` work too). Everything is checked before
  the ack (bind_args), so a bad argument gets its usage line and "did you mean" at once, never a half-run.

The answer goes in the channel (a diagnostic is evidence the room should see); a large result also leaves its
CSV in the answer's thread. Failures of the query itself (timeout, missing table, unreachable database) are the
answer's own error line (handlers/diagnostics/runner.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot import mrkdwn
from bot.catalog import Catalog, DiagnosticQuery, Service, missing_env, section_url
from bot.commands import Command, UsageError, did_you_mean
from bot.context import CommandContext
from handlers.diagnostics.blocks import diagnostic_blocks
from handlers.diagnostics.post import needs_csv, upload_csv
from handlers.diagnostics.runner import ArgumentError, bind_args, run_diagnostic

log = logging.getLogger(__name__)

USAGE = "`/diag [SERVICE [NAME [window] [limit] [key=value…]]]`"


@dataclass(frozen=True)
class DiagListing:
    """`/diag` or `/diag SERVICE`: the queries to list (every service's when `service` is None)."""

    service: Service | None


@dataclass(frozen=True)
class DiagRun:
    """`/diag SERVICE NAME …`: the query and the user's raw arguments by parameter name."""

    service: Service
    query: DiagnosticQuery
    args: dict[str, str]
    missing: tuple[str, ...] = ()


# --- parse ----------------------------------------------------------------------------------------------------


def _with_diagnostics(catalog: Catalog) -> list[Service]:
    return [s for s in catalog.services if s.diagnostics is not None and s.diagnostics.queries]


def _service(word: str, catalog: Catalog) -> Service:
    service = catalog.find(word)
    names = ", ".join(s.name for s in _with_diagnostics(catalog)) or "none"
    if service is None:
        raise UsageError(
            f"I don't know a service called `{word}`. Services with diagnostics: {names}.",
            suggestion=catalog.suggest(word),
        )
    if service.diagnostics is None or not service.diagnostics.queries:
        raise UsageError(
            f"{service.display_name} has no diagnostics in the catalog. Services with them: {names}."
        )
    return service


def _query(word: str, service: Service) -> DiagnosticQuery:
    assert service.diagnostics is not None
    query = service.diagnostics.query(word)
    if query is None:
        names = service.diagnostics.names()
        suggestion = did_you_mean(word, names)
        raise UsageError(
            f"{service.display_name} has no query `{word}`. Its queries: {', '.join(names)}.",
            suggestion=f"/diag {service.name} {suggestion}" if suggestion else None,
        )
    return query


def _arguments(words: list[str], query: DiagnosticQuery) -> dict[str, str]:
    """Raw arguments by parameter name: `2h` → the window, `50` → the limit, `key=value` → that parameter."""
    args: dict[str, str] = {}

    def put(name: str | None, value: str, what: str) -> None:
        if name is None:
            raise UsageError(f"`{query.name}` takes no {what}, got `{value}`.")
        if name in args:
            raise UsageError(f"Give `{name}` once, got `{args[name]}` and `{value}`.")
        args[name] = value

    for word in words:
        key, equals, value = word.partition("=")
        if equals:
            if not key or not value:
                raise UsageError(f"A filter is written `key=value`, got `{word}`.")
            put(key.lower(), value, "filter")
        elif word.isdigit():
            put(query.limit_param, word, "limit")
        elif word[0].isdigit():
            put(query.window_param, word.lower(), "window")
        else:
            filters = list(query.filters)
            hint = f" Its filters: {', '.join(f'`{f}=…`' for f in filters)}." if filters else ""
            raise UsageError(f"I don't understand `{word}`: a window is like 2h, a limit a number.{hint}")
    return args


def parse(text: str, catalog: Catalog) -> DiagListing | DiagRun:
    """Pure: no I/O, so it runs before the ack."""
    words = text.split()
    if not words:
        return DiagListing(None)
    service = _service(words[0], catalog)
    if len(words) == 1:
        return DiagListing(service)
    query = _query(words[1], service)
    usage = "`" + " ".join(filter(None, ["/diag", service.name, query.name, usage_hint(query)])) + "`"
    try:
        args = _arguments(words[2:], query)
    except UsageError as error:  # the usage line of this query, not the command's
        raise UsageError(error.message, suggestion=error.suggestion, usage=usage) from None
    try:
        bind_args(query, args)
    except ArgumentError as error:
        raise UsageError(
            error.message, suggestion=f"{error.suggestion}=…" if error.suggestion else None, usage=usage
        ) from None
    return DiagRun(service, query, args, tuple(missing_env(service.diagnostics_dsn or "")))


def usage_hint(query: DiagnosticQuery) -> str:
    """`[window ≤ 7d] [limit ≤ 200] [module=…]` for a query's own usage line."""
    parts: list[str] = []
    for name, param in query.params.items():
        if param.type == "interval":
            parts.append(f"[{name} ≤ {param.max or '30d'}, default {param.default}]")
        elif param.type == "limit":
            parts.append(f"[limit ≤ {param.bound_max}, default {param.default}]")
        else:
            parts.append(f"[{name}=…]" if param.optional or param.default is not None else f"{name}=…")
    return " ".join(parts)


# --- the list -------------------------------------------------------------------------------------------------


#: The ack is capped (bot/app.py ANSWER_LIMIT); a list past this drops its runbook links rather than be cut.
LISTING_CHARS = 3_400


def _listing_line(service: Service, query: DiagnosticQuery, *, linked: bool) -> str:
    url = section_url(service.runbooks, query.runbook) if linked else None
    section = mrkdwn.link(url, query.runbook.section, trusted_label=True) if url else query.runbook.section
    return f"• `{query.name}` — {query.title} (runbook: {section})"


def listing_text(request: DiagListing, catalog: Catalog) -> str:
    """One service's queries with their runbook sections linked; every service's, unlinked when too long."""
    linked = _listing(request, catalog, linked=True)
    return linked if len(linked) <= LISTING_CHARS else _listing(request, catalog, linked=False)


def _listing(request: DiagListing, catalog: Catalog, *, linked: bool) -> str:
    services = [request.service] if request.service else _with_diagnostics(catalog)
    if not services:
        return "No service in the catalog has diagnostics yet (README → Diagnostics and scheduled checks)."
    lines: list[str] = []
    for service in services:
        assert service.diagnostics is not None
        lines.append(f"*{service.display_name}* (`{service.name}`)")
        lines += [_listing_line(service, query, linked=linked) for query in service.diagnostics.queries]
        if missing := missing_env(service.diagnostics_dsn or ""):
            lines.append(f"    _not configured: set {', '.join(missing)}_")
    example = services[0]
    assert example.diagnostics is not None
    lines.append(f"Run one: `/diag {example.name} {example.diagnostics.queries[0].name}` · usage: {USAGE}")
    return "\n".join(lines)


def acknowledge(request: DiagListing | DiagRun, catalog: Catalog) -> str:
    if isinstance(request, DiagListing):
        return listing_text(request, catalog)
    if request.missing:
        return (
            f"`{request.query.name}` on {request.service.display_name} is not configured: "
            f"set {', '.join(request.missing)} (the service's database)."
        )
    return f"Running `{request.query.name}` on {request.service.display_name} (read-only)…"


# --- act and render -------------------------------------------------------------------------------------------


async def run(request: DiagListing | DiagRun, ctx: CommandContext) -> None:
    if isinstance(request, DiagListing) or request.missing:
        return  # the ack was the answer
    result = await run_diagnostic(ctx.bot, request.service, request.query, request.args)
    text, blocks = diagnostic_blocks(result, requested_by=ctx.invocation.user_id)
    message = await ctx.reply.post(text, blocks)
    if message is None or not needs_csv(result):
        return
    try:
        await upload_csv(ctx.bot, message.channel, message.ts, result)
    except Exception:
        log.warning("could not upload the /diag CSV", exc_info=True)
        await ctx.reply.post(
            f"I could not upload the CSV of all {len(result.rows)} rows; the first rows are above. "
            "Run it again with a smaller limit or a shorter window.",
            channel=message.channel,
            thread_ts=message.ts,
        )


COMMAND = Command(
    name="/diag",
    description="Run a runbook's read-only diagnostic query (or list them)",
    usage_hint="[SERVICE [NAME [window] [limit] [key=value…]]]",
    examples=(
        "/diag",
        "/diag mira-copilot",
        "/diag mira-copilot low-confidence 2h 50",
        "/diag fa last-batch",
    ),
    parse=parse,
    acknowledge=acknowledge,
    run=run,
)
