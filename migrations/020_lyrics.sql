-- A track's lyrics (audio datasets: ACE-Step's norm_lyrics), versioned like captions: every
-- change a new row, nothing overwritten; a track without a row sings nothing ([Instrumental]).
CREATE TABLE lyrics_versions (
    id          INTEGER PRIMARY KEY,
    clip_id     INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('typed', 'import', 'undo')),
    created_at  REAL NOT NULL,
    prev_id     INTEGER REFERENCES lyrics_versions(id)
);
CREATE INDEX lyrics_versions_clip ON lyrics_versions(clip_id, id);
