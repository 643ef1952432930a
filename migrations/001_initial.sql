-- The first schema: every entity of the lifecycle, so later features fill in rows, not tables.
-- Lineage runs clip -> caption_version -> dataset_version -> run -> checkpoint -> generation -> rating.

CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    profile     TEXT NOT NULL,
    trigger     TEXT,
    settings    TEXT NOT NULL DEFAULT '{}',          -- JSON: caption rules, eval prompts...
    created_at  REAL NOT NULL
);

CREATE TABLE clips (
    id            INTEGER PRIMARY KEY,
    dataset_id    INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    source_path   TEXT NOT NULL,
    source_hash   TEXT,
    source_range  TEXT,                              -- JSON [start_s, end_s] for scene splits
    duplicate_of  INTEGER REFERENCES clips(id),
    state         TEXT NOT NULL DEFAULT 'new'
                  CHECK (state IN ('new','processing','ready','approved','rejected','error')),
    error         TEXT,
    media_path    TEXT,
    filmstrip_path TEXT,
    width         INTEGER,
    height        INTEGER,
    fps           REAL,
    frames        INTEGER,
    duration      REAL,
    motion        REAL,
    flags         TEXT NOT NULL DEFAULT '[]',        -- JSON list of flag names
    phash         TEXT,
    probe         TEXT,                              -- JSON ffprobe facts of the source
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    UNIQUE (dataset_id, source_path, source_range)
);
CREATE INDEX clips_dataset_state ON clips(dataset_id, state);
CREATE INDEX clips_hash ON clips(source_hash);

CREATE TABLE caption_versions (
    id          INTEGER PRIMARY KEY,
    clip_id     INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('typed','template','bulk','import','auto','undo')),
    batch_id    TEXT,                                -- one bulk edit = one batch, undone together
    created_at  REAL NOT NULL
);
CREATE INDEX caption_versions_clip ON caption_versions(clip_id, id);

CREATE TABLE dataset_versions (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL,
    manifest    TEXT NOT NULL,                       -- JSON: clip ids, caption version ids, profile
    export_path TEXT,
    created_at  REAL NOT NULL,
    UNIQUE (dataset_id, content_hash)
);

CREATE TABLE pods (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    provider    TEXT NOT NULL CHECK (provider IN ('ssh','runpod')),
    provider_id TEXT,
    ssh_user    TEXT,
    ssh_host    TEXT,
    ssh_port    INTEGER,
    key_file    TEXT,
    host_key    TEXT,                                -- pinned on first connect per start
    state       TEXT NOT NULL DEFAULT 'unknown',
    cost_per_hour REAL NOT NULL DEFAULT 0,
    policy      TEXT NOT NULL DEFAULT '{}',
    started_at  REAL,
    updated_at  REAL NOT NULL
);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    dataset_version_id INTEGER REFERENCES dataset_versions(id),
    pod_id        INTEGER REFERENCES pods(id),
    parent_run_id INTEGER REFERENCES runs(id),       -- set on resume
    name          TEXT NOT NULL,
    config        TEXT NOT NULL DEFAULT '{}',
    state         TEXT NOT NULL DEFAULT 'created',
    stage         TEXT,
    step          INTEGER,
    total_steps   INTEGER,
    epoch         INTEGER,
    step_offset   INTEGER NOT NULL DEFAULT 0,        -- musubi resets counters on resume
    log_offset    INTEGER NOT NULL DEFAULT 0,
    remote_pid    INTEGER,
    error         TEXT,
    budget        REAL,
    created_at    REAL NOT NULL,
    started_at    REAL,
    ended_at      REAL
);

CREATE TABLE loss_points (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step     INTEGER NOT NULL,
    loss     REAL,
    avr_loss REAL,
    at       REAL NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER REFERENCES runs(id),
    remote_path TEXT,
    local_path  TEXT,
    step        INTEGER,
    epoch       INTEGER,
    sha256      TEXT,
    size        INTEGER,
    metadata    TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL DEFAULT 'remote',
    created_at  REAL NOT NULL
);

CREATE TABLE loras (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    checkpoint_id INTEGER REFERENCES checkpoints(id),
    url           TEXT,
    repo          TEXT,
    trigger       TEXT,
    base_model    TEXT,
    expert        TEXT CHECK (expert IS NULL OR expert IN ('high','low','both')),
    created_at    REAL NOT NULL
);

CREATE TABLE generations (
    id            INTEGER PRIMARY KEY,
    parent_id     INTEGER REFERENCES generations(id), -- a retake points at the original
    sweep_id      TEXT,
    lora_id       INTEGER REFERENCES loras(id),
    checkpoint_id INTEGER REFERENCES checkpoints(id),
    endpoint      TEXT NOT NULL,
    params        TEXT NOT NULL DEFAULT '{}',
    scale         REAL,
    seed          INTEGER,
    request_id    TEXT,
    urls          TEXT NOT NULL DEFAULT '{}',         -- status/response/cancel URLs from fal
    status        TEXT NOT NULL DEFAULT 'draft',
    output_path   TEXT,
    checks        TEXT NOT NULL DEFAULT '{}',
    inference_time REAL,
    cost          REAL,
    error         TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);

CREATE TABLE ratings (
    id            INTEGER PRIMARY KEY,
    generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
    stars         INTEGER CHECK (stars IS NULL OR stars BETWEEN 1 AND 5),
    verdict       TEXT CHECK (verdict IS NULL OR verdict IN ('approve','needs_review','retake')),
    tags          TEXT NOT NULL DEFAULT '[]',
    note          TEXT,
    created_at    REAL NOT NULL                      -- ratings are appended, never overwritten
);

CREATE TABLE cost_entries (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,                       -- pod_time, generation, ...
    pod_id      INTEGER REFERENCES pods(id),
    run_id      INTEGER REFERENCES runs(id),
    generation_id INTEGER REFERENCES generations(id),
    amount      REAL NOT NULL,
    detail      TEXT,
    at          REAL NOT NULL
);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL DEFAULT '{}',
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued','running','succeeded','failed','cancelled')),
    parent_id     INTEGER REFERENCES jobs(id),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 5,
    run_after     REAL NOT NULL DEFAULT 0,           -- backoff: not claimable before this
    lease_owner   TEXT,
    lease_expires REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress      REAL,
    progress_msg  TEXT,
    result        TEXT,
    error         TEXT,
    created_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    updated_at    REAL NOT NULL
);
CREATE INDEX jobs_claim ON jobs(state, kind, run_after);

CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    at       REAL NOT NULL,
    kind     TEXT NOT NULL,
    subject  TEXT,
    message  TEXT NOT NULL
);
