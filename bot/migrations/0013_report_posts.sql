-- Scheduled checks (a service's catalog `reports:`, handlers/reports/): one message per (service, report, slot).
-- The scheduler's job_runs claim makes one replica run a slot; this row claims the message itself, so a replica
-- taking the slot over after a lease expiry, or a bot restarted mid-run, finds the post (or its attempt) and never
-- posts it twice (bot/slack_once.py `post_once`: claim → post with metadata → record ts → look up when unsure).
CREATE TABLE report_posts (
    service     text NOT NULL,
    report      text NOT NULL,
    slot        timestamptz NOT NULL,            -- the cron slot (UTC) this message is for
    channel     text NOT NULL,                   -- as resolved from the report's `channel`
    claimed_by  text NOT NULL,
    claimed_at  timestamptz NOT NULL,            -- when the current post attempt began
    channel_id  text,                            -- as Slack answered
    ts          text,
    posted_at   timestamptz,
    failed      text[],                          -- the failing checks as posted ({} on a quiet day)
    PRIMARY KEY (service, report, slot)
);

-- The diagnostics posted in a failing report's thread (`on_failure_thread`), each claimed by its query before it
-- is posted: at most once per report message across replicas and restarts.
CREATE TABLE report_replies (
    service     text NOT NULL,
    report      text NOT NULL,
    slot        timestamptz NOT NULL,
    query       text NOT NULL,
    claimed_at  timestamptz NOT NULL,
    ts          text,
    PRIMARY KEY (service, report, slot, query),
    FOREIGN KEY (service, report, slot) REFERENCES report_posts (service, report, slot)
);
