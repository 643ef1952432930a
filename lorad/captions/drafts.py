"""Caption drafts: what the editor holds but has not saved yet (table `caption_drafts`).

The TUI writes the draft as the user types, so quitting or a crash loses nothing; editing the
clip again offers it back. Saving the caption removes the draft in the same transaction.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from lorad.captions import versions
from lorad.core import store
from lorad.core.store import transaction


@dataclass(frozen=True)
class Draft:
    clip_id: int
    text: str
    base_id: int | None  # the caption version it was written over
    updated_at: float


def keep(conn: sqlite3.Connection, clip_id: int, text: str, base_id: int | None) -> None:
    store.table(conn, "caption_drafts").upsert(
        {"clip_id": clip_id, "text": text, "base_id": base_id, "updated_at": time.time()},
        pk="clip_id")


def get(conn: sqlite3.Connection, clip_id: int) -> Draft | None:
    row = conn.execute("SELECT * FROM caption_drafts WHERE clip_id = ?", (clip_id,)).fetchone()
    return Draft(row["clip_id"], row["text"], row["base_id"], row["updated_at"]) if row else None


def of_dataset(conn: sqlite3.Connection, dataset_id: int) -> dict[int, Draft]:
    return {r["clip_id"]: Draft(r["clip_id"], r["text"], r["base_id"], r["updated_at"])
            for r in conn.execute("SELECT d.* FROM caption_drafts d JOIN clips c ON c.id ="
                                  " d.clip_id WHERE c.dataset_id = ?", (dataset_id,))}


def discard(conn: sqlite3.Connection, clip_id: int) -> None:
    conn.execute("DELETE FROM caption_drafts WHERE clip_id = ?", (clip_id,))


def save(conn: sqlite3.Connection, clip_id: int, text: str,
         expected: int | None = versions.ANY_VERSION) -> int | None:
    """Save the editor's text as the clip's caption and drop its draft, in one transaction.
    A conflict (see :func:`versions.set_caption`) keeps the draft and writes nothing."""
    with transaction(conn):
        version = versions.set_caption(conn, clip_id, text, expected=expected)
        discard(conn, clip_id)
    return version


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes when the editor keeps, replaces or drops unsaved text."""
    return tuple(conn.execute("SELECT COUNT(*), MAX(updated_at) FROM caption_drafts"
                              ).fetchone())
