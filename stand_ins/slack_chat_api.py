"""The recording Slack server's ``chat.*`` methods (and ``auth.test``, ``reactions.add``).

Split from :mod:`stand_ins.recording_slack`. Each handler takes the decoded request body and answers Slack's JSON,
changing the message store as Slack would: ``chat.postMessage`` / ``chat.postEphemeral`` store a message,
``chat.update`` changes one in place (fields left out keep their value), ``chat.delete`` flags it. They are as
strict as Slack: no content is ``no_text``, malformed metadata ``invalid_metadata_format``, and a payload over a
Block Kit or message limit is refused with Slack's answer (:func:`stand_ins.recording_slack_limits.message_refusal`).
"""

from __future__ import annotations

from typing import Any

from stand_ins.recording_slack_limits import message_refusal
from stand_ins.slack_records import BOT_ID, BOT_USER_ID, TEAM_ID, StoredMessage, _present
from stand_ins.slack_store import SlackMessageStore


class SlackChatApi(SlackMessageStore):
    """The ``chat.*`` Web API methods of :class:`stand_ins.recording_slack.RecordingSlackServer`."""

    # ------------------------------------------------------------------ API methods

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://console.slack.test/",
            "team": "Console",
            "user": "mira-bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    @staticmethod
    def _content_error(body: dict[str, Any]) -> str | None:
        if not any(_present(body.get(k)) for k in ("text", "blocks", "attachments")):
            return "no_text"
        return None

    @staticmethod
    def _metadata_error(body: dict[str, Any]) -> str | None:
        """Slack's check of message metadata: an ``event_type`` string and an ``event_payload`` object."""
        if "metadata" not in body or body["metadata"] in (None, ""):
            return None
        metadata = body["metadata"]
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not metadata["event_type"]
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            return "invalid_metadata_format"
        return None

    def _store_message(self, channel: str, body: dict[str, Any], **extra: Any) -> StoredMessage:
        """A message the bot posted (visible, or `ephemeral_to` one user), stored as Slack would keep it."""
        msg = StoredMessage(
            channel=self.channel_id(channel),
            ts=self._next_ts(),
            thread_ts=body.get("thread_ts") or None,
            text=body.get("text"),
            blocks=body.get("blocks"),
            attachments=body.get("attachments"),
            user=BOT_USER_ID,
            **extra,
        )
        self._messages[(msg.channel, msg.ts)] = msg
        return msg

    def _chat_post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        if error := self._content_error(body) or self._metadata_error(body):
            return {"ok": False, "error": error}
        if refusal := message_refusal(body):
            return refusal
        msg = self._store_message(channel, body, metadata=body.get("metadata") or None)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "message": self._message_payload(msg)}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        msg = self._messages.get((self.channel_id(channel), str(ts)))
        if msg is None or msg.deleted or msg.ephemeral_to is not None:
            return {"ok": False, "error": "message_not_found"}
        if refusal := message_refusal(body):
            return refusal
        # Like Slack, fields left out of the update keep their previous value.
        if "text" in body:
            msg.text = body["text"]
        if "blocks" in body:
            msg.blocks = body["blocks"]
        if "attachments" in body:
            msg.attachments = body["attachments"]
        msg.updated += 1
        return {
            "ok": True,
            "channel": msg.channel,
            "ts": msg.ts,
            "text": msg.text or "",
            "message": self._message_payload(msg),
        }

    def _chat_post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, user = body.get("channel"), body.get("user")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        if not isinstance(user, str) or not user.strip():
            return {"ok": False, "error": "user_not_found"}
        if error := self._content_error(body):
            return {"ok": False, "error": error}
        if refusal := message_refusal(body):
            return refusal
        msg = self._store_message(channel, body, ephemeral_to=user)
        return {"ok": True, "message_ts": msg.ts}

    def _chat_get_permalink(self, body: dict[str, Any]) -> dict[str, Any]:
        """Slack's answer shape: the message's web link, ``…/archives/<channel>/p<ts without the dot>``."""
        channel, ts = body.get("channel"), body.get("message_ts")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        msg = self._messages.get((self.channel_id(channel), str(ts)))
        if msg is None or msg.deleted:
            return {"ok": False, "error": "message_not_found"}
        permalink = f"https://console.slack.test/archives/{msg.channel}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts and msg.thread_ts != msg.ts:
            permalink += f"?thread_ts={msg.thread_ts}&cid={msg.channel}"
        return {"ok": True, "channel": msg.channel, "permalink": permalink}

    def _chat_delete(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        cid = self.channel_id(channel) if isinstance(channel, str) and channel.strip() else channel
        msg = self._messages.get((str(cid), str(ts)))
        if msg is not None:
            msg.deleted = True
        return {"ok": True, "channel": cid, "ts": ts}

    def _reactions_add(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts, name = body.get("channel"), body.get("timestamp"), body.get("name")
        if isinstance(channel, str) and channel.strip():
            msg = self._messages.get((self.channel_id(channel), str(ts)))
            if msg is not None and isinstance(name, str) and name not in msg.reactions:
                msg.reactions.append(name)
        return {"ok": True}
