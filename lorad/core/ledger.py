"""The cost ledger (`cost_entries`) and the event log (`events`): every cent lorad spent, and
every automatic action worth telling the user about (a pod stopped by its policy)."""

from __future__ import annotations

import sqlite3
import time

from lorad.core import store

POD_TIME = "pod_time"
GENERATION = "generation"
CAPTION_DRAFT = "caption_draft"  # a vision model's caption draft (lorad captions draft)


def book(conn: sqlite3.Connection, kind: str, amount: float, detail: str, *,
         pod_id: int | None = None, run_id: int | None = None,
         generation_id: int | None = None, at: float | None = None) -> None:
    store.table(conn, "cost_entries").insert({
        "kind": kind, "amount": amount, "detail": detail, "pod_id": pod_id, "run_id": run_id,
        "generation_id": generation_id, "at": at if at is not None else time.time()})


def spent(conn: sqlite3.Connection, kind: str | None = None) -> float:
    sql, args = "SELECT IFNULL(SUM(amount), 0) FROM cost_entries", []
    if kind:
        sql += " WHERE kind = ?"
        args.append(kind)
    return conn.execute(sql, args).fetchone()[0]


def spent_on_pod(conn: sqlite3.Connection, pod_id: int) -> float:
    """What the ledger booked for one pod (its time, up to its last booking)."""
    return conn.execute("SELECT IFNULL(SUM(amount), 0) FROM cost_entries WHERE pod_id = ?",
                        (pod_id,)).fetchone()[0]


def last_booked(conn: sqlite3.Connection, kind: str, pod_id: int) -> float | None:
    """When the pod's time was last booked (the next booking starts there)."""
    return conn.execute("SELECT MAX(at) FROM cost_entries WHERE pod_id = ? AND kind = ?",
                        (pod_id, kind)).fetchone()[0]


def note(conn: sqlite3.Connection, kind: str, subject: str, message: str) -> None:
    """An event for the user: what lorad did by itself, and why."""
    store.table(conn, "events").insert({"at": time.time(), "kind": kind, "subject": subject,
                                        "message": message})
