"""One package per capability (health, flags, latency, rollback, incidents, oncall, handoff).

Kept empty so importing one capability never imports the others: what a capability offers the others is in its
own package's `__init__`, and what the platform runs is assembled in handlers/capabilities.py.
"""
