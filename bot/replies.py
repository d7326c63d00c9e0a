"""Replying in Slack from a handler, without the handler knowing about Bolt, response URLs or scopes.

A slash command can come from a channel the bot is not in. Posting there fails with `not_in_channel`; the bot then
joins the channel if it is public and posts again, and otherwise answers the user privately through the
command's response_url with a hint to invite it, so the answer is never lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from integrations.slack import SlackNotInChannel, slack_error, slack_error_code

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostedMessage:
    channel: str
    ts: str


class Reply:
    """Where a handler's answers go: the channel it was invoked in, or the user alone."""

    def __init__(
        self,
        slack: AsyncWebClient,
        *,
        channel_id: str,
        user_id: str,
        respond: AsyncRespond | None = None,
        thread_ts: str | None = None,
    ) -> None:
        self.slack = slack
        self.channel_id = channel_id
        self.user_id = user_id
        self._respond = respond
        #: The thread answers in `channel_id` go to by default: a command run from a button in a thread answers
        #: in that thread. Posts to another channel never inherit it.
        self.thread_ts = thread_ts

    async def post(
        self,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> PostedMessage | None:
        """Post visibly; None when the message could only be shown to the user (the bot cannot post there)."""
        target = channel or self.channel_id
        if thread_ts is None and target == self.channel_id:
            thread_ts = self.thread_ts
        try:
            return await self._post(target, text, blocks, thread_ts)
        except SlackApiError as exc:
            refused = slack_error(exc)
            if not isinstance(refused, SlackNotInChannel):
                raise
            if refused.joinable and await self._join(target):
                return await self._post(target, text, blocks, thread_ts)
        note = "_I can't post in this channel, so only you see this. Invite me with `/invite @Mira Bot`._"
        await self.ephemeral(
            text, [*(blocks or []), {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}]
        )
        return None

    async def _post(
        self, channel: str, text: str, blocks: list[dict[str, Any]] | None, thread_ts: str | None
    ) -> PostedMessage:
        response = await self.slack.chat_postMessage(
            channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, unfurl_links=False
        )
        return PostedMessage(channel=str(response["channel"]), ts=str(response["ts"]))

    async def _join(self, channel: str) -> bool:
        try:
            await self.slack.conversations_join(channel=channel)
            return True
        except SlackApiError as exc:
            log.info("could not join channel", extra={"channel": channel, "error": slack_error_code(exc)})
            return False

    async def update(
        self, message: PostedMessage, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        await self.slack.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=blocks)

    async def ephemeral(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Only the user sees it: through response_url when there is one (works in any channel), else
        chat.postEphemeral."""
        if self._respond is not None:
            await self._respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
            return
        await self.slack.chat_postEphemeral(
            channel=self.channel_id, user=self.user_id, text=text, blocks=blocks
        )

    async def replace(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Replace the message a button was clicked on (an ephemeral confirmation, say) with its outcome, so
        the buttons cannot be pressed again; without a response_url, answer ephemerally instead."""
        if self._respond is not None:
            await self._respond(text=text, blocks=blocks, replace_original=True)
            return
        await self.ephemeral(text, blocks)


async def permalink(slack: AsyncWebClient, channel_id: str | None, ts: str | None) -> str | None:
    """The Slack link of a message (chat.getPermalink), or None when Slack cannot give one: a link is a courtesy,
    never a reason to fail what it is attached to."""
    if not channel_id or not ts:
        return None
    try:
        answer = await slack.chat_getPermalink(channel=channel_id, message_ts=ts)
    except SlackApiError:
        log.info("no permalink", extra={"channel": channel_id})
        return None
    link = answer.get("permalink")
    return str(link) if link else None
