-- PagerDuty V3 webhooks, stored before they are acknowledged: the outbox the delivery worker drains.
CREATE TABLE pd_webhooks (
    id              bigserial PRIMARY KEY,
    webhook_id      text,                       -- X-Webhook-Id header
    event_id        text,                       -- event.id; NULL when the body was not a V3 envelope
    event_type      text,
    incident_id     text,
    service_id      text,
    occurred_at     timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    body            bytea NOT NULL,             -- exactly what was signed
    status          text NOT NULL,              -- pending | delivered | ignored | malformed | failed
    reason          text,                       -- why ignored / the last delivery error
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    claimed_until   timestamptz,
    delivered_at    timestamptz
);
CREATE UNIQUE INDEX pd_webhooks_event_id ON pd_webhooks (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX pd_webhooks_pending ON pd_webhooks (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX pd_webhooks_incident ON pd_webhooks (incident_id, occurred_at);

-- What the bot knows of each incident: the newest snapshot (by occurred_at) and when its root needs an edit.
CREATE TABLE incidents (
    id                 text PRIMARY KEY,        -- PagerDuty's incident id
    service            text,                    -- the catalog service, when it matched
    number             integer,
    title              text,
    status             text,
    urgency            text,
    priority           text,
    snapshot           jsonb NOT NULL,          -- the newest incident object seen
    snapshot_at        timestamptz NOT NULL,    -- its occurred_at: an older event never overwrites it
    triggered_at       timestamptz,
    acknowledged_at    timestamptz,
    resolved_at        timestamptz,
    root_dirty_since   timestamptz,             -- the roots need a chat.update (debounced)
    last_event_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- One root message per incident and channel, claimed before it is posted so two workers never post two.
CREATE TABLE incident_roots (
    incident_id  text NOT NULL REFERENCES incidents (id),
    channel      text NOT NULL,                 -- as configured (#name or ID)
    channel_id   text,                          -- as Slack answered
    ts           text,
    claimed_by   text NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    posted_at    timestamptz,
    in_digest    bigint,                        -- represented in a storm digest instead (storm_digests.id)
    PRIMARY KEY (incident_id, channel)
);

-- One thread reply per event and channel, claimed the same way.
CREATE TABLE incident_replies (
    event_id     text NOT NULL,
    channel      text NOT NULL,
    incident_id  text NOT NULL,
    kind         text NOT NULL,                 -- the event type, or nudge / reminder / postmortem
    ts           text,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    posted_at    timestamptz,
    PRIMARY KEY (event_id, channel)
);

-- Runbook SLAs and reminders, one row per incident and kind, fired by claiming `fired_at`: a restart or a second
-- replica neither loses nor repeats one. Cancelled when the incident moves past what the timer waits for.
CREATE TABLE incident_timers (
    incident_id  text NOT NULL REFERENCES incidents (id),
    kind         text NOT NULL,                 -- ack_nudge | resolve_reminder | postmortem_reminder
    due_at       timestamptz NOT NULL,
    fired_at     timestamptz,
    cancelled_at timestamptz,
    PRIMARY KEY (incident_id, kind)
);
CREATE INDEX incident_timers_due ON incident_timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;

-- What people did through the bot's buttons, for the thread and the post-mortem (e.g. the resolution note).
CREATE TABLE incident_actions (
    id           bigserial PRIMARY KEY,
    incident_id  text NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,                 -- acknowledge | resolve | note | postmortem_scheduled
    detail       text,
    at           timestamptz NOT NULL DEFAULT now()
);

-- Storm digests: one message per channel and storm, listing the incidents that arrived too fast for a root each.
CREATE TABLE storm_digests (
    id          bigserial PRIMARY KEY,
    channel     text NOT NULL,
    channel_id  text,
    ts          text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    dirty_since timestamptz
);
CREATE UNIQUE INDEX storm_digests_open ON storm_digests (channel) WHERE ended_at IS NULL;
