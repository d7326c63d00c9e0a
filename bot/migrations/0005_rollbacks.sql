-- One row per /rollback request. The status moves pending → running → done | failed ⇄ running | aborted, or
-- pending → cancelled | expired. Every move is a conditional UPDATE, so a double click, a Slack retry or a second
-- replica moves it once. The runner holds a lease (lease_owner, lease_until) while it drives a run; a run whose
-- lease lapsed (its replica died) is taken over by another runner, which says so in the thread.
CREATE TABLE rollback_runs (
    id             bigserial PRIMARY KEY,
    service        text NOT NULL,
    plan           text NOT NULL,
    reason         text,
    requested_by   text NOT NULL,
    requested_in   text,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'running', 'failed', 'done', 'cancelled', 'expired', 'aborted')),
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    confirmed_by   text,
    confirmed_at   timestamptz,
    ended_by       text,                    -- who cancelled or aborted
    finished_at    timestamptz,
    channel        text,                    -- the visible request message: the run's root, its thread
    message_ts     text,
    lease_owner    text,
    lease_until    timestamptz,
    summary_posted boolean NOT NULL DEFAULT false
);
-- One rollback at a time per service: a second confirmation while one runs (or waits on a failed step) is refused.
CREATE UNIQUE INDEX rollback_runs_one_active ON rollback_runs (service) WHERE status IN ('running', 'failed');
CREATE INDEX rollback_runs_by_service ON rollback_runs (service, id DESC);

-- The run's steps, copied from the catalog when it was requested (`spec`), so a catalog edit mid-run changes
-- nothing. pending → running → done | failed; failed → pending on Retry; pending/running → skipped on Abort.
CREATE TABLE rollback_steps (
    run_id       bigint NOT NULL REFERENCES rollback_runs (id),
    position     int NOT NULL,
    kind         text NOT NULL,
    title        text NOT NULL,
    spec         jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
    attempts     int NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    result       text,                      -- what happened, in words: "MIRA_COPILOT_ENABLED true → false", the error
    detail       jsonb,
    checked_at   timestamptz,               -- a wait step's last health check
    approved_by  text,                      -- a manual step's sign-off
    reminded_at  timestamptz,               -- a manual step's reminder, sent once
    PRIMARY KEY (run_id, position)
);
