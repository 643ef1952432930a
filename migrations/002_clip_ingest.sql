-- Clip ingest: stable output names, source identity for re-runs, analysis facts, and a unique
-- source key that treats a whole-file clip (no range) as one value (NULLs are all distinct).
ALTER TABLE clips ADD COLUMN name TEXT;                 -- output basename stem, unique per dataset
ALTER TABLE clips ADD COLUMN note TEXT;                 -- why a flag is set, e.g. "exact duplicate of clip 3"
ALTER TABLE clips ADD COLUMN source_size INTEGER;
ALTER TABLE clips ADD COLUMN source_mtime REAL;
ALTER TABLE clips ADD COLUMN media_kind TEXT;           -- video | image
ALTER TABLE clips ADD COLUMN profile_fingerprint TEXT;  -- profile the media was made with
ALTER TABLE clips ADD COLUMN analysis TEXT;             -- JSON: motion, shift, letterbox numbers
ALTER TABLE clips ADD COLUMN job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL;
ALTER TABLE clips ADD COLUMN reviewed_at REAL;

CREATE UNIQUE INDEX clips_source ON clips(dataset_id, source_path, IFNULL(source_range, ''));
CREATE UNIQUE INDEX clips_name ON clips(dataset_id, name);
CREATE INDEX clips_phash ON clips(dataset_id, phash);
