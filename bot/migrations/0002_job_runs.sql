-- Scheduled work claimed per slot: the replica whose INSERT succeeds runs the job for that slot, every other
-- replica (or a restarted bot) sees the row and skips it. The weekly handoff, SLA nudges and retention all use it.
CREATE TABLE job_runs (
    job          text NOT NULL,
    slot         timestamptz NOT NULL,           -- the due time this run is for
    claimed_by   text NOT NULL,                  -- host:pid of the replica that claimed it
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    error        text,
    PRIMARY KEY (job, slot)
);
