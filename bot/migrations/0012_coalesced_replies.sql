-- Issue 16. Several pending events of one incident are posted as one thread reply (a short timeline). Each event
-- keeps its own claim row, so a redelivery of any of them finds it; `part_of` names the reply's first event (its
-- metadata key), `position` the event's line in it. A row without `part_of` is a reply of its own, as before.
ALTER TABLE incident_replies ADD COLUMN part_of text;
ALTER TABLE incident_replies ADD COLUMN position smallint;
CREATE INDEX incident_replies_part_of ON incident_replies (part_of, channel) WHERE part_of IS NOT NULL;
