-- Slack requests already handled, while their signature is still valid (Slack's 5-minute window), and the
-- incident buttons' click locks: the Postgres side of `bot/slack_replays.py`, used when Redis does not answer.
-- A key is claimed by INSERT … ON CONFLICT, and an expired row is claimed again in place; `expires_at` is
-- decided by the bot's clock (BotContext.clock), never by the database's now().
CREATE TABLE slack_replays (
    key text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX slack_replays_expires ON slack_replays (expires_at);
