-- Every mutation and every refusal: who, what, before, after, when, and what the backend said.
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,                 -- Slack user ID
    action   text NOT NULL,                 -- flag.set, flag.unset, flag.confirm, flag.cancel, flag.refused, …
    service  text,
    target   text,                          -- a flag name, a change id, …
    before   jsonb,
    after    jsonb,
    outcome  text NOT NULL,                 -- ok | failed | refused | pending | cancelled
    detail   jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_target ON audit_log (service, target, at DESC);

-- One row per requested change of one or more flags (a set, a preset, a rollout stage, a revert). Its id is what
-- people type in `/flag revert N`. The status moves pending → applying → applied | failed, or pending → cancelled;
-- every move is a conditional UPDATE, so a double click or a second replica cannot apply a change twice.
CREATE TABLE flag_changes (
    id               bigserial PRIMARY KEY,
    service          text NOT NULL,
    kind             text NOT NULL,           -- set | unset | preset | rollout | revert
    label            text,                    -- the preset or rollout stage, for people
    requested_by     text NOT NULL,
    requested_in     text,
    status           text NOT NULL,
    changes          jsonb NOT NULL,          -- [{"flag", "before": {"present", "value"}, "after": "x" | null}]
    backend_response jsonb,
    reverts          bigint REFERENCES flag_changes (id),
    reverted_by      bigint REFERENCES flag_changes (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    decided_by       text,
    decided_at       timestamptz,
    applied_at       timestamptz
);

-- The last value the bot set, per service and flag. Supabase lists secrets as digests, not values: comparing the
-- digest of this value with the listed one tells whether someone changed the flag outside the bot.
CREATE TABLE flag_values (
    service    text NOT NULL,
    flag       text NOT NULL,
    value      text,                          -- NULL: the bot unset it
    change_id  bigint REFERENCES flag_changes (id),
    set_by     text NOT NULL,
    set_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, flag)
);
