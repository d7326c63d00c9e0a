"""Demo rows for `mira-bot console --demo`, so /latency shows a real query on a real table.

`seed_demo_mira_events` creates a `mira_events` table shaped like the Mira runbook's (event_type, latency_ms,
success, created_at), labelled as demo data by a table COMMENT, with the index README → /latency recommends, and
fills it with `agent_response` events over the last 7 days: a log-normal latency around 0.9 s, a busier last
hour (so the default 5-minute window has a few hundred events), a visible slowdown 45 to 20 minutes ago and
another two days ago, and some `success = false`. Deterministic for a given `now` (a fixed random seed).
Nothing here is used outside the console.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

DEMO_COMMENT = (
    "Demo data created by `mira-bot console --demo` (bot/demo_data.py): synthetic agent_response events so "
    "/latency has something to measure. Not real traffic; safe to drop."
)
_SEED = 20251112
_LOCK_KEY = 0x4D49524144454D4F  # "MIRADEMO": one seeder at a time


def _latency_ms(rng: random.Random, slow: float) -> int:
    """Log-normal around 900 ms (p95 ≈ 1.9 s); `slow` multiplies the median during a bump."""
    return max(80, round(900 * slow * math.exp(rng.gauss(0.0, 0.45))))


def _slowdown(age: timedelta) -> float:
    """How much slower the service was `age` ago: the visible bumps."""
    minutes = age.total_seconds() / 60
    if 20 <= minutes <= 45:  # the last hour's incident: p95 well over the 3 s SLO
        return 2.4
    if 2 * 24 * 60 <= minutes <= 2 * 24 * 60 + 90:  # two days ago, a shorter one
        return 2.0
    return 1.0


def demo_rows(now: datetime) -> list[tuple[str, int, bool, datetime]]:
    """(event_type, latency_ms, success, created_at) rows, oldest first."""
    rng = random.Random(_SEED)
    rows: list[tuple[str, int, bool, datetime]] = []
    # The last hour, dense: one event every ~3 s. Before that, every ~3 minutes back to 7 days.
    ages = [timedelta(seconds=s) for s in range(3, 3600, 3)]
    ages += [timedelta(seconds=s) for s in range(3600, 7 * 24 * 3600, 180)]
    for age in reversed(ages):
        jitter = timedelta(seconds=rng.uniform(-1.0, 1.0))
        slow = _slowdown(age)
        failure_chance = 0.06 if slow > 1 else 0.02
        rows.append(
            ("agent_response", _latency_ms(rng, slow), rng.random() >= failure_chance, now - age + jitter)
        )
    return rows


async def seed_demo_mira_events(dsn: str, now: datetime | None = None) -> int:
    """Create and fill the demo `mira_events` table; the number of rows inserted (0 when it already had rows).

    The rows are dated by the metrics database's own clock unless `now` is given: /latency judges its window by
    that clock (`now()` in integrations/metrics_db.py, as a service's own events are), so the seed and the window
    agree even where the bot's host and the database disagree on the time."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
        if now is None:
            clock = await (await conn.execute("SELECT now()")).fetchone()
            assert clock is not None
            now = clock[0]
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS mira_events (
                   id bigserial PRIMARY KEY,
                   event_type text NOT NULL,
                   latency_ms integer,
                   success boolean,
                   created_at timestamptz NOT NULL DEFAULT now()
               )"""
        )
        await conn.execute(
            "CREATE INDEX IF NOT EXISTS mira_events_event_type_created_at_idx "
            "ON mira_events (event_type, created_at) INCLUDE (latency_ms, success)"
        )
        cursor = await conn.execute("SELECT EXISTS (SELECT 1 FROM mira_events)")
        row = await cursor.fetchone()
        if row and row[0]:
            return 0
        # COMMENT takes no bind parameters; the text is our constant, quoted by psycopg.
        await conn.execute(sql.SQL("COMMENT ON TABLE mira_events IS {}").format(sql.Literal(DEMO_COMMENT)))
        rows = demo_rows(now)
        async with conn.cursor().copy(
            "COPY mira_events (event_type, latency_ms, success, created_at) FROM STDIN"
        ) as copy:
            for item in rows:
                await copy.write_row(item)
        await conn.execute("ANALYZE mira_events")
        return len(rows)
