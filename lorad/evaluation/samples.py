"""The `training.samples` job: what a trainer made by itself at a step (lorad.training.samples)
becomes a completed generation of the checkpoint saved at that step, so the Generations
screen plays it and its rating counts in that checkpoint's rank. A sample whose checkpoint is
not recorded yet waits (the job runs again with the run's next listing, and the daemon's
periodic check catches any left)."""

from __future__ import annotations

import sqlite3

from lorad.core.handlers import JobContext, periodic, register
from lorad.core.store import transaction
from lorad.generation import generations
from lorad.training import checkpoints, samples


def register_samples(conn: sqlite3.Connection) -> int:
    """Make generations of the samples whose checkpoint is known; returns how many."""
    made = 0
    by_run: dict[int, dict[int, int]] = {}
    for sample in samples.unlinked(conn):
        if sample.step is None or not sample.local_path:
            continue
        steps = by_run.setdefault(sample.run_id, {
            c.step: c.id for c in checkpoints.for_run(conn, sample.run_id)
            if c.step is not None})
        checkpoint_id = steps.get(sample.step)
        if checkpoint_id is None:
            continue
        with transaction(conn):
            gen_id = generations.record_sample(conn, checkpoint_id=checkpoint_id,
                                               path=sample.local_path, prompt=sample.prompt)
            samples.link(conn, sample.id, gen_id)
        made += 1
    return made


@register(samples.REGISTER_KIND, concurrency=1)
async def run(ctx: JobContext):
    return {"generations": register_samples(ctx.conn)}


@periodic
def catch_up(conn: sqlite3.Connection) -> None:
    register_samples(conn)
