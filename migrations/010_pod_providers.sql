-- lorad: rebuilds tables
-- Pod providers are plugins (lorad.training.providers): the provider column names any of them,
-- so its CHECK (provider IN ('ssh','runpod')) goes. Same columns, same order, same rows.
CREATE TABLE pods_new (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    provider    TEXT NOT NULL,
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
    updated_at  REAL NOT NULL,
    remote_dir  TEXT NOT NULL DEFAULT '/workspace/lorad',
    info        TEXT NOT NULL DEFAULT '{}',          -- GPU, disk, python (pod check)
    last_seen   REAL
);
INSERT INTO pods_new SELECT id, name, provider, provider_id, ssh_user, ssh_host, ssh_port,
    key_file, host_key, state, cost_per_hour, policy, started_at, updated_at, remote_dir, info,
    last_seen FROM pods;
DROP TABLE pods;
ALTER TABLE pods_new RENAME TO pods;
