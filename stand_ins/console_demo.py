"""The console's demo commands: `break`, `slow` and `mend` a stand-in, so every runbook scenario can be played.

Split from :mod:`stand_ins.console` (the command interpreter) because these play the services, not Slack:
`break fa` makes FA's ALB health check answer 503 with `healthy_targets: 0` (its runbook's P0), `slow ivy` makes
Ivy's new events slow enough that `/latency ivy` shows BREACH, `mend ivy` / `mend all` put them right (as does
the service's own restart or rollback hook). :class:`DemoConsoleCommands` is a mixin of
:class:`stand_ins.console.Console`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.runtime import Runtime
from stand_ins.demo import DemoStandIns
from stand_ins.demo_events import SLOWDOWN

DEMO_USAGE = "(usage: break SERVICE | slow SERVICE | mend SERVICE | mend all — services: {names})"


class DemoConsoleCommands:
    """`break`, `slow`, `mend` for :class:`stand_ins.console.Console`."""

    runtime: Runtime
    stand_ins: DemoStandIns | None

    if TYPE_CHECKING:  # provided by Console

        def say(self, *lines: str) -> None: ...

    async def demo_command(self, verb: str, rest: str) -> None:
        catalog = self.runtime.bot.catalog
        names = ", ".join(catalog.names())
        if self.stand_ins is None:
            self.say(f"({verb} plays a demo stand-in: start the console without --no-demo)")
            return
        word = rest.strip().lower()
        if not word:
            self.say(DEMO_USAGE.format(names=names))
            return
        world = self.stand_ins.world
        # The world changes at once, faster than /health's shared probe results lapse (bot/single_flight.py):
        # the next /health must see it, as it would a second later.
        self.runtime.bot.flights.forget()
        if verb == "mend" and word == "all":
            world.broken.clear()
            world.slow.clear()
            self.say("(every stand-in is healthy again; new events are normal)")
            return
        service = catalog.find(word)
        if service is None:
            self.say(f"(no service {word!r}; services: {names})")
            return
        name = service.display_name
        if verb == "break":
            world.broken.add(service.name)
            self.say(f"({name}'s health checks now answer 503 — /health {service.name} shows it down)")
        elif verb == "slow":
            world.slow.add(service.name)
            await self.stand_ins.events.burst(service.name)
            self.say(
                f"({name} is slow from now on: its events take {SLOWDOWN:g}× longer — /latency {service.name} 5m)"
            )
        else:
            world.mend(service.name)
            self.say(
                f"({name} is healthy again; its new events are normal, and the slow ones leave the 5-minute "
                "window within 5 minutes — clock +5m)"
            )
