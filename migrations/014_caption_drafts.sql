-- What the caption editor holds but has not saved (lorad.captions.drafts): written as the user
-- types, so a quit or a crash loses nothing; offered back when the clip is edited again.
CREATE TABLE caption_drafts (
    clip_id     INTEGER PRIMARY KEY REFERENCES clips(id) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    base_id     INTEGER REFERENCES caption_versions(id) ON DELETE SET NULL, -- version it edits
    updated_at  REAL NOT NULL
);
