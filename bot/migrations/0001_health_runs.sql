-- Every /health run: who asked, where the answer was posted, and what each probe said.
-- The message coordinates let the "Run again" button update the same message, and the results are the
-- evidence later features show (the weekly handoff's "current /health summary").
CREATE TABLE health_runs (
    id              bigserial PRIMARY KEY,
    requested_by    text NOT NULL,
    scope           text,                       -- a service name, or NULL for every service
    channel         text NOT NULL,              -- where the command was typed
    message_channel text,                       -- where the answer was posted (channel ID from Slack)
    message_ts      text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    results         jsonb
);
CREATE INDEX health_runs_started_at ON health_runs (started_at DESC);
