-- Every status a generation passes through, with when: written by triggers so no code path
-- can change a status without leaving a trace.
CREATE TABLE generation_events (
    id            INTEGER PRIMARY KEY,
    generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
    status        TEXT NOT NULL,
    detail        TEXT,
    at            REAL NOT NULL
);
CREATE INDEX generation_events_generation ON generation_events(generation_id, id);

CREATE TRIGGER generation_created AFTER INSERT ON generations BEGIN
    INSERT INTO generation_events (generation_id, status, detail, at)
    VALUES (NEW.id, NEW.status, NULL, NEW.created_at);
END;

CREATE TRIGGER generation_status_changed AFTER UPDATE OF status ON generations
WHEN NEW.status IS NOT OLD.status BEGIN
    INSERT INTO generation_events (generation_id, status, detail, at)
    VALUES (NEW.id, NEW.status, NEW.error, NEW.updated_at);
END;
