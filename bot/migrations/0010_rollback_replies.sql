-- Replies in a rollback's thread (a step started, done or failed, a sign-off request or reminder, a takeover),
-- each claimed by its key before it is posted (bot/slack_once.py `post_once`): at most once across replicas and
-- restarts, and once even when Slack stored a reply but its answer was lost. A claim without `ts` is an attempt
-- of unknown outcome, looked up in the thread by its metadata once stale.
CREATE TABLE rollback_replies (
    run_id      bigint NOT NULL REFERENCES rollback_runs (id),
    key         text NOT NULL,                   -- step:2:1:started, step:2:1:done, step:4:1:reminder, resumed:…
    claimed_at  timestamptz NOT NULL,
    ts          text,
    PRIMARY KEY (run_id, key)
);
