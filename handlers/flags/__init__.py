"""/flag: typed feature-flag changes on Supabase secrets and Postgres flag tables.

What other capabilities may use: planning, recording and applying a change (a rollback's flag step), and a
value's wire form.
"""

from handlers.flags.changes import FlagStoreNotConfigured, apply, plan, record_change, to_wire

__all__ = ["FlagStoreNotConfigured", "apply", "plan", "record_change", "to_wire"]
