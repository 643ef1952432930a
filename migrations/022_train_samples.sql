-- What a trainer makes by itself while it trains (ACE-Step's eval audio, every
-- every_plot_step): pulled with the run, each one then a completed generation of the
-- checkpoint saved at its step (generation_id), so it is played, rated and ranked like one.
CREATE TABLE train_samples (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step          INTEGER,
    name          TEXT NOT NULL,
    remote_path   TEXT NOT NULL,
    local_path    TEXT,
    prompt        TEXT,
    generation_id INTEGER REFERENCES generations(id),
    created_at    REAL NOT NULL,
    UNIQUE (run_id, remote_path)
);
