"""PagerDuty incidents as living Slack threads (threads.py), their buttons and Block Kit.

What other capabilities (and the console) may use: read-only summaries of the incidents' tables.
"""

from handlers.incidents.summary import (
    IncidentCounts,
    OpenIncident,
    StoredTrigger,
    last_webhooks,
    open_incidents,
    trigger_with_key,
    triggered_between,
    undelivered,
)

__all__ = [
    "IncidentCounts",
    "OpenIncident",
    "StoredTrigger",
    "last_webhooks",
    "open_incidents",
    "trigger_with_key",
    "triggered_between",
    "undelivered",
]
