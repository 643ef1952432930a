-- What a pod has, as `lorad pod check` found it: the trainer options that say where things are
-- (a trainer's checkout, its python) and the model files, reused as defaults by later checks
-- and runs on the pod. {"trainers": {"musubi": {"musubi_dir": "..."}}, "models": ["..."]}
ALTER TABLE pods ADD COLUMN setup TEXT NOT NULL DEFAULT '{}';
