"""The Bolt AsyncApp: verify (Bolt's signature middleware), ack from the registry, then run the handler.

Every slash command goes through one listener: `on_command` parses the text once, in memory, and acks within
Slack's 3-second deadline (usage errors and "not available yet" are answered right there, ephemerally), then hands
the slow work to `BackgroundWork.start`, which runs it after the ack as a task of its own, so a failure is logged
with its traceback and told to the user. Buttons and modal submissions work the same way.

Why not Bolt's lazy listeners: Bolt deep-copies the whole request for each of them and parses it again, a fifth
of the ack path's CPU in the ack benchmark (docs/PERFORMANCE.md), for a mechanism built for FaaS; this is a
long-running server, where starting a task after the ack is all that is needed.

A next-step button (handlers/next_steps) runs a command line as if the clicking user typed it: its action is given
`ActionContext.run_command`, which takes the line through `prepare_command` and `start_command` like `on_command`
does, so a command clicked and a command typed cannot behave differently (guards included).

A dangerous command or button runs behind its guard (`guarded`): after the ack, before `run`, its check (the
service's owners, audited and answered on refusal: bot/permissions.py::enforce) decides; refused, `run` never
starts. The registry refuses a dangerous command without a guard, so none reaches `run` unchecked.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import mrkdwn, permissions
from bot.commands import Check, Command, CommandRegistry, UsageError
from bot.context import ActionContext, BotContext, CommandContext, Invocation, ViewContext
from bot.redaction import Redactor
from bot.replies import Reply

log = logging.getLogger(__name__)

HELP_WORDS = {"help", "-h", "--help", "?"}
#: What a user typed is quoted back in `code` at most this long, and an answer is at most ANSWER_LIMIT characters:
#: whatever is pasted into a command, the answer stays readable and far inside Slack's message limits.
QUOTE_LIMIT = 60
ANSWER_LIMIT = 3_500
_LONG_QUOTE = re.compile(rf"`([^`\n]{{{QUOTE_LIMIT + 1},}})`")


class _ExpectedClientWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself and warns that the `client` we pass wins over it.
    That is the point (our client carries SLACK_API_URL and the retry handlers), so the warning is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("slack_bolt.AsyncApp").addFilter(_ExpectedClientWarning())


def usage_reply(command: Command, error: UsageError, text: str = "") -> str:
    """A usage error quotes what the user typed (decoded on parse), so the whole message is escaped here, once:
    the handlers' own wording in it is plain text too. Short: the one usage line that applies, not the block."""
    lines = [f":grey_question: {mrkdwn.escape(_clip_quotes(error.message))}"]
    if error.suggestion:
        lines.append(f"Did you mean `{mrkdwn.escape(error.suggestion)}`?")
    lines.append("Usage: " + (error.usage or command.usage_line(error.subcommand, text)))
    return "\n".join(lines)


def unknown_command_reply(name: str, registry: CommandRegistry) -> str:
    suggestion = registry.suggest(name)
    lines = [f":grey_question: I don't know the command {mrkdwn.escape(_quote(name))}."]
    suggested = registry.get(suggestion) if suggestion else None
    if suggested is not None:
        lines.append(f"Did you mean `{suggested.name}`? {suggested.head}")
    lines.append("`/help` lists every command.")
    return "\n".join(lines)


def not_available_reply(command: Command) -> str:
    return f":construction: `{command.name}` is not available yet. When it is: {command.usage}"


def _quote(word: str) -> str:
    return f"`{word[:QUOTE_LIMIT]}…`" if len(word) > QUOTE_LIMIT else f"`{word}`"


def _clip_quotes(message: str) -> str:
    """A usage message with the user's words it quotes (in `code`) clipped; the message is one sentence, so its
    backticks pair up."""
    return _LONG_QUOTE.sub(lambda m: _quote(m.group(1)), message)


def bounded(answer: str) -> str:
    """`answer` capped in length, whatever was pasted into the command."""
    return answer if len(answer) <= ANSWER_LIMIT else answer[: ANSWER_LIMIT - 1] + "…"


def acknowledge_command(registry: CommandRegistry, bot: BotContext, name: str, text: str) -> str:
    """The immediate, ephemeral answer to a slash command. Pure: no I/O, so it always fits in the deadline."""
    return prepare_command(registry, bot, name, text)[0]


def prepare_command(
    registry: CommandRegistry, bot: BotContext, name: str, text: str
) -> tuple[str, tuple[Command, Any] | None]:
    """The ack's answer (bounded), and the command with its parsed request when that answer promised post-ack
    work: the text is parsed once, before the ack."""
    answer, runnable = _acknowledge(registry, bot, name, text)
    return bounded(answer), runnable


def _acknowledge(
    registry: CommandRegistry, bot: BotContext, name: str, text: str
) -> tuple[str, tuple[Command, Any] | None]:
    command = registry.get(name)
    if command is None:
        return unknown_command_reply(name, registry), None
    if not command.available:
        return not_available_reply(command), None
    if text.strip().lower() in HELP_WORDS:
        return command.usage, None
    assert command.parse is not None and command.acknowledge is not None
    try:
        parsed = command.parse(text, bot.catalog)
    except UsageError as error:
        return usage_reply(command, error, text), None
    return command.acknowledge(parsed, bot.catalog), (command, parsed)


def _metadata_channel(metadata: str) -> str:
    """Modals opened from a message carry its channel in private_metadata (JSON) so the answer goes there."""
    try:
        value = json.loads(metadata).get("channel", "") if metadata else ""
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


async def guarded(
    bot: BotContext,
    user_id: str,
    reply: Reply,
    check: Callable[[], Awaitable[Check | None]] | None,
    run: Callable[[], Awaitable[None]],
) -> None:
    """`run()`, after the guard's check allows it (no guard: not dangerous; None: the request changes nothing).
    Both are factories, called here, so a refused request never even creates the handler's coroutine and work
    cancelled before it starts leaves no coroutine unawaited."""
    if check is not None:
        resolved = await check()
        if resolved is not None and not await permissions.enforce(bot, user_id, resolved, reply):
            return
    await run()


def build_bolt_app(bot: BotContext, registry: CommandRegistry) -> AsyncApp:
    settings = bot.settings
    assert settings.slack_signing_secret is not None
    redact = Redactor.for_settings(settings, bot.catalog)

    def redacting(respond: AsyncRespond) -> AsyncRespond:
        """Bolt's respond (response_url) with secrets blanked, as the Web API client does for its calls."""

        async def send(**kwargs: Any) -> Any:
            return await respond(**{key: redact(value) for key, value in kwargs.items()})

        return send  # type: ignore[return-value]

    app = AsyncApp(
        client=bot.slack,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        # Verified once, on the raw bytes, by bot/server.py before Bolt sees the request (the only way in over
        # HTTP; Socket Mode requests carry no signature): a second HMAC per request is only cost.
        request_verification_enabled=False,
    )

    async def on_command(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        runnable: tuple[Command, Any] | None = None
        # Slack sends the text entity-encoded (`&lt;` for `<`): decoded once here, so parsing sees what the user
        # typed and every reply quoting it escapes it once (usage_reply, the handlers' blocks).
        text = mrkdwn.unescape(str(body.get("text") or ""))
        try:
            answer, runnable = prepare_command(registry, bot, body.get("command", ""), text)
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("acknowledging a command failed", extra={"error_id": error_id})
            answer = f":warning: Something went wrong reading that command; the bot logged it as error `{error_id}`."
        await ack(text=redact(answer), response_type="ephemeral")
        if runnable is None:
            return
        command, parsed = runnable
        invocation = Invocation(
            command=command.name,
            text=text,
            user_id=body["user_id"],
            channel_id=body["channel_id"],
            team_id=body.get("team_id"),
            trigger_id=body.get("trigger_id"),
        )
        reply = Reply(
            bot.slack,
            channel_id=invocation.channel_id,
            user_id=invocation.user_id,
            respond=redacting(respond),
        )
        start_command(command, parsed, invocation, reply)

    def start_command(command: Command, parsed: Any, invocation: Invocation, reply: Reply) -> None:
        """A parsed command's post-ack work, behind its guard: typed, or run from a next-step button."""
        assert command.run is not None
        run, guard, ctx = command.run, command.guard, CommandContext(bot, invocation, reply)
        check = (lambda: guard(parsed, ctx)) if guard is not None else None
        bot.background.start(
            command.name,
            guarded(bot, invocation.user_id, reply, check, lambda: run(parsed, ctx)),
            reply.ephemeral,
        )

    def command_runner(
        body: dict[str, Any], respond: AsyncRespond, channel_id: str, user_id: str
    ) -> Callable[[str], Awaitable[None]]:
        """`run_command` for a click: the line goes through the same path as a typed command (prepare_command's
        parse and ack answer, then start_command's guard and work), answering where the button is — its
        thread, when it is in one. The ack's answer is ephemeral, as a typed command's is. Nothing a command
        answers may replace the message the button is on (a /health report, an incident root)."""
        message = body.get("message") or {}
        thread_ts = message.get("thread_ts") or (body.get("container") or {}).get("thread_ts")

        async def never_replacing(**kwargs: Any) -> Any:
            return await respond(**{**kwargs, "replace_original": False})

        async def run_command(line: str) -> None:
            name, _, text = line.strip().partition(" ")
            text = text.strip()
            answer, runnable = prepare_command(registry, bot, name, text)
            reply = Reply(
                bot.slack,
                channel_id=channel_id,
                user_id=user_id,
                respond=redacting(never_replacing),  # type: ignore[arg-type]
                thread_ts=thread_ts,
            )
            await reply.ephemeral(bounded(f"{mrkdwn.escape(_quote(line.strip()))} — {answer}"))
            if runnable is None:
                return
            command, parsed = runnable
            invocation = Invocation(
                command=command.name,
                text=text,
                user_id=user_id,
                channel_id=channel_id,
                team_id=(body.get("team") or {}).get("id"),
                trigger_id=body.get("trigger_id"),
            )
            start_command(command, parsed, invocation, reply)

        return run_command

    async def on_action(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        action_id = action.get("action_id", "")
        container = body.get("container") or {}
        channel_id = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
        user_id = (body.get("user") or {}).get("id", "")
        reply = Reply(bot.slack, channel_id=channel_id, user_id=user_id, respond=redacting(respond))
        spec = registry.action_for(action_id)
        if spec is None:
            log.warning("unknown action", extra={"action_id": action_id})
            bot.background.start(
                "unknown button",
                reply.ephemeral("That button is no longer supported; run the command again."),
                None,
            )
            return
        ctx = ActionContext(
            bot=bot,
            user_id=user_id,
            channel_id=channel_id,
            message_ts=container.get("message_ts") or (body.get("message") or {}).get("ts"),
            action_id=action_id,
            value=action.get("value"),
            reply=reply,
            payload=body,
            run_command=command_runner(body, respond, channel_id, user_id),
        )
        action_guard = spec.guard
        check = (lambda: action_guard(ctx)) if action_guard is not None else None
        bot.background.start(
            action_id, guarded(bot, user_id, reply, check, lambda: spec.run(ctx)), reply.ephemeral
        )

    async def on_view(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()  # closes the modal; the work and its outcome follow ephemerally
        view = body.get("view") or {}
        callback_id = view.get("callback_id", "")
        user_id = (body.get("user") or {}).get("id", "")
        values: dict[str, str | None] = {}
        for block in ((view.get("state") or {}).get("values") or {}).values():
            for action_id, element in block.items():
                values[action_id] = element.get("value")
        metadata = view.get("private_metadata") or ""
        channel_id = _metadata_channel(metadata)
        reply = Reply(bot.slack, channel_id=channel_id, user_id=user_id)
        spec = registry.modals.get(callback_id)
        if spec is None:
            log.warning("unknown modal", extra={"callback_id": callback_id})
            return
        ctx = ViewContext(bot, user_id, callback_id, values, metadata, reply)
        bot.background.start(callback_id, spec.run(ctx), reply.ephemeral if channel_id else None)

    app.command(re.compile(r"^/"))(on_command)
    app.action(re.compile(r".*"))(on_action)
    app.view(re.compile(r".*"))(on_view)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Bolt listener", exc_info=error)

    return app
