-- Caption undo walks a chain: each version records the version that was current before it
-- (for an undo: the one before the version it undid), so repeated undo keeps going back and
-- nothing is ever deleted.
ALTER TABLE caption_versions ADD COLUMN prev_id INTEGER REFERENCES caption_versions(id);
CREATE INDEX caption_versions_batch ON caption_versions(batch_id);
