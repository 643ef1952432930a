"""A track's lyrics: what ACE-Step sings (its `norm_lyrics`), versioned like captions.

`[Instrumental]` when nothing is written; structured lyrics mark their parts on lines of their
own (`[verse]`, `[chorus]`, `[bridge]`...), as ACE-Step's examples do. Every change is a new
version; undo writes the one before as a new version (nothing is lost).
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass

from lorad.core import store
from lorad.core.errors import LoradError
from lorad.core.store import transaction

INSTRUMENTAL = "[Instrumental]"
PARTS = ("intro", "verse", "pre-chorus", "chorus", "bridge", "hook", "outro", "break",
         "instrumental", "inst", "drop", "interlude")
MARKER = re.compile(r"^\s*\[([^\]]+)\]\s*$")


class LyricsError(LoradError):
    pass


@dataclass(frozen=True)
class LyricsVersion:
    id: int
    clip_id: int
    text: str
    source: str
    created_at: float
    prev_id: int | None


def _row(r) -> LyricsVersion:
    return LyricsVersion(r["id"], r["clip_id"], r["text"], r["source"], r["created_at"],
                         r["prev_id"])


def current(conn: sqlite3.Connection, clip_id: int) -> LyricsVersion | None:
    r = conn.execute("SELECT * FROM lyrics_versions WHERE clip_id = ? ORDER BY id DESC LIMIT 1",
                     (clip_id,)).fetchone()
    return _row(r) if r else None


def text_of(conn: sqlite3.Connection, clip_id: int) -> str:
    v = current(conn, clip_id)
    return v.text if v and v.text.strip() else INSTRUMENTAL


def current_texts(conn: sqlite3.Connection, clip_ids: list[int]) -> dict[int, str]:
    """The written lyrics of these clips (a clip with none is left out)."""
    if not clip_ids:
        return {}
    marks = ",".join("?" * len(clip_ids))
    rows = conn.execute(
        f"SELECT clip_id, text FROM lyrics_versions WHERE id IN (SELECT MAX(id) FROM"
        f" lyrics_versions WHERE clip_id IN ({marks}) GROUP BY clip_id)", clip_ids)
    return {r[0]: r[1] for r in rows if r[1].strip()}


def history(conn: sqlite3.Connection, clip_id: int) -> list[LyricsVersion]:
    return [_row(r) for r in conn.execute(
        "SELECT * FROM lyrics_versions WHERE clip_id = ? ORDER BY id", (clip_id,))]


def problems(text: str) -> list[str]:
    """What ACE-Step would mishear: unknown part markers, words beside [Instrumental]."""
    found = []
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        m = MARKER.match(line)
        if m and m.group(1).strip().lower() not in PARTS:
            found.append(f"[{m.group(1)}] is not a part marker ({', '.join(PARTS)})")
    if any(line.strip().lower() == INSTRUMENTAL.lower() for line in lines) and len(lines) > 1:
        found.append("[Instrumental] with sung lines: drop one or the other")
    return found


def _insert(conn: sqlite3.Connection, clip_id: int, text: str, source: str,
            prev_id: int | None) -> LyricsVersion:
    pk = store.table(conn, "lyrics_versions").insert({
        "clip_id": clip_id, "text": text, "source": source, "created_at": time.time(),
        "prev_id": prev_id}).last_pk
    return _row(conn.execute("SELECT * FROM lyrics_versions WHERE id = ?", (pk,)).fetchone())


def set_lyrics(conn: sqlite3.Connection, clip_id: int, text: str, *, source: str = "typed"
               ) -> LyricsVersion | None:
    """A new version (None when the text is the current one)."""
    text = text.strip("\n")
    with transaction(conn):
        now = current(conn, clip_id)
        if now is not None and now.text == text:
            return None
        if not conn.execute("SELECT 1 FROM clips WHERE id = ?", (clip_id,)).fetchone():
            raise LyricsError(f"no clip with id {clip_id}")
        return _insert(conn, clip_id, text, source, now.id if now else None)


def undo(conn: sqlite3.Connection, clip_id: int) -> LyricsVersion | None:
    """Back one version, step by step (the restored text is written as the newest version,
    pointing where the one it restores pointed); None when there is nothing to undo."""
    with transaction(conn):
        now = current(conn, clip_id)
        if now is None:
            return None
        if now.prev_id is None:
            return _insert(conn, clip_id, "", "undo", None) if now.text else None
        before = _row(conn.execute("SELECT * FROM lyrics_versions WHERE id = ?",
                                   (now.prev_id,)).fetchone())
        return _insert(conn, clip_id, before.text, "undo", before.prev_id)
