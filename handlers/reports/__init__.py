"""Scheduled checks: the runbooks' daily and weekly checks (a service's catalog `reports:`), run by the bot itself
through the scheduler, one message per slot.

Nothing here is used by another capability; the composition root registers `schedule.jobs`.
"""
