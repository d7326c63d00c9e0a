"""Cron expressions in a time zone: when a weekly rotation (or any cron-shaped job) is due.

Kept apart from the scheduler so the catalog can validate `handoff.cron` and `handoff.timezone` at load time
without importing the scheduler's database code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError


class CronSchedule:
    """The slots of a five-field cron expression read in an IANA time zone (cronsim, the evaluator healthchecks.io
    uses: it steps through daylight-saving changes the way cron does rather than shifting by an hour).

    Raises ValueError naming what is wrong, so a bad catalog entry stops start-up with a readable line.
    """

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {timezone!r} (expected an IANA name like Europe/Berlin)"
            ) from None
        try:
            CronSim(expression, datetime.now(self.zone))
        except CronSimError as exc:
            raise ValueError(f"not a cron expression ({exc}): {expression!r}") from None
        self.expression = expression
        self.timezone = timezone

    def latest(self, now: datetime) -> datetime:
        """The most recent slot at or before `now`, in UTC."""
        # cronsim's reverse iteration yields slots strictly before its start: start one minute after `now`'s minute.
        start = now.astimezone(self.zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        return next(CronSim(self.expression, start, reverse=True)).astimezone(UTC)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.timezone!r})"


class FollowUp:
    """Slots that follow each slot of a `CronSchedule`: `after` a number of minutes (a reminder 4 hours after the
    rotation), or `at` a local time of day (the first 17:00 at or after the rotation, in the rotation's zone).

    `latest(now)` makes it a scheduler job of its own, so each follow-up is claimed once per rotation like any
    slot; `rotation_of(slot)` tells the job which rotation a follow-up belongs to.
    """

    def __init__(self, rotation: CronSchedule, kind: str, minutes: int) -> None:
        if kind not in ("after", "at"):
            raise ValueError("kind is 'after' or 'at'")
        self.rotation = rotation
        self.kind = kind
        self.minutes = minutes

    def for_rotation(self, rotation: datetime) -> datetime:
        """The follow-up of the rotation at `rotation` (UTC)."""
        if self.kind == "after":
            return rotation + timedelta(minutes=self.minutes)
        local = rotation.astimezone(self.rotation.zone)
        hour, minute = divmod(self.minutes, 60)
        candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if candidate < local:
            candidate = (local + timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return candidate.astimezone(UTC)

    def rotation_of(self, slot: datetime) -> datetime:
        if self.kind == "after":
            return slot - timedelta(minutes=self.minutes)
        return self.rotation.latest(slot)

    def latest(self, now: datetime) -> datetime:
        """The most recent follow-up at or before `now`."""
        rotation = self.rotation.latest(now)
        for _ in range(8):  # a follow-up lies after its rotation: at most a few rotations back
            slot = self.for_rotation(rotation)
            if slot <= now:
                return slot
            rotation = self.rotation.latest(rotation - timedelta(minutes=1))
        return slot  # pragma: no cover - only for follow-ups longer than several rotations
