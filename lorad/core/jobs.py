"""Durable jobs: anything slow or with side effects is a row here that the daemon runs.

State machine: queued -> running -> succeeded | failed | cancelled, with running -> queued when a
lease is released or lost, and failed/cancelled -> queued on retry. A worker owns a running job
only while its lease holds; every write a worker makes is conditioned on still owning the lease,
so a daemon that was presumed dead cannot complete a job someone else has since claimed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lorad.core.errors import LoradError
from lorad.core.store import transaction

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")


class JobError(LoradError):
    """A job-level problem a person can act on (unknown id, wrong state for the action)."""


@dataclass
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    state: str
    parent_id: int | None
    attempts: int
    max_attempts: int
    run_after: float
    lease_owner: str | None
    lease_expires: float | None
    cancel_requested: bool
    progress: float | None
    progress_msg: str | None
    result: Any
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["payload"] = json.loads(data["payload"] or "{}")
        data["result"] = json.loads(data["result"]) if data["result"] else None
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def enqueue(conn: sqlite3.Connection, kind: str, payload: dict[str, Any] | None = None, *,
            parent_id: int | None = None, max_attempts: int = 5, delay: float = 0.0) -> int:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO jobs (kind, payload, parent_id, max_attempts, run_after, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, json.dumps(payload or {}, sort_keys=True), parent_id, max_attempts, now + delay,
         now, now),
    )
    return cur.lastrowid


def get(conn: sqlite3.Connection, job_id: int) -> Job:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise JobError(f"no job with id {job_id}; `lorad jobs` lists them")
    return Job.from_row(row)


def list_jobs(conn: sqlite3.Connection, states: Iterable[str] | None = None, *,
              kind: str | None = None, limit: int | None = None) -> list[Job]:
    sql, args = "SELECT * FROM jobs WHERE 1=1", []
    if states:
        states = list(states)
        sql += f" AND state IN ({','.join('?' * len(states))})"
        args += states
    if kind:
        sql += " AND kind = ?"
        args.append(kind)
    sql += " ORDER BY id DESC"
    if limit:
        sql += " LIMIT ?"
        args.append(limit)
    return [Job.from_row(r) for r in conn.execute(sql, args)]


def counts_by_state(conn: sqlite3.Connection) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for state, n in conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
        counts[state] = n
    return counts


def active_count(conn: sqlite3.Connection, kinds: Iterable[str]) -> int:
    """Jobs of these kinds still queued or running."""
    kinds = list(kinds)
    return conn.execute(
        f"SELECT COUNT(*) FROM jobs WHERE state IN ({','.join('?' * len(ACTIVE))})"
        f" AND kind IN ({','.join('?' * len(kinds))})", (*ACTIVE, *kinds)).fetchone()[0]


def active_with(conn: sqlite3.Connection, kind: str, key: str, value: Any) -> list[int]:
    """Ids of queued or running jobs of `kind` whose payload has `key` = `value`."""
    return [r[0] for r in conn.execute(
        f"SELECT id FROM jobs WHERE kind = ? AND state IN ({','.join('?' * len(ACTIVE))})"
        " AND json_extract(payload, ?) = ? ORDER BY id", (kind, *ACTIVE, f"$.{key}", value))]


def claim(conn: sqlite3.Connection, owner: str, kinds: Iterable[str],
          lease_seconds: float) -> Job | None:
    """Atomically take the oldest claimable job of one of `kinds` for `owner`."""
    kinds = list(kinds)
    if not kinds:
        return None
    now = time.time()
    with transaction(conn):
        row = conn.execute(
            f"SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ?"
            f" AND kind IN ({','.join('?' * len(kinds))}) ORDER BY run_after, id LIMIT 1",
            (now, *kinds),
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?,"
            " attempts = attempts + 1, started_at = COALESCE(started_at, ?), updated_at = ?,"
            " error = NULL WHERE id = ?",
            (owner, now + lease_seconds, now, now, row["id"]),
        )
        return get(conn, row["id"])


def renew(conn: sqlite3.Connection, job_id: int, owner: str, lease_seconds: float) -> bool:
    """Extend the lease; False means this worker no longer owns the job."""
    now = time.time()
    cur = conn.execute(
        "UPDATE jobs SET lease_expires = ?, updated_at = ? WHERE id = ? AND state = 'running'"
        " AND lease_owner = ?",
        (now + lease_seconds, now, job_id, owner),
    )
    return cur.rowcount == 1


def cancel_requested(conn: sqlite3.Connection, job_id: int) -> bool:
    row = conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return bool(row and row[0])


def set_progress(conn: sqlite3.Connection, job_id: int, owner: str, fraction: float | None,
                 message: str | None = None) -> None:
    if fraction is not None:
        fraction = min(1.0, max(0.0, float(fraction)))
    conn.execute(
        "UPDATE jobs SET progress = ?, progress_msg = COALESCE(?, progress_msg), updated_at = ?"
        " WHERE id = ? AND state = 'running' AND lease_owner = ?",
        (fraction, message, time.time(), job_id, owner),
    )


def succeed(conn: sqlite3.Connection, job_id: int, owner: str, result: Any = None,
            also: Callable[[sqlite3.Connection], None] | None = None) -> bool:
    """Mark the job succeeded. `also` runs in the same transaction, so a handler's database
    effects commit exactly once, together with the success, or not at all."""
    now = time.time()
    try:
        with transaction(conn):
            cur = conn.execute(
                "UPDATE jobs SET state = 'succeeded', result = ?, progress = 1.0,"
                " lease_owner = NULL, lease_expires = NULL, finished_at = ?, updated_at = ?"
                " WHERE id = ? AND state = 'running' AND lease_owner = ?",
                (json.dumps(result) if result is not None else None, now, now, job_id, owner),
            )
            if cur.rowcount != 1:
                raise _LeaseLost
            if also is not None:
                also(conn)
    except _LeaseLost:
        return False
    return True


class _LeaseLost(Exception):
    pass


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: base, 2*base, 4*base... capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


def fail(conn: sqlite3.Connection, job_id: int, owner: str, error: str, *, transient: bool,
         retry_base: float = 2.0, retry_cap: float = 300.0) -> str:
    """Record a failure. A transient one is retried after a backoff until max_attempts.

    Returns the job's new state ('queued' when a retry is scheduled, else 'failed').
    """
    now = time.time()
    with transaction(conn):
        job = get(conn, job_id)
        if job.state != "running" or job.lease_owner != owner:
            return job.state
        if transient and job.attempts < job.max_attempts:
            delay = backoff_delay(job.attempts, retry_base, retry_cap)
            conn.execute(
                "UPDATE jobs SET state = 'queued', error = ?, run_after = ?, lease_owner = NULL,"
                " lease_expires = NULL, updated_at = ? WHERE id = ?",
                (f"{error} (attempt {job.attempts} of {job.max_attempts}; retrying in "
                 f"{delay:.0f} s)", now + delay, now, job_id),
            )
            return "queued"
        if transient:
            error = f"{error} (gave up after {job.attempts} attempts)"
        conn.execute(
            "UPDATE jobs SET state = 'failed', error = ?, lease_owner = NULL, lease_expires = NULL,"
            " finished_at = ?, updated_at = ? WHERE id = ?",
            (error, now, now, job_id),
        )
        return "failed"


def mark_cancelled(conn: sqlite3.Connection, job_id: int, owner: str) -> None:
    now = time.time()
    conn.execute(
        "UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_expires = NULL,"
        " finished_at = ?, updated_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ?",
        (now, now, job_id, owner),
    )


def release(conn: sqlite3.Connection, job_id: int, owner: str) -> None:
    """Give a running job back to the queue without counting the attempt (daemon shutdown)."""
    conn.execute(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL,"
        " attempts = MAX(0, attempts - 1), updated_at = ? WHERE id = ? AND state = 'running'"
        " AND lease_owner = ?",
        (time.time(), job_id, owner),
    )


def request_cancel(conn: sqlite3.Connection, job_id: int) -> str:
    """Cancel a queued job at once; ask a running one to stop. Returns the resulting state."""
    now = time.time()
    with transaction(conn):
        job = get(conn, job_id)
        if job.state == "queued":
            conn.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ?"
                " WHERE id = ?", (now, now, job_id))
            return "cancelled"
        if job.state == "running":
            conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                         (now, job_id))
            return "cancelling"
        raise JobError(f"job {job_id} is {job.state}; only queued or running jobs can be cancelled")


def run_cancelled(conn: sqlite3.Connection, job_id: int) -> None:
    """Run a queued job now with its cancel flag set: for a job whose handler must undo work
    it already started elsewhere (a request a remote service accepted) before it ends."""
    now = time.time()
    conn.execute("UPDATE jobs SET cancel_requested = 1, run_after = ?, updated_at = ?"
                 " WHERE id = ? AND state = 'queued'", (now, now, job_id))


def retry(conn: sqlite3.Connection, job_id: int) -> None:
    """Put a failed or cancelled job back in the queue with a fresh attempt budget."""
    now = time.time()
    with transaction(conn):
        job = get(conn, job_id)
        if job.state not in ("failed", "cancelled"):
            raise JobError(f"job {job_id} is {job.state}; only failed or cancelled jobs can be "
                           "retried")
        conn.execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_after = 0, error = NULL,"
            " cancel_requested = 0, progress = NULL, progress_msg = NULL, finished_at = NULL,"
            " updated_at = ? WHERE id = ?", (now, job_id))


def requeue_orphans(conn: sqlite3.Connection, owner: str, *, all_others: bool = False) -> int:
    """Give running jobs whose worker is gone back to the queue.

    Normally that means an expired lease. At daemon start `all_others=True`: the daemon holds the
    workspace lock, so no other worker can be alive and every foreign lease is already dead; its
    jobs need not wait for the lease to run out. A job whose worker died max_attempts times fails.
    """
    now = time.time()
    # the caller's own jobs are alive (it runs them) even when a full disk kept their leases
    # from being renewed
    cond = "lease_owner IS NOT ?" if all_others else "lease_expires < ? AND lease_owner IS NOT ?"
    args = (owner,) if all_others else (now, owner)
    with transaction(conn):
        rows = conn.execute(
            f"SELECT id, attempts, max_attempts FROM jobs WHERE state = 'running' AND {cond}",
            args).fetchall()
        for row in rows:
            if row["attempts"] >= row["max_attempts"]:
                conn.execute(
                    "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expires = NULL,"
                    " error = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                    (f"the daemon stopped while running this job {row['attempts']} times; "
                     "see .lorad/daemon.log, then `lorad jobs retry` it", now, now, row["id"]))
            else:
                conn.execute(
                    "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL,"
                    " updated_at = ? WHERE id = ?", (now, row["id"]))
        return len(rows)


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes with any job's state or progress (every write sets updated_at)."""
    return tuple(conn.execute("SELECT COUNT(*), MAX(updated_at) FROM jobs").fetchone())
