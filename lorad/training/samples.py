"""What a trainer makes by itself while it trains (ACE-Step's eval audio): pulled with the run
and kept here until each becomes a generation of the checkpoint saved at its step (the
`training.samples` job of lorad.evaluation), to be played, rated and ranked like one."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from lorad.core import store

REGISTER_KIND = "training.samples"  # the job that makes generations of them (evaluation floor)


@dataclass(frozen=True)
class Sample:
    id: int
    run_id: int
    step: int | None
    name: str
    remote_path: str
    local_path: str | None
    prompt: str | None
    generation_id: int | None


def _row(r, root: Path) -> Sample:
    return Sample(r["id"], r["run_id"], r["step"], r["name"], r["remote_path"],
                  store.local_path(root, r["local_path"]), r["prompt"], r["generation_id"])


def known(conn: sqlite3.Connection, run_id: int) -> set[str]:
    """The remote paths of the run's samples already here."""
    return {r[0] for r in conn.execute("SELECT remote_path FROM train_samples WHERE run_id = ?",
                                       (run_id,))}


def record(conn: sqlite3.Connection, run_id: int, remote_path: str, local: Path, *,
           step: int | None, name: str, prompt: str | None = None) -> None:
    conn.execute("INSERT OR IGNORE INTO train_samples (run_id, step, name, remote_path,"
                 " local_path, prompt, created_at) VALUES (?,?,?,?,?,?,?)",
                 (run_id, step, name, remote_path, store.stored_path(conn, local), prompt,
                  time.time()))


def unlinked(conn: sqlite3.Connection) -> list[Sample]:
    """Samples that are no generation yet."""
    root = store.root_of(conn)
    return [_row(r, root) for r in conn.execute(
        "SELECT * FROM train_samples WHERE generation_id IS NULL ORDER BY id")]


def link(conn: sqlite3.Connection, sample_id: int, generation_id: int) -> None:
    store.table(conn, "train_samples").update(sample_id, {"generation_id": generation_id})


def for_run(conn: sqlite3.Connection, run_id: int) -> list[Sample]:
    root = store.root_of(conn)
    return [_row(r, root) for r in conn.execute(
        "SELECT * FROM train_samples WHERE run_id = ? ORDER BY step, id", (run_id,))]
