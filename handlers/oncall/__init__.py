"""/oncall: who PagerDuty has on call, with the runbooks' escalation paths.

What other capabilities may use: how the roster reads (the handoff checklist shows the same people and times).
"""

from handlers.oncall.roster_text import duration, escalation_path, people, when

__all__ = ["duration", "escalation_path", "people", "when"]
