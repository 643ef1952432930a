-- Runs name their trainer (lorad.training.trainers); every run so far was musubi-tuner's.
ALTER TABLE runs ADD COLUMN trainer TEXT NOT NULL DEFAULT 'musubi';
-- The saved state a resumed run continues from, once found on the pod (NULL: not resolved).
ALTER TABLE runs ADD COLUMN resume_from TEXT;
UPDATE runs SET resume_from = 'resolved before this column existed'
 WHERE parent_run_id IS NOT NULL AND config LIKE '%"--resume"%';
