"""The console's clock: real time shifted forward by `clock …`, and the words `clock` understands.

Split from :mod:`stand_ins.console` because it is pure time arithmetic with no bot in it: the console makes it the
bot's clock (`bot.clock`), so `clock monday 09:00` shows the weekly handoff checklist without waiting for Monday.
Time keeps running after a jump and only moves forward, as the scheduler expects.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.cron import CronSchedule

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^(?:(?P<day>[a-z]+)\s+)?(?P<hh>\d{1,2}):(?P<mm>\d{2})$")
_CLOCK_STEP = re.compile(r"^\+(?P<n>\d+)(?P<unit>[mhd])$")


class ConsoleClock:
    """Real time, shifted by what `clock` set: time keeps running after a jump, and only ever moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def jump_to(self, moment: datetime) -> None:
        self.offset = max(self.offset, moment - datetime.now(UTC))


def clock_target(text: str, now: datetime, zone_name: str) -> datetime | None:
    """`monday 09:00` / `mon 9:00` (the next such moment), `17:00` (the next one), `+4h` / `+30m` / `+1d`; in
    the handoff's time zone. None when the text is none of these."""
    schedule = CronSchedule("* * * * *", zone_name)  # validates and carries the zone
    words = text.strip().lower()
    step = _CLOCK_STEP.match(words)
    if step:
        n = int(step.group("n"))
        return (
            now
            + {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[step.group("unit")]
        )
    match = _CLOCK.match(words)
    if not match or int(match.group("hh")) > 23 or int(match.group("mm")) > 59:
        return None
    day = match.group("day")
    weekday = next((i for i, name in enumerate(_WEEKDAYS) if day and day.startswith(name)), None)
    if day and weekday is None:
        return None
    local = now.astimezone(schedule.zone)
    candidate = local.replace(
        hour=int(match.group("hh")), minute=int(match.group("mm")), second=0, microsecond=0
    )
    for _ in range(8):
        if candidate > local and (weekday is None or candidate.weekday() == weekday):
            return candidate.astimezone(UTC)
        candidate = (candidate + timedelta(days=1)).replace(hour=candidate.hour, minute=candidate.minute)
    return None
