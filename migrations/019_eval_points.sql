-- The loss a trainer computes on held-out data (diffusion-pipe's eval datasets), one value per
-- evaluation pass at the step it ran: a second curve beside the training loss.
CREATE TABLE eval_points (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step     INTEGER NOT NULL,
    loss     REAL,
    at       REAL NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
