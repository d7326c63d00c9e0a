"""The recording Slack server's other Web API methods: ``users.*``, ``usergroups.*``, ``conversations.*``,
``views.*`` and ``files.*``.

Split from :mod:`stand_ins.recording_slack`. Users are the registered ones or synthesised (``U123`` <->
``u123@example.com``); ``conversations.history`` / ``conversations.replies`` read the message store with Slack's
``oldest`` / ``latest`` / ``inclusive`` range and cursor paging (and want a conversation ID, not a ``#name``); a
view over a Block Kit limit is refused (:func:`stand_ins.recording_slack_limits.view_refusal`); files follow the
``files_upload_v2`` flow -- an upload URL, the bytes (:meth:`RecordingSlackServer._upload_endpoint`), then the
share, shown as one message carrying the files.
"""

from __future__ import annotations

from typing import Any

from stand_ins.recording_slack_limits import view_refusal
from stand_ins.slack_records import (
    _CONVERSATION_ID_RE,
    BOT_USER_ID,
    TEAM_ID,
    FileShare,
    StoredMessage,
    _ts_key,
)
from stand_ins.slack_store import SlackMessageStore


class SlackWorkspaceApi(SlackMessageStore):
    """The users, user groups, conversations, views and files of :class:`stand_ins.recording_slack.RecordingSlackServer`."""

    _users_by_id: dict[str, tuple[str, str | None]]
    _usergroups: dict[str, list[str]]
    _users_by_email: dict[str, str]
    _pending_uploads: dict[str, dict[str, Any]]
    uploaded_files: dict[str, bytes]
    file_shares: list[FileShare]
    views: dict[str, dict[str, Any]]

    def _user_payload(self, user_id: str) -> dict[str, Any]:
        email, name = self._users_by_id.get(user_id, (f"{user_id.lower()}@example.com", None))
        handle = email.split("@")[0].lower() if user_id in self._users_by_id else user_id.lower()
        real_name = name or f"User {user_id}"
        return {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": handle,
            "real_name": real_name,
            "deleted": False,
            "is_bot": user_id == BOT_USER_ID,
            "tz": "UTC",
            "profile": {"email": email, "real_name": real_name, "display_name": name or handle},
        }

    def _users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user")
        if not isinstance(user, str) or not user.strip():
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": self._user_payload(user.strip())}

    def _users_lookup_by_email(self, body: dict[str, Any]) -> dict[str, Any]:
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            return {"ok": False, "error": "users_not_found"}
        user_id = self._users_by_email.get(email.lower()) or email.split("@")[0].upper()
        return {"ok": True, "user": self._user_payload(user_id)}

    def _usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("usergroup")
        if not isinstance(group, str) or not group:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self._usergroups.get(group, []))}

    def _conversations_info(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        cid = self.channel_id(channel)
        known = self._channel_names.get(cid)
        name = known.lstrip("#@") if known else cid.lower()
        return {
            "ok": True,
            "channel": {"id": cid, "name": name, "is_member": True, "is_im": cid.startswith("D")},
        }

    @staticmethod
    def _flag(value: Any) -> bool:
        return value in (True, 1, "1", "true", "True")

    @staticmethod
    def _page(items: list[Any], body: dict[str, Any], default: int = 100) -> tuple[list[Any], str]:
        """One page of ``items`` by Slack's cursor (opaque here: the offset) and ``limit``; and the next cursor."""
        try:
            offset = int(str(body.get("cursor") or "0").removeprefix("o"))
            limit = int(body.get("limit") or default)
        except ValueError:
            return [], ""
        limit = max(1, min(limit, 999))
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        return page, f"o{offset + limit}" if more else ""

    def _in_range(self, ts: str, body: dict[str, Any]) -> bool:
        inclusive = self._flag(body.get("inclusive"))
        key = _ts_key(ts)
        oldest, latest = body.get("oldest"), body.get("latest")
        if oldest not in (None, ""):
            low = _ts_key(str(oldest))
            if key < low or (key == low and not inclusive):
                return False
        if latest not in (None, ""):
            high = _ts_key(str(latest))
            if key > high or (key == high and not inclusive):
                return False
        return True

    def _conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first; metadata only with ``include_all_metadata``."""
        channel = body.get("channel")
        if not isinstance(channel, str) or not _CONVERSATION_ID_RE.match(channel.strip()):
            return {"ok": False, "error": "channel_not_found"}  # Slack wants an ID here, not a #name
        metadata = self._flag(body.get("include_all_metadata"))
        found = [
            m
            for m in self.messages(channel)
            if m.ephemeral_to is None
            and not m.deleted
            and (m.thread_ts is None or m.thread_ts == m.ts)
            and self._in_range(m.ts, body)
        ]
        page, cursor = self._page(list(reversed(found)), body)
        return {
            "ok": True,
            "messages": [self._message_payload(m, metadata=metadata) for m in page],
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent, then its replies, oldest first; metadata only with ``include_all_metadata``."""
        channel, ts = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not _CONVERSATION_ID_RE.match(channel.strip()):
            return {"ok": False, "error": "channel_not_found"}
        parent = self._messages.get((channel.strip(), str(ts)))
        if parent is None or parent.deleted or parent.ephemeral_to is not None:
            return {"ok": False, "error": "thread_not_found"}
        metadata = self._flag(body.get("include_all_metadata"))
        thread = [parent] + [
            m for m in self.thread(channel, parent.ts) if m.ephemeral_to is None and not m.deleted
        ]
        thread = [m for m in thread if self._in_range(m.ts, body)]
        page, cursor = self._page(thread, body, default=1000)
        return {
            "ok": True,
            "messages": [self._message_payload(m, metadata=metadata) for m in page],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_list(self, body: dict[str, Any]) -> dict[str, Any]:
        """The channels this server knows by name (every ``#name`` it was sent), the bot a member of each."""
        channels = [
            {"id": cid, "name": name.lstrip("#"), "is_channel": True, "is_member": True, "is_archived": False}
            for cid, name in sorted(self._channel_names.items())
            if name.startswith("#")
        ]
        page, cursor = self._page(channels, body)
        return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        view = body.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if refusal := view_refusal(view):
            return refusal
        view_id = body.get("view_id") or self._next_id("V")
        self.views[view_id] = view
        return {"ok": True, "view": {"id": view_id, **view}}

    def _files_get_upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        filename = body.get("filename")
        if not filename:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._next_id("F")
        self._pending_uploads[file_id] = {"filename": filename, "length": body.get("length")}
        return {"ok": True, "upload_url": self.base_url + f"/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        files = body.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        for entry in files:
            if not isinstance(entry, dict) or entry.get("id") not in self._pending_uploads:
                return {"ok": False, "error": "file_not_found"}
        targets: list[str] = []
        if isinstance(body.get("channel_id"), str) and body["channel_id"]:
            targets.append(self.channel_id(body["channel_id"]))
        if isinstance(body.get("channels"), str) and body["channels"]:
            targets.extend(self.channel_id(c) for c in body["channels"].split(",") if c.strip())
        thread_ts = body.get("thread_ts") or None
        comment = body.get("initial_comment") or None

        out: list[dict[str, Any]] = []
        for entry in files:
            file_id = entry["id"]
            pending = self._pending_uploads[file_id]
            title = entry.get("title") or pending["filename"]
            size = len(self.uploaded_files[file_id]) if file_id in self.uploaded_files else None
            out.append({"id": file_id, "title": title, "name": pending["filename"], "size": size})
            share_targets: list[str | None] = [*targets] or [None]
            for cid in share_targets:
                self.file_shares.append(
                    FileShare(file_id, title, pending["filename"], size, cid, thread_ts, comment)
                )
        # Slack shows the share as one message carrying the files (and the comment).
        for cid in targets:
            msg = StoredMessage(
                channel=cid,
                ts=self._next_ts(),
                thread_ts=thread_ts,
                text=comment or "",
                blocks=None,
                user=BOT_USER_ID,
                files=[dict(f) for f in out],
            )
            self._messages[(cid, msg.ts)] = msg
        return {"ok": True, "files": out}
