"""/health: probing every service of the catalog.

What other capabilities may use: probing services (the handoff's health evidence, a rollback's health step) and
keeping a check in `health_runs`.
"""

from handlers.health.probing import (
    ProbeResult,
    ServiceHealth,
    Status,
    check_service,
    check_services,
)
from handlers.health.runs import record_run

__all__ = ["ProbeResult", "ServiceHealth", "Status", "check_service", "check_services", "record_run"]
