-- Issue 14. One open run (pending, running or stopped on a failed step) per service, held by Postgres: a second
-- /rollback or /restart while one is open is refused by this index, not by an in-process check. Requests left
-- pending next to another open run by the old rule (only running/failed counted) are cancelled first.
UPDATE rollback_runs r SET status = 'cancelled', ended_by = 'migration 0011', finished_at = r.created_at
WHERE r.status = 'pending' AND EXISTS (
    SELECT 1 FROM rollback_runs o
    WHERE o.service = r.service AND o.id <> r.id AND o.status IN ('pending', 'running', 'failed')
      AND (o.status <> 'pending' OR o.id > r.id)
);
DROP INDEX rollback_runs_one_active;
CREATE UNIQUE INDEX rollback_runs_one_open ON rollback_runs (service) WHERE status IN ('pending', 'running', 'failed');

-- A run is a rollback (two people under the two-person rule) or a Level-1 restart (one Confirm).
ALTER TABLE rollback_runs ADD COLUMN kind text NOT NULL DEFAULT 'rollback' CHECK (kind IN ('rollback', 'restart'));
-- What the preflight found missing when the request was made or last checked: [{"position": 5, "problem": "…"}].
-- Confirm is offered only while it is empty.
ALTER TABLE rollback_runs ADD COLUMN preflight jsonb NOT NULL DEFAULT '[]';
