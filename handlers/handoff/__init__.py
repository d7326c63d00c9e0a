"""The weekly on-call handoff checklist (Mira runbook §1 Handoff Checklist): posted at the rotation, ticked in
Slack, chased until done.

What other capabilities may use: the current rotation, posting its checklist (once per rotation), and reading it.
"""

from handlers.handoff.checklist import PostOutcome, current_rotation, post_checklist, zone
from handlers.handoff.store import HandoffRecord, by_rotation

__all__ = ["HandoffRecord", "PostOutcome", "by_rotation", "current_rotation", "post_checklist", "zone"]
