"""The weekly handoff under real processes: two `mira-bot serve` replicas started together, both catching up on
the same rotation, post its checklist once.

The catalog rotates every minute (cron `* * * * *`) with a five-minute grace, so the rotation that has just passed
is due the moment the replicas start — both race for it, as two replicas do at 09:00 on a Monday.
"""

from __future__ import annotations

import asyncio

import yaml

from bot.catalog import BUNDLED_CATALOG
from tests.faults.harness import FaultWorld, until


def _checklists(world: FaultWorld) -> list[str]:
    return [
        str(c.response["ts"])
        for c in world.slack.calls_to("chat.postMessage")
        if c.response and not c.thread_ts and "On-call handoff" in (c.text or "")
    ]


async def test_two_replicas_post_each_rotations_checklist_once(world: FaultWorld) -> None:
    data = yaml.safe_load(BUNDLED_CATALOG.read_text())
    data["handoff"].update({"cron": "* * * * *", "grace_minutes": 5, "reminders": []})
    catalog = world.write_catalog(yaml.safe_dump(data, sort_keys=False))
    await asyncio.gather(
        world.start_bot("replica-a", BOT_CATALOG=str(catalog)),
        world.start_bot("replica-b", BOT_CATALOG=str(catalog)),
    )

    async def posted() -> bool:
        return await world.count("SELECT count(*) FROM handoffs WHERE ts IS NOT NULL") >= 1

    await until(posted, within=60, what="the checklist posted")
    await asyncio.sleep(
        3
    )  # three more scheduler ticks on each replica (1 s each), in which a duplicate would appear
    rotations = await world.sql("SELECT rotation, ts FROM handoffs WHERE ts IS NOT NULL ORDER BY rotation")
    posts = _checklists(world)
    assert len(posts) == len(rotations) and len(set(posts)) == len(posts)
    assert sorted(ts for _, ts in rotations) == sorted(posts)
    assert await world.count("SELECT count(*) FROM job_runs WHERE job LIKE 'handoff%%'") >= 1
