-- Scores a generation's command printed (evaluation on the pod: one JSON line of numbers, such
-- as {"sync_confidence": 7.2, "fad": 1.9}): kept per generation, averaged per checkpoint beside
-- its ratings, and usable to rank checkpoints (`lorad rate rank --by NAME`).
ALTER TABLE generations ADD COLUMN metrics TEXT;
