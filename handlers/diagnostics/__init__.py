"""/diag: the runbooks' investigation queries, named in the catalog, run read-only on each service's database.

What other capabilities use (the scheduled checks): `run_diagnostic` (bind, run, judge thresholds; never raises for
what a person can fix) and `post_diagnostic` (the table, or the CSV for a large result, in a channel or a thread),
with `diagnostic_blocks` to render a result inside a message of their own (and `needs_csv` / `upload_csv` for
the CSV of a large one, when that message is posted through bot/slack_once.py rather than `post_diagnostic`).
"""

from handlers.diagnostics.model import DiagnosticResult
from handlers.diagnostics.post import diagnostic_blocks, needs_csv, post_diagnostic, upload_csv
from handlers.diagnostics.runner import ArgumentError, bind_args, run_diagnostic

__all__ = [
    "ArgumentError",
    "DiagnosticResult",
    "bind_args",
    "diagnostic_blocks",
    "needs_csv",
    "post_diagnostic",
    "run_diagnostic",
    "upload_csv",
]
