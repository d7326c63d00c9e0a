"""PagerDuty incidents as living Slack threads: pipeline.py takes each stored event through events.py (state),
threads.py (roots and replies), root_edits.py (their debounced edits), lines.py (a line per event), storm.py,
timers.py and postmortem.py; buttons.py and escalate.py (the SLA nudge's Escalate), blocks.py.

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
