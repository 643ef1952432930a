"""Caption history: every change is a new version; nothing is overwritten or deleted.

A clip's caption is its newest version. Undo writes a new version holding the text of the
version before the current one (following `prev_id`), so undo can go back step by step and the
history still shows everything that was ever written.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from lorad.core import store
from lorad.core.errors import LoradError
from lorad.core.store import transaction
from lorad.media import clips

SOURCES = ("typed", "template", "bulk", "import", "auto", "undo", "accepted")
DRAFT = "draft:"  # a version drafted by a model (`draft:<model>`), unreviewed until a person
# saves the clip's caption or accepts the draft as it is


def is_draft_source(source: str) -> bool:
    return source.startswith(DRAFT)


def draft_source(model: str) -> str:
    return DRAFT + model


class CaptionError(LoradError):
    pass


class CaptionConflict(CaptionError):
    """The caption changed elsewhere since the editor opened it (another terminal, a bulk
    edit): saving would silently replace that change."""

    def __init__(self, clip_id: int, theirs: CaptionVersion | None) -> None:
        super().__init__(f"clip {clip_id}'s caption was changed elsewhere since it was opened")
        self.clip_id = clip_id
        self.theirs = theirs


ANY_VERSION = -1  # set_caption's `expected` when any current version may be replaced


@dataclass(frozen=True)
class CaptionVersion:
    id: int
    clip_id: int
    text: str
    source: str
    batch_id: str | None
    prev_id: int | None
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CaptionVersion:
        return cls(row["id"], row["clip_id"], row["text"], row["source"], row["batch_id"],
                   row["prev_id"], row["created_at"])

    @property
    def is_draft(self) -> bool:
        """A model wrote it and no person has saved or accepted it since."""
        return is_draft_source(self.source)


_COLUMNS = "id, clip_id, text, source, batch_id, prev_id, created_at"


def current(conn: sqlite3.Connection, clip_id: int) -> CaptionVersion | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM caption_versions WHERE clip_id = ? ORDER BY id"
                       " DESC LIMIT 1", (clip_id,)).fetchone()
    return CaptionVersion.from_row(row) if row else None


def current_texts(conn: sqlite3.Connection, dataset_id: int) -> dict[int, CaptionVersion]:
    """The current version of every captioned clip of a dataset, in one query."""
    rows = conn.execute(
        f"SELECT {', '.join('v.' + c.strip() for c in _COLUMNS.split(','))} FROM caption_versions"
        " v JOIN (SELECT clip_id, MAX(caption_versions.id) AS id FROM caption_versions JOIN clips"
        " ON clips.id = caption_versions.clip_id WHERE clips.dataset_id = ? GROUP BY clip_id) m"
        " ON m.id = v.id", (dataset_id,))
    return {r["clip_id"]: CaptionVersion.from_row(r) for r in rows}


def history(conn: sqlite3.Connection, clip_id: int) -> list[CaptionVersion]:
    """Every version of a clip's caption, oldest first."""
    return [CaptionVersion.from_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM caption_versions WHERE clip_id = ? ORDER BY id", (clip_id,))]


def _insert(conn: sqlite3.Connection, clip_id: int, text: str, source: str,
            batch_id: str | None, prev_id: int | None) -> int:
    return store.table(conn, "caption_versions").insert(
        {"clip_id": clip_id, "text": text, "source": source, "batch_id": batch_id,
         "prev_id": prev_id, "created_at": time.time()}).last_pk


def _current_of(conn: sqlite3.Connection, clip_ids: list[int]) -> dict[int, CaptionVersion]:
    """The current version of each of these clips (that has one), a chunk of ids per query."""
    found: dict[int, CaptionVersion] = {}
    for chunk in store.chunked(clip_ids):
        marks = ",".join("?" * len(chunk))
        found.update((r["clip_id"], CaptionVersion.from_row(r)) for r in conn.execute(
            f"SELECT {_COLUMNS} FROM caption_versions WHERE id IN (SELECT MAX(id) FROM"
            f" caption_versions WHERE clip_id IN ({marks}) GROUP BY clip_id)", chunk))
    return found


def set_caption(conn: sqlite3.Connection, clip_id: int, text: str, *, source: str = "typed",
                batch_id: str | None = None, expected: int | None = ANY_VERSION) -> int | None:
    """Record a new version; returns its id, or None when the text did not change.

    `expected`: the version the new text was written over (None: no caption yet). When the
    current version is another, :class:`CaptionConflict` is raised and nothing is written.
    """
    if source not in SOURCES and not (is_draft_source(source) and len(source) > len(DRAFT)):
        raise CaptionError(f"caption source must be one of {', '.join(SOURCES)} or "
                           f"{DRAFT}<model>")
    text = text.strip()
    with transaction(conn):
        now = current(conn, clip_id)
        if now is not None and now.text == text:
            return None
        if expected != ANY_VERSION and (now.id if now else None) != expected:
            raise CaptionConflict(clip_id, now)
        if now is None and not clips.existing(conn, [clip_id]):
            raise CaptionError(f"no clip with id {clip_id}")
        return _insert(conn, clip_id, text, source, batch_id, now.id if now else None)


def accept(conn: sqlite3.Connection, clip_id: int) -> int | None:
    """A person accepts the clip's drafted caption as it is: a new version with the same text
    (source `accepted`), so the history says who vouched for it. None when the current caption
    is no draft."""
    with transaction(conn):
        now = current(conn, clip_id)
        if now is None or not now.is_draft:
            return None
        return _insert(conn, clip_id, now.text, "accepted", None, now.id)


def unreviewed_drafts(conn: sqlite3.Connection, dataset_id: int) -> list[int]:
    """The clips of a dataset whose caption is a draft no person has reviewed yet."""
    return sorted(clip_id for clip_id, v in current_texts(conn, dataset_id).items()
                  if v.is_draft)


def undo(conn: sqlite3.Connection, clip_id: int) -> CaptionVersion | None:
    """Go back one version. Returns the restored version, or None if there is nothing to undo."""
    with transaction(conn):
        now = current(conn, clip_id)
        if now is None or now.prev_id is None:
            if now is not None and now.text:
                # the first version: undo goes back to "no caption" (an empty version)
                new_id = _insert(conn, clip_id, "", "undo", None, None)
                return CaptionVersion(new_id, clip_id, "", "undo", None, None, time.time())
            return None
        before = conn.execute(f"SELECT {_COLUMNS} FROM caption_versions WHERE id = ?",
                              (now.prev_id,)).fetchone()
        before = CaptionVersion.from_row(before)
        new_id = _insert(conn, clip_id, before.text, "undo", None, before.prev_id)
        return CaptionVersion(new_id, clip_id, before.text, "undo", None, before.prev_id,
                              time.time())


def new_batch_id() -> str:
    return uuid.uuid4().hex[:12]


def set_many(conn: sqlite3.Connection, changes: Iterable[tuple[int, str]], *, source: str,
             batch_id: str | None = None) -> tuple[str, int]:
    """Apply many changes as one batch (one undo), written with sqlite-utils' batched inserts.
    Returns (batch id, versions written): an unchanged caption writes nothing."""
    if source not in SOURCES and not (is_draft_source(source) and len(source) > len(DRAFT)):
        raise CaptionError(f"caption source must be one of {', '.join(SOURCES)} or "
                           f"{DRAFT}<model>")
    batch_id = batch_id or new_batch_id()
    wanted = {clip_id: text.strip() for clip_id, text in changes}  # the last change wins
    ids = list(wanted)
    now = time.time()
    with transaction(conn):
        missing = sorted(set(ids) - clips.existing(conn, ids))
        if missing:
            raise CaptionError(f"no clip with id {missing[0]}")
        current = _current_of(conn, ids)
        rows = [{"clip_id": clip_id, "text": text, "source": source, "batch_id": batch_id,
                 "prev_id": current[clip_id].id if clip_id in current else None,
                 "created_at": now}
                for clip_id, text in wanted.items()
                if (current[clip_id].text if clip_id in current else None) != text]
        store.table(conn, "caption_versions").insert_all(rows, batch_size=500)
    return batch_id, len(rows)


def undo_batch(conn: sqlite3.Connection, batch_id: str) -> tuple[int, int]:
    """Undo a whole bulk edit. Clips edited again after the batch keep their newer caption.
    Returns (undone, kept because edited since)."""
    undone = kept = 0
    with transaction(conn):
        clip_ids = [r[0] for r in conn.execute(
            "SELECT DISTINCT clip_id FROM caption_versions WHERE batch_id = ?", (batch_id,))]
        if not clip_ids:
            raise CaptionError(f"no bulk edit with id {batch_id}")
        for clip_id in clip_ids:
            now = current(conn, clip_id)
            if now is not None and now.batch_id == batch_id:
                undo(conn, clip_id)
                undone += 1
            else:
                kept += 1
    return undone, kept


def last_batch(conn: sqlite3.Connection, dataset_id: int) -> str | None:
    row = conn.execute(
        "SELECT v.batch_id FROM caption_versions v JOIN clips c ON c.id = v.clip_id WHERE"
        " c.dataset_id = ? AND v.batch_id IS NOT NULL ORDER BY v.id DESC LIMIT 1",
        (dataset_id,)).fetchone()
    return row[0] if row else None


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes with every new caption version (versions are only ever added)."""
    return tuple(conn.execute("SELECT COUNT(*), MAX(id) FROM caption_versions").fetchone())
