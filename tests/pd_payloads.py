"""The PagerDuty V3 payload builders live in integrations/pagerduty_payloads.py (the console uses them too)."""

from stand_ins.pagerduty_payloads import *  # noqa: F403
from stand_ins.pagerduty_payloads import (
    body,
    envelope,
    event,
    incident,
    incident_reference,
    user_reference,
)

__all__ = ["body", "envelope", "event", "incident", "incident_reference", "user_reference"]
