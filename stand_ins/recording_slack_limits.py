"""What the recording Slack server refuses, as Slack refuses it: the Block Kit and message size limits.

Real Slack answers a message that breaks a Block Kit rule with HTTP 200, `{"ok": false, "error": "invalid_blocks",
"response_metadata": {"messages": ["[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]}}`
(views.open / views.update / views.push: `invalid_arguments`, with the same kind of messages), and a message whose
`text` is over 40,000 characters with `msg_too_long`. A stand-in that accepts anything lets the bot ship payloads
Slack will refuse forever; this one checks every posted message, update, ephemeral, response_url answer and view
against the one limit table (`bot.slack_limits`) and answers with Slack's code and messages.

Only the maximums are checked (counts and lengths): they are what outside data (PagerDuty titles, names, notes)
can break. The walk follows the block and element types the bot uses and the common ones next to them; an unknown
type is passed over, as it would be by a test double that cannot know every Slack feature.
"""

from __future__ import annotations

from typing import Any

from bot import slack_limits as L

__all__ = ["message_refusal", "response_url_refusal", "view_refusal"]


class _Errors:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def too_long(self, value: Any, limit: int, pointer: str) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.messages.append(f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}]")

    def too_many(self, items: Any, limit: int, pointer: str) -> None:
        if isinstance(items, list) and len(items) > limit:
            self.messages.append(f"[ERROR] must be no more than {limit} items [json-pointer:{pointer}]")

    def text_object(self, obj: Any, limit: int, pointer: str) -> None:
        if isinstance(obj, dict):
            self.too_long(obj.get("text"), limit, f"{pointer}/text")


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    return (
        [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]
        if isinstance(value, list)
        else []
    )


def _confirm(errors: _Errors, confirm: Any, pointer: str) -> None:
    if not isinstance(confirm, dict):
        return
    errors.text_object(confirm.get("title"), L.CONFIRM_TITLE, f"{pointer}/title")
    errors.text_object(confirm.get("text"), L.CONFIRM_TEXT, f"{pointer}/text")
    errors.text_object(confirm.get("confirm"), L.CONFIRM_BUTTON, f"{pointer}/confirm")
    errors.text_object(confirm.get("deny"), L.CONFIRM_BUTTON, f"{pointer}/deny")


def _options(errors: _Errors, options: Any, limit: int, pointer: str) -> None:
    errors.too_many(options, limit, pointer)
    for i, option in _items(options):
        errors.text_object(option.get("text"), L.OPTION_TEXT, f"{pointer}/{i}/text")
        errors.too_long(option.get("value"), L.OPTION_VALUE, f"{pointer}/{i}/value")
        errors.text_object(option.get("description"), L.OPTION_DESCRIPTION, f"{pointer}/{i}/description")


_CHOICES = {"checkboxes": L.CHECKBOX_OPTIONS, "radio_buttons": L.CHECKBOX_OPTIONS, "overflow": 5}


def _element(errors: _Errors, element: dict[str, Any], pointer: str) -> None:
    kind = element.get("type")
    errors.too_long(element.get("action_id"), L.ACTION_ID, f"{pointer}/action_id")
    errors.text_object(element.get("placeholder"), L.PLACEHOLDER, f"{pointer}/placeholder")
    _confirm(errors, element.get("confirm"), f"{pointer}/confirm")
    if kind == "button":
        errors.text_object(element.get("text"), L.BUTTON_TEXT, f"{pointer}/text")
        errors.too_long(element.get("value"), L.BUTTON_VALUE, f"{pointer}/value")
        errors.too_long(element.get("url"), L.BUTTON_URL, f"{pointer}/url")
    elif kind in _CHOICES:
        _options(errors, element.get("options"), _CHOICES[str(kind)], f"{pointer}/options")
        _options(errors, element.get("initial_options"), _CHOICES[str(kind)], f"{pointer}/initial_options")
    elif isinstance(kind, str) and kind.endswith("_select"):
        _options(errors, element.get("options"), L.SELECT_OPTIONS, f"{pointer}/options")
        errors.too_many(element.get("option_groups"), L.SELECT_OPTIONS, f"{pointer}/option_groups")
    elif kind == "image":
        errors.too_long(element.get("image_url"), L.IMAGE_URL, f"{pointer}/image_url")
        errors.too_long(element.get("alt_text"), L.IMAGE_ALT_TEXT, f"{pointer}/alt_text")
    elif kind in ("mrkdwn", "plain_text"):
        errors.too_long(element.get("text"), L.TEXT_OBJECT, f"{pointer}/text")


def _block(errors: _Errors, block: dict[str, Any], pointer: str) -> None:
    kind = block.get("type")
    errors.too_long(block.get("block_id"), L.BLOCK_ID, f"{pointer}/block_id")
    if kind == "section":
        errors.text_object(block.get("text"), L.SECTION_TEXT, f"{pointer}/text")
        errors.too_many(block.get("fields"), L.SECTION_FIELDS, f"{pointer}/fields")
        for i, field in _items(block.get("fields")):
            errors.too_long(field.get("text"), L.FIELD_TEXT, f"{pointer}/fields/{i}/text")
        if isinstance(block.get("accessory"), dict):
            _element(errors, block["accessory"], f"{pointer}/accessory")
    elif kind == "header":
        errors.text_object(block.get("text"), L.HEADER_TEXT, f"{pointer}/text")
    elif kind in ("context", "actions"):
        limit = L.CONTEXT_ELEMENTS if kind == "context" else L.ACTIONS_ELEMENTS
        errors.too_many(block.get("elements"), limit, f"{pointer}/elements")
        for i, element in _items(block.get("elements")):
            _element(errors, element, f"{pointer}/elements/{i}")
    elif kind == "input":
        errors.text_object(block.get("label"), L.INPUT_LABEL, f"{pointer}/label")
        errors.text_object(block.get("hint"), L.INPUT_HINT, f"{pointer}/hint")
        if isinstance(block.get("element"), dict):
            _element(errors, block["element"], f"{pointer}/element")
    elif kind == "image":
        errors.too_long(block.get("image_url"), L.IMAGE_URL, f"{pointer}/image_url")
        errors.too_long(block.get("alt_text"), L.IMAGE_ALT_TEXT, f"{pointer}/alt_text")
        errors.text_object(block.get("title"), L.IMAGE_ALT_TEXT, f"{pointer}/title")


def _blocks(errors: _Errors, blocks: Any, limit: int, pointer: str) -> None:
    errors.too_many(blocks, limit, pointer)
    for i, block in _items(blocks):
        _block(errors, block, f"{pointer}/{i}")


def _refusal(error: str, messages: list[str]) -> dict[str, Any]:
    return {"ok": False, "error": error, "response_metadata": {"messages": messages}}


def message_refusal(body: dict[str, Any]) -> dict[str, Any] | None:
    """Slack's answer to a chat.postMessage / chat.update / chat.postEphemeral body it would refuse, else None."""
    text = body.get("text")
    if isinstance(text, str) and len(text) > L.MESSAGE_TEXT:
        return {"ok": False, "error": "msg_too_long"}
    attachments = body.get("attachments")
    for _, attachment in _items(attachments):
        for key in ("text", "pretext", "fallback"):
            value = attachment.get(key)
            if isinstance(value, str) and len(value) > L.MESSAGE_TEXT:
                return {"ok": False, "error": "msg_too_long"}
    errors = _Errors()
    _blocks(errors, body.get("blocks"), L.MESSAGE_BLOCKS, "/blocks")
    if errors.messages:
        return _refusal("invalid_blocks", errors.messages)
    if isinstance(attachments, list) and len(attachments) > L.MESSAGE_ATTACHMENTS:
        return {"ok": False, "error": "too_many_attachments"}
    for i, attachment in _items(attachments):
        _blocks(errors, attachment.get("blocks"), L.MESSAGE_BLOCKS, f"/attachments/{i}/blocks")
    if errors.messages:
        return _refusal("invalid_attachments", errors.messages)
    return None


def response_url_refusal(body: dict[str, Any]) -> str | None:
    """The error a response_url answers (HTTP 400, the code as plain text, like Slack's webhooks) or None."""
    refusal = message_refusal(body)
    return str(refusal["error"]) if refusal else None


def view_refusal(view: dict[str, Any]) -> dict[str, Any] | None:
    """Slack's answer to views.open / views.update / views.push with a view it would refuse, else None."""
    errors = _Errors()
    errors.text_object(view.get("title"), L.MODAL_TITLE, "/view/title")
    errors.text_object(view.get("submit"), L.MODAL_SUBMIT, "/view/submit")
    errors.text_object(view.get("close"), L.MODAL_CLOSE, "/view/close")
    errors.too_long(view.get("private_metadata"), L.PRIVATE_METADATA, "/view/private_metadata")
    errors.too_long(view.get("callback_id"), L.CALLBACK_ID, "/view/callback_id")
    _blocks(errors, view.get("blocks"), L.MODAL_BLOCKS, "/view/blocks")  # modals and home tabs alike
    return _refusal("invalid_arguments", errors.messages) if errors.messages else None
