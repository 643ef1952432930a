-- Shot chains (lorad.generation.chains): image-to-video shots generated in a row, each able to
-- start from the previous one's last frame, ending in one concatenated video. A shot's
-- generations point at their chain; the newest one of a shot is the shot.
CREATE TABLE chains (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    spec        TEXT NOT NULL,                  -- the parsed shot list, as JSON
    folder      TEXT NOT NULL,                  -- continuity frames, the final video, manifest
    status      TEXT NOT NULL DEFAULT 'queued', -- queued | running | completed | failed | cancelled
    error       TEXT,
    shots       TEXT NOT NULL DEFAULT '[]',     -- the current generation id of each shot (or null)
    output_path TEXT,
    manifest    TEXT NOT NULL DEFAULT '{}',
    job_id      INTEGER REFERENCES jobs(id),
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
ALTER TABLE generations ADD COLUMN chain_id INTEGER REFERENCES chains(id);
ALTER TABLE generations ADD COLUMN shot_index INTEGER;
CREATE INDEX generations_chain ON generations(chain_id, shot_index);
-- How each generation and training run was made (lorad and tool versions, effective parameters,
-- check thresholds): queryable here, and written beside the output.
ALTER TABLE generations ADD COLUMN manifest TEXT NOT NULL DEFAULT '{}';
-- The output checks asked for this generation (check profile, min frame difference); empty:
-- the workspace's [generations] settings at the time it ran.
ALTER TABLE generations ADD COLUMN check_settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN manifest TEXT NOT NULL DEFAULT '{}';
