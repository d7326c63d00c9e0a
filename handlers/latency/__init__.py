"""/latency: p50 / p95 / p99 against each runbook's SLOs.

What other capabilities may use: judging a latency source against objectives (a rollback's watch step).
"""

from handlers.latency.slo import Level, Verdict, source_stats, verdicts

__all__ = ["Level", "Verdict", "source_stats", "verdicts"]
