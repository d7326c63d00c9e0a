-- The weekly on-call handoff (Mira runbook §1 On-Call Rotation → Handoff Checklist). 0005 is left for the rollback
-- work; the runner applies whatever numbered file it has not applied yet, so the gap is harmless.

-- One checklist per rotation. The INSERT is the claim: two replicas, a restart at 09:00 or a bot that starts at
-- 09:40 all try it, and only the one whose row went in posts (a claim whose poster died is taken over once stale).
CREATE TABLE handoffs (
    id            bigserial PRIMARY KEY,
    rotation      timestamptz NOT NULL UNIQUE,   -- the rotation (cron slot, UTC) this checklist is for
    channel       text NOT NULL,                 -- as configured (ALERTS_CHANNEL)
    channel_id    text,                          -- as Slack answered
    ts            text,                          -- the checklist message, edited in place
    claimed_by    text NOT NULL,
    claimed_at    timestamptz NOT NULL,
    posted_at     timestamptz,
    posted_by     text,                          -- NULL: the schedule; else the Slack user of /oncall handoff
    items         jsonb NOT NULL,                -- [{"text", "evidence"}] as posted
    roster        jsonb,                         -- outgoing, incoming, secondary, escalation as resolved at the post
    evidence      jsonb,                         -- per evidence kind: what was shown under its item
    version       integer NOT NULL DEFAULT 0,    -- bumped by each tick/untick: message edits converge on the newest
    completed_at  timestamptz
);

-- Who ticked what, when. An untick deletes the row; both are in audit_log with before and after.
CREATE TABLE handoff_ticks (
    handoff_id  bigint NOT NULL REFERENCES handoffs (id),
    item        integer NOT NULL,                -- 1-based, as numbered in the message
    ticked_by   text NOT NULL,
    ticked_at   timestamptz NOT NULL,
    PRIMARY KEY (handoff_id, item)
);

-- Messages in the checklist's thread (reminders, the completion summary, test reports), each claimed by its key
-- before it is posted: at most once across replicas and restarts.
CREATE TABLE handoff_replies (
    handoff_id  bigint NOT NULL REFERENCES handoffs (id),
    key         text NOT NULL,                   -- reminder:+4h, reminder:17:00, complete, pagerduty_test:7:result …
    claimed_at  timestamptz NOT NULL,
    ts          text,
    PRIMARY KEY (handoff_id, key)
);

-- "Test PagerDuty integration": an Events API v2 trigger whose webhook must come back. One running test per
-- checklist (a double click or a second replica is told it is running); the lease lets another replica finish a
-- test whose waiter died.
CREATE TABLE handoff_pagerduty_tests (
    id             bigserial PRIMARY KEY,
    handoff_id     bigint NOT NULL REFERENCES handoffs (id),
    service        text NOT NULL,
    dedup_key      text NOT NULL UNIQUE,         -- the Events API dedup_key = the incident's incident_key
    requested_by   text NOT NULL,
    status         text NOT NULL,                -- sending | waiting | ok | broken | failed
    requested_at   timestamptz NOT NULL,
    deadline       timestamptz NOT NULL,
    sent_at        timestamptz,                  -- database clock just before the Events API call
    webhook_id     bigint,                       -- pd_webhooks.id of the matching incident.triggered
    received_at    timestamptz,                  -- when that webhook was stored (database clock)
    incident_id    text,
    claimed_until  timestamptz,
    detail         text,                         -- PagerDuty's words on failure
    finished_at    timestamptz
);
CREATE UNIQUE INDEX handoff_pagerduty_tests_running
    ON handoff_pagerduty_tests (handoff_id) WHERE status IN ('sending', 'waiting');

-- The incident_key of each stored webhook, so the test above finds its webhook without parsing bodies.
ALTER TABLE pd_webhooks ADD COLUMN incident_key text;
CREATE INDEX pd_webhooks_incident_key ON pd_webhooks (incident_key) WHERE incident_key IS NOT NULL;
