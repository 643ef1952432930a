-- Training over SSH: where a pod keeps lorad's files, what a run left on the pod, live figures.
ALTER TABLE pods ADD COLUMN remote_dir TEXT NOT NULL DEFAULT '/workspace/lorad';
ALTER TABLE pods ADD COLUMN info TEXT NOT NULL DEFAULT '{}';      -- GPU, disk, python (pod check)
ALTER TABLE pods ADD COLUMN last_seen REAL;
ALTER TABLE runs ADD COLUMN remote_dir TEXT;                       -- this run's folder on the pod
ALTER TABLE runs ADD COLUMN output_name TEXT;
ALTER TABLE runs ADD COLUMN job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL;
ALTER TABLE runs ADD COLUMN avr_loss REAL;
ALTER TABLE runs ADD COLUMN rate REAL;                             -- steps per second
ALTER TABLE runs ADD COLUMN remaining REAL;                        -- seconds, from the bar
ALTER TABLE runs ADD COLUMN log_tail TEXT NOT NULL DEFAULT '';
ALTER TABLE checkpoints ADD COLUMN name TEXT;
CREATE UNIQUE INDEX checkpoints_run_path ON checkpoints(run_id, remote_path);
CREATE INDEX runs_state ON runs(state);
