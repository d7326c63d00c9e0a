-- When a Slack post of a root, a storm digest or a timer started, so that a worker that died between Slack
-- accepting the post and the `ts` being stored is noticed (the attempt is older than STALE_CLAIM_SECONDS and no
-- `ts` is recorded) and the message is looked up in Slack by its metadata before anyone posts it again.
-- incident_replies needs no new column: its `claimed_at` is set when its post starts.
ALTER TABLE incident_roots ADD COLUMN posting_at timestamptz;   -- NULL: no post attempted (e.g. still in a digest)
UPDATE incident_roots SET posting_at = claimed_at WHERE ts IS NULL AND in_digest IS NULL;

ALTER TABLE storm_digests ADD COLUMN posting_at timestamptz;

-- A timer is claimed by `fired_at` and finished by `done_at`: a claim older than the stale window without
-- `done_at` belonged to a worker that died, and is taken over (its reply is posted once by key).
ALTER TABLE incident_timers ADD COLUMN done_at timestamptz;
UPDATE incident_timers SET done_at = fired_at WHERE fired_at IS NOT NULL;
DROP INDEX incident_timers_due;
CREATE INDEX incident_timers_due ON incident_timers (due_at) WHERE done_at IS NULL AND cancelled_at IS NULL;
