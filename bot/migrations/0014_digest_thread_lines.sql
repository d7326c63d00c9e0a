-- Issue 16. During a storm the events of an incident listed in a storm digest are lines in the DIGEST's thread,
-- many incidents per reply. Each event keeps its claim row in incident_replies: `digest_id` says the line belongs
-- to that digest's thread, `line` holds its words as queued, `digest_seq` its place in the thread (an incident's
-- events in order). A queued line has no `part_of` yet; a reply being posted gives its lines `part_of` (its first
-- line's key) and `position`, as for a timeline reply (0012), and `ts` once Slack took it.
CREATE SEQUENCE incident_replies_digest_seq;
ALTER TABLE incident_replies ADD COLUMN digest_id bigint;
ALTER TABLE incident_replies ADD COLUMN line text;
ALTER TABLE incident_replies ADD COLUMN digest_seq bigint;
CREATE INDEX incident_replies_digest_queue ON incident_replies (digest_id, digest_seq)
    WHERE digest_id IS NOT NULL AND ts IS NULL;

-- When the digest first showed the incident's line: its lines in the digest's thread wait until then (a reply
-- about an incident the digest does not list yet would read as about nothing).
ALTER TABLE incident_roots ADD COLUMN listed_at timestamptz;
