"""Slack's size limits, in one table: what the renderers keep within and what the recording Slack server enforces.

Slack refuses a message or a view that breaks one of these with `ok: false` — `invalid_blocks` (views:
`invalid_arguments`) listing each broken rule in `response_metadata.messages`, or `msg_too_long` — and no retry
changes the answer. The numbers are Slack's Block Kit reference (https://api.slack.com/reference/block-kit/blocks,
…/block-elements, …/composition-objects, https://api.slack.com/reference/surfaces/views) and
https://api.slack.com/methods/chat.postMessage ("truncating" `text` at 40,000 characters, attachments at 100), as
slack_sdk's validators encode them too (`slack_sdk.models.blocks`, `slack_sdk.models.views`).

The product imports this module; the recording server (bot/recording_slack.py) imports it as well, so a limit the
bot is written against and the limit the tests hold it to are the same number. Nothing here imports a stand-in.
"""

from __future__ import annotations

from typing import Final

from integrations.slack import INVALID_PAYLOAD

# --- messages ---------------------------------------------------------------------------------------------------
MESSAGE_TEXT: Final = 40_000  # chat.postMessage `text` (and the text of its attachments): msg_too_long above
MESSAGE_BLOCKS: Final = 50  # blocks in a message (and in each attachment)
MESSAGE_ATTACHMENTS: Final = 100

# --- blocks -----------------------------------------------------------------------------------------------------
BLOCK_ID: Final = 255
TEXT_OBJECT: Final = 3_000  # any text object, a section's text among them
SECTION_TEXT: Final = 3_000
SECTION_FIELDS: Final = 10
FIELD_TEXT: Final = 2_000  # each of a section's fields
HEADER_TEXT: Final = 150
CONTEXT_ELEMENTS: Final = 10
ACTIONS_ELEMENTS: Final = 25
INPUT_LABEL: Final = 2_000
INPUT_HINT: Final = 2_000
IMAGE_URL: Final = 3_000
IMAGE_ALT_TEXT: Final = 2_000

# --- elements ---------------------------------------------------------------------------------------------------
ACTION_ID: Final = 255
BUTTON_TEXT: Final = 75
BUTTON_VALUE: Final = 2_000
BUTTON_URL: Final = 3_000
PLACEHOLDER: Final = 150
CHECKBOX_OPTIONS: Final = 10  # checkboxes and radio buttons
SELECT_OPTIONS: Final = 100
OPTION_TEXT: Final = 75
OPTION_VALUE: Final = 150
OPTION_DESCRIPTION: Final = 75
CONFIRM_TITLE: Final = 100
CONFIRM_TEXT: Final = 300
CONFIRM_BUTTON: Final = 30  # a confirm dialog's confirm / deny labels

# --- views (modals) ---------------------------------------------------------------------------------------------
MODAL_BLOCKS: Final = 100
MODAL_TITLE: Final = 24
MODAL_SUBMIT: Final = 24
MODAL_CLOSE: Final = 24
PRIVATE_METADATA: Final = 3_000
CALLBACK_ID: Final = 255

#: Slack's answers to a payload it will never accept as sent: resending it is pointless, and waiting on it would
#: hold every later event of the incident behind it (bot/slack_once.py posts a text-only fallback instead).
PERMANENT_REFUSALS: Final = INVALID_PAYLOAD  # the payloads integrations.slack.SlackInvalidPayload stands for
