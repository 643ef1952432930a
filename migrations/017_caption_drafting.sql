-- lorad: rebuilds tables
-- Captions drafted by a vision model (lorad captions draft): a draft is a caption version whose
-- source is 'draft:<model>' until a person saves it or accepts it as is ('accepted'); the
-- paid request that made it is a generation row pointing at its clip (generations.clip_id), so
-- it is submitted once, booked in the ledger and survives a daemon crash like any generation.
-- SQLite cannot change a CHECK: caption_versions is rebuilt with the same columns, rows and ids
-- (caption_drafts.base_id and exported manifests name version ids) and its indexes again.
CREATE TABLE caption_versions_new (
    id          INTEGER PRIMARY KEY,
    clip_id     INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('typed','template','bulk','import','auto','undo',
                                                'accepted') OR source LIKE 'draft:_%'),
    batch_id    TEXT,                                -- one bulk edit = one batch, undone together
    created_at  REAL NOT NULL,
    prev_id     INTEGER REFERENCES caption_versions(id)
);
INSERT INTO caption_versions_new (id, clip_id, text, source, batch_id, created_at, prev_id)
    SELECT id, clip_id, text, source, batch_id, created_at, prev_id FROM caption_versions;
DROP TABLE caption_versions;
ALTER TABLE caption_versions_new RENAME TO caption_versions;
CREATE INDEX caption_versions_clip ON caption_versions(clip_id, id);
CREATE INDEX caption_versions_batch ON caption_versions(batch_id);

ALTER TABLE generations ADD COLUMN clip_id INTEGER REFERENCES clips(id) ON DELETE SET NULL;
-- how the draft is to be written: {"model", "base_version_id", "overwrite", "rules"} (JSON)
ALTER TABLE generations ADD COLUMN draft TEXT NOT NULL DEFAULT '{}';
CREATE INDEX generations_clip ON generations(clip_id);
