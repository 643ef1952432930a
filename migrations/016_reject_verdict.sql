-- lorad: rebuilds tables
-- A generation can be rejected (a bad outcome for its checkpoint's rank, as retake is): the
-- verdict CHECK gains 'reject'. SQLite cannot change a CHECK, so the table is rebuilt: same
-- columns, same order, same rows (ids kept, so "the latest rating" stays the latest), and its
-- index again. No trigger or view reads ratings; no table references it.
CREATE TABLE ratings_new (
    id            INTEGER PRIMARY KEY,
    generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
    stars         INTEGER CHECK (stars IS NULL OR stars BETWEEN 1 AND 5),
    verdict       TEXT CHECK (verdict IS NULL OR verdict IN ('approve','needs_review','retake',
                                                             'reject')),
    tags          TEXT NOT NULL DEFAULT '[]',
    note          TEXT,
    created_at    REAL NOT NULL                      -- ratings are appended, never overwritten
);
INSERT INTO ratings_new (id, generation_id, stars, verdict, tags, note, created_at)
    SELECT id, generation_id, stars, verdict, tags, note, created_at FROM ratings;
DROP TABLE ratings;
ALTER TABLE ratings_new RENAME TO ratings;
CREATE INDEX ratings_generation ON ratings(generation_id, id);
