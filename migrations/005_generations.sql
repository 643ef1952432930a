-- Generations: what was asked and of which LoRA, the job following the request, checks.
ALTER TABLE generations ADD COLUMN prompt TEXT;
ALTER TABLE generations ADD COLUMN job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL;
ALTER TABLE generations ADD COLUMN dataset_id INTEGER REFERENCES datasets(id);
ALTER TABLE generations ADD COLUMN submitted_at REAL;
ALTER TABLE generations ADD COLUMN finished_at REAL;
ALTER TABLE loras ADD COLUMN files TEXT NOT NULL DEFAULT '{}';      -- filename -> URL
ALTER TABLE loras ADD COLUMN dataset_version_id INTEGER REFERENCES dataset_versions(id);
CREATE INDEX generations_sweep ON generations(sweep_id);
CREATE INDEX generations_status ON generations(status);
CREATE INDEX ratings_generation ON ratings(generation_id, id);
