"""Clips: one row per source file (or per shot of a long source) in a dataset.

States: new (queued) -> processing -> ready -> approved | rejected, or error with one sentence
saying what is wrong and what to do. Approve and reject are the user's review; reprocessing a
reviewed clip keeps the review.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorad.core import jobs, logs, store
from lorad.core.errors import LoradError
from lorad.core.store import transaction
from lorad.media.datasets import Dataset

VIDEO_EXT = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".3gp", ".wmv",
             ".flv", ".mpg", ".mpeg", ".ts", ".gif"}
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".avif"}
AUDIO_EXT = {".mp3", ".wav", ".flac", ".m4a", ".ogg", ".opus", ".aac", ".aif", ".aiff"}
REVIEW_STATES = ("approved", "rejected")
PATH_COLUMNS = ("source_path", "media_path", "filmstrip_path")  # relative inside the workspace
REVIEWABLE = ("ready", "approved", "rejected")
MOTION_CLASSES = ("static", "slight", "moving", "panning")
FLAGS = ("duplicate", "near_duplicate", "upscaled", "cropped", "letterboxed", "vfr", "hdr", *MOTION_CLASSES)
INGEST_KIND = "clip.ingest"
SPLIT_KIND = "clip.split"


class ClipError(LoradError):
    pass


@dataclass
class Clip:
    id: int
    dataset_id: int
    name: str
    source_path: str
    state: str
    source_range: tuple[float, float] | None = None
    source_hash: str | None = None
    duplicate_of: int | None = None
    error: str | None = None
    note: str | None = None
    media_path: str | None = None
    filmstrip_path: str | None = None
    media_kind: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int | None = None
    duration: float | None = None
    motion: float | None = None
    flags: list[str] = field(default_factory=list)
    phash: str | None = None
    probe: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None
    profile_fingerprint: str | None = None
    job_id: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    reviewed_at: float | None = None
    source_size: int | None = None
    source_mtime: float | None = None
    track: dict[str, Any] = field(default_factory=dict)  # a track's source record and style

    @classmethod
    def from_row(cls, row: sqlite3.Row, root: Path) -> Clip:
        """`root`: the workspace the row's relative paths are in (store.root_of)."""
        data = dict(row)
        for key in PATH_COLUMNS:
            data[key] = store.local_path(root, data[key])
        data["flags"] = json.loads(data["flags"] or "[]")
        for key in ("probe", "analysis"):
            data[key] = json.loads(data[key]) if data[key] else None
        data["track"] = json.loads(data.get("track") or "{}")
        data["source_range"] = tuple(json.loads(data["source_range"])) if data["source_range"] \
            else None
        return cls(**data)

    @property
    def motion_class(self) -> str | None:
        return next((f for f in self.flags if f in MOTION_CLASSES), None)


def slug(text: str) -> str:
    """ASCII, lower case, [a-z0-9_-]: safe in any file system and in musubi's cache names."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return cleaned[:48] or "clip"


def clip_name(source_path: str, source_range: tuple[float, float] | None = None) -> str:
    """A unique, stable output basename: readable stem plus a hash of where the clip comes from,
    so two sources called `IMG_0001.MOV` in different folders never collide."""
    key = source_path + (json.dumps(list(source_range)) if source_range else "")
    stem = slug(Path(source_path).stem)
    if source_range:
        stem = f"{stem}_{int(source_range[0] * 1000):07d}"
    return f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


@dataclass
class Scan:
    files: list[Path]
    ignored: list[Path]  # inside folders, not a media extension (captions, .DS_Store...)
    missing: list[Path]
    empty: list[Path]  # folders with no media file in them


def scan(paths: Iterable[Path], extensions: set[str] | None = None) -> Scan:
    """Files to ingest: explicit files always (ffprobe decides), folders recursively by
    extension (default: video and images; an audio dataset's: tracks, and videos, which are
    refused on the file with what to do)."""
    extensions = extensions or VIDEO_EXT | IMAGE_EXT
    files, ignored, missing, empty = [], [], [], []
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            before = len(files)
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                if child.suffix.lower() in extensions:
                    files.append(child)
                else:
                    ignored.append(child)
            if len(files) == before:
                empty.append(path)
        elif path.is_file():
            files.append(path)
        else:
            missing.append(path)
    return Scan([f.resolve() for f in files], ignored, missing, empty)


@dataclass
class AddReport:
    queued: list[int] = field(default_factory=list)  # clip ids (or split job ids)
    changed: list[int] = field(default_factory=list)  # known path, new content: processed again
    skipped: list[str] = field(default_factory=list)  # already in the dataset, unchanged
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    split_jobs: list[int] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # folders given with no media file in them
    split_failed: list[str] = field(default_factory=list)  # failed before and unchanged since

    @property
    def problems(self) -> bool:
        return bool(self.missing or self.empty)

    def summary(self, dataset: str) -> str:
        """`queued: 3 new, 0 changed, 2 already in truck`, with splits and ignored files."""
        parts = [f"{len(self.queued)} new", f"{len(self.changed)} changed",
                 f"{len(self.skipped)} already in {dataset}"]
        if self.split_jobs:
            parts.append(f"{len(self.split_jobs)} to split into shots")
        if self.ignored:
            parts.append(f"{len(self.ignored)} non-media files ignored")
        return "queued: " + ", ".join(parts)


def add(conn: sqlite3.Connection, dataset: Dataset, paths: Iterable[Path], *,
        split_scenes: bool = False, media: str = "video") -> AddReport:
    """Queue ingest of every new or changed file; a second run over the same folder adds
    nothing that is already there. `media`: the dataset profile's (which files a folder
    gives)."""
    found = scan(paths, AUDIO_EXT | VIDEO_EXT if media == "audio" else None)
    report = AddReport(ignored=[str(p) for p in found.ignored],
                       missing=[str(p) for p in found.missing],
                       empty=[str(p) for p in found.empty])
    now = time.time()
    with transaction(conn):
        for path in found.files:
            st = path.stat()
            source, kept_as = str(path), store.stored_path(conn, path)
            if split_scenes:
                failed = _split_failure(conn, dataset.id, kept_as)
                if failed is not None:  # a source whose split failed: again only if changed
                    if (failed["source_size"], failed["source_mtime"]) == (st.st_size,
                                                                           st.st_mtime):
                        report.split_failed.append(source)
                    else:
                        report.split_jobs.append(_queue_split(conn, dataset.id, source,
                                                              failed["id"]))
                    continue
                if conn.execute("SELECT 1 FROM clips WHERE dataset_id = ? AND source_path = ?",
                                (dataset.id, kept_as)).fetchone():
                    report.skipped.append(source)
                    continue
                report.split_jobs.append(_queue_split(conn, dataset.id, source))
                continue
            row = conn.execute(
                "SELECT id, source_size, source_mtime FROM clips WHERE dataset_id = ? AND "
                "source_path = ? AND source_range IS NULL", (dataset.id, kept_as)).fetchone()
            if row is not None:
                if row["source_size"] == st.st_size and row["source_mtime"] == st.st_mtime:
                    report.skipped.append(source)
                    continue
                _queue_ingest(conn, row["id"], if_changed=True)
                report.changed.append(row["id"])
                continue
            clip_id = insert(conn, dataset.id, source, None, size=st.st_size, mtime=st.st_mtime,
                             now=now)
            report.queued.append(clip_id)
    return report


def insert(conn: sqlite3.Connection, dataset_id: int, source_path: str,
           source_range: tuple[float, float] | None, *, size: int | None, mtime: float | None,
           now: float | None = None, parent_job: int | None = None) -> int:
    """Insert a clip in state `new` and queue its ingest job (call inside a transaction)."""
    now = now or time.time()
    clip_id = store.table(conn, "clips").insert({
        "dataset_id": dataset_id, "source_path": store.stored_path(conn, source_path),
        "source_range": json.dumps(list(source_range)) if source_range else None,
        "name": clip_name(source_path, source_range), "state": "new", "source_size": size,
        "source_mtime": mtime, "created_at": now, "updated_at": now}).last_pk
    _queue_ingest(conn, clip_id, parent_job=parent_job)
    return clip_id


def _queue_ingest(conn: sqlite3.Connection, clip_id: int, parent_job: int | None = None, *,
                  if_changed: bool = False) -> int:
    """`if_changed`: the file's size or time changed; the job hashes it and leaves the clip as
    it is when the bytes are the same (a `touch`, a copy back from a backup)."""
    payload: dict[str, Any] = {"clip_id": clip_id}
    if if_changed:
        payload["if_changed"] = True
    job_id = jobs.enqueue(conn, INGEST_KIND, payload, parent_id=parent_job)
    conn.execute("UPDATE clips SET job_id = ?, updated_at = ?, state = CASE WHEN state IN"
                 " ('approved','rejected') THEN state ELSE 'new' END WHERE id = ?",
                 (job_id, time.time(), clip_id))
    return job_id


def update(conn: sqlite3.Connection, clip_id: int, **values: Any) -> None:
    for key in PATH_COLUMNS:
        if key in values:
            values[key] = store.stored_path(conn, values[key])
    if values.get("error"):
        values["error"] = logs.redact(values["error"])
    store.table(conn, "clips").update(clip_id, {**values, "updated_at": time.time()})


def same_source(conn: sqlite3.Connection, clip: Clip, source_hash: str) -> Clip | None:
    """The first clip of the dataset made from the same bytes (and the same range)."""
    row = conn.execute(
        "SELECT * FROM clips WHERE dataset_id = ? AND source_hash = ? AND"
        " IFNULL(source_range, '') = IFNULL(?, '') AND id != ? AND duplicate_of IS NULL AND"
        " state != 'error' ORDER BY id LIMIT 1",
        (clip.dataset_id, source_hash,
         json.dumps(list(clip.source_range)) if clip.source_range else None, clip.id)).fetchone()
    return Clip.from_row(row, store.root_of(conn)) if row else None


def release_duplicates(conn: sqlite3.Connection, original_id: int, *, unless_hash: str | None,
                       why: str) -> list[int]:
    """Clips linked as copies of `original_id` are processed on their own again: its content
    changed (those still equal to `unless_hash` stay linked), or it failed, and a copy must not
    hide that behind "rejected, duplicate"."""
    released = []
    with transaction(conn):
        for row in conn.execute("SELECT id, source_hash FROM clips WHERE duplicate_of = ?",
                                (original_id,)).fetchall():
            if unless_hash is not None and row["source_hash"] == unless_hash:
                continue
            conn.execute("UPDATE clips SET duplicate_of = NULL, state = 'new', flags = '[]',"
                         " filmstrip_path = NULL, note = ?, updated_at = ? WHERE id = ?",
                         (f"no longer a copy of clip {original_id}: {why}", time.time(),
                          row["id"]))
            _queue_ingest(conn, row["id"])
            released.append(row["id"])
    return released


def hashed_siblings(conn: sqlite3.Connection, clip: Clip) -> list[tuple[int, str, str]]:
    """(id, name, perceptual hash) of the dataset's other analysed clips."""
    return [tuple(r) for r in conn.execute(
        "SELECT id, name, phash FROM clips WHERE dataset_id = ? AND phash IS NOT NULL AND"
        " id != ? AND duplicate_of IS NULL AND state != 'error'", (clip.dataset_id, clip.id))]


def has_shot(conn: sqlite3.Connection, dataset_id: int, source: str,
             source_range: tuple[float, float]) -> bool:
    return conn.execute("SELECT 1 FROM clips WHERE dataset_id = ? AND source_path = ? AND"
                        " source_range = ?", (dataset_id, store.stored_path(conn, source),
                                              json.dumps(list(source_range)))
                        ).fetchone() is not None


def get(conn: sqlite3.Connection, clip_id: int) -> Clip:
    row = conn.execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()
    if row is None:
        raise ClipError(f"no clip with id {clip_id}")
    return Clip.from_row(row, store.root_of(conn))


def list_clips(conn: sqlite3.Connection, dataset_id: int, *, states: Iterable[str] | None = None,
               flag: str | None = None, text: str | None = None) -> list[Clip]:
    sql, args = _filtered("SELECT * FROM clips WHERE dataset_id = ?", dataset_id, states, flag,
                          text)
    root = store.root_of(conn)
    return [Clip.from_row(r, root) for r in conn.execute(sql, args)]


def missing_media(conn: sqlite3.Connection) -> list[Clip]:
    """Processed clips whose media file is gone (deleted, or a workspace copied without its
    media folder): `lorad clips reprocess` makes them again from their sources."""
    root = store.root_of(conn)
    found = (Clip.from_row(r, root) for r in conn.execute(
        "SELECT * FROM clips WHERE state IN ('ready','approved') AND media_path IS NOT NULL"))
    return [c for c in found if not Path(c.media_path).exists()]


def _filtered(sql: str, dataset_id: int, states: Iterable[str] | None, flag: str | None,
              text: str | None) -> tuple[str, list[Any]]:
    """Add the state / flag / text filters shared by every clip listing."""
    args: list[Any] = [dataset_id]
    if states:
        states = list(states)
        sql += f" AND state IN ({','.join('?' * len(states))})"
        args += states
    if flag:
        sql += " AND EXISTS (SELECT 1 FROM json_each(clips.flags) WHERE value = ?)"
        args.append(flag)
    if text:
        sql += " AND (source_path LIKE ? OR name LIKE ? OR IFNULL(error,'') LIKE ?)"
        args += [f"%{text}%"] * 3
    sql += " ORDER BY id"
    return sql, args


def set_review(conn: sqlite3.Connection, clip_ids: Iterable[int], state: str) -> tuple[int, int]:
    """Approve or reject clips (or put them back to ready). Returns (changed, not eligible):
    clips still processing cannot be reviewed; a clip in error can only be rejected (it has
    nothing to train on, and its source may be gone), and only a processed one approved."""
    if state not in (*REVIEW_STATES, "ready"):
        raise ClipError(f"review state must be approved, rejected or ready, not {state!r}")
    ids = list(clip_ids)
    now = time.time()
    changed = 0
    with transaction(conn):
        for chunk in store.chunked(ids):
            marks = ",".join("?" * len(chunk))
            cur = conn.execute(
                f"UPDATE clips SET state = ?, reviewed_at = ?, updated_at = ? WHERE id IN ({marks})"
                " AND (state IN ('ready','approved','rejected') OR (state = 'error' AND ? ="
                " 'rejected')) AND (? = 'rejected' OR error IS NULL)",
                (state, now, now, *chunk, state, state))
            changed += cur.rowcount
    return changed, len(ids) - changed


def reprocess(conn: sqlite3.Connection, clip_ids: Iterable[int]) -> list[int]:
    """Queue ingest again (after a profile change, or once a bad file was fixed)."""
    queued = []
    with transaction(conn):
        for clip_id in clip_ids:
            row = conn.execute("SELECT c.id, j.state, j.kind FROM clips c LEFT JOIN jobs j ON"
                               " j.id = c.job_id WHERE c.id = ?", (clip_id,)).fetchone()
            if row is None:
                raise ClipError(f"no clip with id {clip_id}")
            if row["state"] in jobs.ACTIVE:
                continue  # already queued or running
            if row["kind"] == SPLIT_KIND:  # a source whose scene split failed: split it again
                clip = get(conn, clip_id)
                queued.append(_queue_split(conn, clip.dataset_id, clip.source_path, clip_id))
                continue
            queued.append(_queue_ingest(conn, clip_id))
    return queued


def _queue_split(conn: sqlite3.Connection, dataset_id: int, source: str,
                 failed_clip: int | None = None) -> int:
    job_id = jobs.enqueue(conn, SPLIT_KIND, {"dataset_id": dataset_id, "path": source})
    if failed_clip is not None:  # the failure's row waits for the new outcome
        conn.execute("UPDATE clips SET job_id = ?, state = 'new', updated_at = ? WHERE id = ?",
                     (job_id, time.time(), failed_clip))
    return job_id


def _split_failure(conn: sqlite3.Connection, dataset_id: int, kept_as: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT c.id, c.source_size, c.source_mtime FROM clips c JOIN jobs j ON j.id = c.job_id"
        " WHERE c.dataset_id = ? AND c.source_path = ? AND c.source_range IS NULL AND j.kind = ?",
        (dataset_id, kept_as, SPLIT_KIND)).fetchone()


def record_split_failure(conn: sqlite3.Connection, dataset_id: int, source: str, message: str,
                         *, size: int | None, mtime: float | None, job_id: int) -> int:
    """A source that could not be split into shots becomes one clip in error, so the failure
    shows in every clip list, `--wait` counts it, and `clips add` does not split it again until
    the file changes (`lorad clips reprocess` asks for it at once)."""
    now = time.time()
    with transaction(conn):
        failed = _split_failure(conn, dataset_id, store.stored_path(conn, source))
        if failed is not None:
            conn.execute("UPDATE clips SET state = 'error', error = ?, source_size = ?,"
                         " source_mtime = ?, job_id = ?, updated_at = ? WHERE id = ?",
                         (message, size, mtime, job_id, now, failed["id"]))
            return failed["id"]
        return store.table(conn, "clips").insert({
            "dataset_id": dataset_id, "source_path": store.stored_path(conn, source),
            "name": clip_name(source), "state": "error", "error": message, "job_id": job_id,
            "source_size": size, "source_mtime": mtime, "created_at": now,
            "updated_at": now}).last_pk


def clear_split_failure(conn: sqlite3.Connection, dataset_id: int, source: str) -> None:
    """The source split after all: its failure row goes (its shots are the clips now)."""
    failed = _split_failure(conn, dataset_id, store.stored_path(conn, source))
    if failed is not None:
        conn.execute("DELETE FROM clips WHERE id = ?", (failed["id"],))


def outcome(conn: sqlite3.Connection, clip_ids: Iterable[int],
            split_jobs: Iterable[int]) -> dict[str, int]:
    """Clips by state among those one `clips add` queued: the clips themselves, the shots its
    split jobs made, and the failure rows of splits that failed."""
    ids = set(clip_ids)
    for chunk in store.chunked(list(split_jobs)):
        marks = ",".join("?" * len(chunk))
        ids.update(r[0] for r in conn.execute(
            f"SELECT c.id FROM clips c JOIN jobs j ON j.id = c.job_id WHERE j.parent_id IN"
            f" ({marks}) OR j.id IN ({marks})", (*chunk, *chunk)))
    counts: dict[str, int] = {}
    for chunk in store.chunked(sorted(ids)):
        for state, n in conn.execute(
                f"SELECT state, COUNT(*) FROM clips WHERE id IN ({','.join('?' * len(chunk))})"
                " GROUP BY state", chunk):
            counts[state] = counts.get(state, 0) + n
    return counts


def stale_ids(conn: sqlite3.Connection, dataset_id: int, fingerprint: str) -> list[int]:
    """Clips made with another version of the profile (or never made)."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM clips WHERE dataset_id = ? AND duplicate_of IS NULL AND"
        " IFNULL(profile_fingerprint, '') != ?", (dataset_id, fingerprint))]


def progress(conn: sqlite3.Connection, dataset_id: int) -> tuple[int, int]:
    """(finished, total) clips, for ingest progress bars."""
    row = conn.execute(
        "SELECT SUM(state NOT IN ('new','processing')), COUNT(*) FROM clips WHERE dataset_id = ?",
        (dataset_id,)).fetchone()
    return int(row[0] or 0), int(row[1] or 0)


# Clips that get captions and are linted: every processed or processing clip that is not a
# copy of another; rejected ones too (they can be approved again, captions and all).
CAPTIONABLE_SQL = "duplicate_of IS NULL AND state != 'error'"


@dataclass(frozen=True)
class CaptionableClip:
    id: int
    name: str
    state: str
    filmstrip_path: str | None
    facts: str


def captionable(conn: sqlite3.Connection, dataset_id: int) -> list[CaptionableClip]:
    """The clips of a dataset that get captions: not duplicates, not in error."""
    out, root = [], store.root_of(conn)
    for r in conn.execute(
            "SELECT id, name, state, filmstrip_path, width, height, frames, fps FROM clips"
            f" WHERE dataset_id = ? AND {CAPTIONABLE_SQL} ORDER BY id", (dataset_id,)):
        facts = (f"{r['width']}x{r['height']}, {r['frames']} frames at {r['fps'] or 0:g} fps"
                 if r["frames"] else r["state"])
        out.append(CaptionableClip(r["id"], r["name"], r["state"],
                                   store.local_path(root, r["filmstrip_path"]), facts))
    return out


def counts_by_state(conn: sqlite3.Connection, dataset_id: int) -> dict[str, int]:
    return {state: n for state, n in conn.execute(
        "SELECT state, COUNT(*) FROM clips WHERE dataset_id = ? GROUP BY state", (dataset_id,))}


def approved(conn: sqlite3.Connection, dataset_id: int) -> list[Clip]:
    """What an export freezes: approved clips that are not duplicates, by name."""
    root = store.root_of(conn)
    return [Clip.from_row(r, root) for r in conn.execute(
        "SELECT * FROM clips WHERE dataset_id = ? AND state = 'approved' AND duplicate_of IS NULL"
        " ORDER BY name", (dataset_id,))]


def existing(conn: sqlite3.Connection, clip_ids: list[int]) -> set[int]:
    """Which of these ids are clips."""
    found: set[int] = set()
    for chunk in store.chunked(clip_ids):
        found.update(r[0] for r in conn.execute(
            f"SELECT id FROM clips WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    return found


def sources(conn: sqlite3.Connection, dataset_id: int) -> list[tuple[int, str, str, str | None]]:
    """(id, source path, name, media path) of the dataset's clips, duplicates left out."""
    root = store.root_of(conn)
    return [(r[0], store.local_path(root, r[1]), r[2], store.local_path(root, r[3]))
            for r in conn.execute("SELECT id, source_path, name, media_path FROM clips WHERE"
                                  " dataset_id = ? AND duplicate_of IS NULL", (dataset_id,))]


def ingest_pending(conn: sqlite3.Connection) -> int:
    """Ingest and scene-split jobs not finished yet (of every dataset)."""
    return jobs.active_count(conn, (INGEST_KIND, SPLIT_KIND))


class ClipRow(tuple):
    """A light row for long lists: no probe or analysis JSON (see `rows`)."""

    __slots__ = ()
    FIELDS = ("id", "name", "state", "frames", "fps", "width", "height", "motion", "flags",
              "message", "duplicate_of")

    def __getattr__(self, name: str):
        try:
            return self[ClipRow.FIELDS.index(name)]
        except ValueError:
            raise AttributeError(name) from None


def rows(conn: sqlite3.Connection, dataset_id: int, *, states: Iterable[str] | None = None,
         flag: str | None = None, text: str | None = None, limit: int | None = None
         ) -> list[ClipRow]:
    """What a clip table shows, for thousands of clips in milliseconds (`limit`: the first
    ones only, a screenful to paint while the rest is read)."""
    sql, args = _filtered(
        "SELECT id, name, state, frames, fps, width, height, motion, flags,"
        " COALESCE(error, note, ''), duplicate_of FROM clips WHERE dataset_id = ?", dataset_id,
        states, flag, text)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    out = []
    flags: dict[str | None, tuple[str, ...]] = {}  # a dataset has few distinct flag sets
    for r in conn.execute(sql, args):
        r = list(r)
        if r[8] not in flags:
            flags[r[8]] = tuple(json.loads(r[8] or "[]"))
        r[8] = flags[r[8]]
        out.append(ClipRow(r))
    return out


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes when any clip is added, removed or changed (every write sets updated_at): a
    screen compares it to skip a read the change did not touch."""
    return tuple(conn.execute("SELECT COUNT(*), MAX(updated_at) FROM clips").fetchone())


SOURCE_KEYS = ("provider", "license", "cost", "date", "url")  # a track's source record


def set_track(conn: sqlite3.Connection, clip_id: int, *, source: dict[str, Any] | None = None,
              preset: str | None = None, category: str | None = None) -> dict[str, Any]:
    """Record where a track came from (`source`: provider, license, cost, date, url; a value
    of None removes the key) and/or the style preset its tags were built from."""
    with transaction(conn):
        track = dict(get(conn, clip_id).track)
        if source:
            unknown = sorted(set(source) - set(SOURCE_KEYS))
            if unknown:
                raise ClipError(f"unknown source field(s) {', '.join(unknown)} (known: "
                                f"{', '.join(SOURCE_KEYS)})")
            merged = {**track.get("source", {}), **source}
            track["source"] = {k: v for k, v in merged.items() if v is not None}
        if preset is not None:
            track.update(preset=preset, category=category)
        update(conn, clip_id, track=json.dumps(track, sort_keys=True))
        return track


def style_counts(conn: sqlite3.Connection, dataset_id: int) -> dict[str, int]:
    """Tracks of the dataset (not rejected or in error) per style category; `none`: no preset
    applied yet."""
    counts: dict[str, int] = {}
    for (raw,) in conn.execute("SELECT track FROM clips WHERE dataset_id = ? AND state NOT IN"
                               " ('rejected', 'error')", (dataset_id,)):
        category = json.loads(raw or "{}").get("category") or "none"
        counts[category] = counts.get(category, 0) + 1
    return dict(sorted(counts.items()))


def set_window(conn: sqlite3.Connection, clip_id: int, start: float, seconds: float) -> None:
    """The part of a long source a clip keeps (a track's window), processed again."""
    if start < 0:
        raise ClipError("a window starts at 0 s or later")
    with transaction(conn):
        update(conn, clip_id, source_range=json.dumps([start, start + seconds]))
        reprocess(conn, [clip_id])
