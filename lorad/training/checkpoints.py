"""Checkpoints: the LoRA files a run saves, found in its log, pulled from the pod once complete
and verified (safetensors header and metadata, SHA-256 against the pod's)."""

from __future__ import annotations

import json
import posixpath
import sqlite3
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from lorad.core import jobs, store
from lorad.core.errors import LoradError, PermanentError

PULL_KIND = "checkpoint.pull"
PULL_ATTEMPTS = 20  # a checkpoint still being written is retried until it is whole


class CheckpointError(LoradError):
    pass


@dataclass
class Checkpoint:
    id: int
    run_id: int | None
    remote_path: str | None
    local_path: str | None
    step: int | None
    epoch: int | None
    sha256: str | None
    size: int | None
    state: str  # remote | local
    created_at: float
    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row, root: Path) -> Checkpoint:
        """`root`: the workspace the row's relative paths are in (store.root_of)."""
        data = dict(row)
        data["local_path"] = store.local_path(root, data["local_path"])
        data["metadata"] = json.loads(data["metadata"] or "{}")
        return cls(**data)

    @property
    def label(self) -> str:
        return self.name or f"checkpoint {self.id}"


def record(conn: sqlite3.Connection, run_id: int, remote_path: str, *, step: int | None = None,
           epoch: int | None = None, name: str | None = None) -> int | None:
    """A checkpoint the trainer said it saved; its pull is queued. None if already known.
    `name` (default: the file's name) is also its file name here: a trainer that saves every
    checkpoint under one name in its own folder (`checkpoint-500/lora.safetensors`) gets the
    folder in it."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO checkpoints (run_id, remote_path, name, step, epoch, state,"
        " created_at) VALUES (?,?,?,?,?,'remote',?)",
        (run_id, remote_path, name or posixpath.basename(remote_path), step, epoch,
         time.time()))
    if not cur.rowcount:
        return None
    queue_pull(conn, cur.lastrowid)
    return cur.lastrowid


def get(conn: sqlite3.Connection, checkpoint_id: int) -> Checkpoint:
    row = conn.execute("SELECT * FROM checkpoints WHERE id = ?", (checkpoint_id,)).fetchone()
    if row is None:
        raise CheckpointError(f"no checkpoint with id {checkpoint_id}")
    return Checkpoint.from_row(row, store.root_of(conn))


def find(conn: sqlite3.Connection, ref: str) -> Checkpoint | None:
    """A checkpoint by id, file name, name without .safetensors, or local path."""
    if ref.isdigit():
        row = conn.execute("SELECT * FROM checkpoints WHERE id = ?", (int(ref),)).fetchone()
        return Checkpoint.from_row(row, store.root_of(conn)) if row else None
    for candidate in (ref, f"{ref}.safetensors"):
        row = conn.execute("SELECT * FROM checkpoints WHERE name = ? OR local_path = ? ORDER BY"
                           " id DESC", (candidate, str(Path(candidate).resolve()))).fetchone()
        if row:
            return Checkpoint.from_row(row, store.root_of(conn))
    return None


def for_run(conn: sqlite3.Connection, run_id: int) -> list[Checkpoint]:
    root = store.root_of(conn)
    return [Checkpoint.from_row(r, root) for r in conn.execute(
        "SELECT * FROM checkpoints WHERE run_id = ? ORDER BY id", (run_id,))]


def names(conn: sqlite3.Connection) -> dict[int, str]:
    """Every checkpoint's name by id (for lists that show where a generation came from)."""
    return {r[0]: r[1] or "" for r in conn.execute("SELECT id, name FROM checkpoints")}


def queue_pull(conn: sqlite3.Connection, checkpoint_id: int) -> int:
    """Queue the checkpoint's pull, unless one is queued or running already."""
    active = jobs.active_with(conn, PULL_KIND, "checkpoint_id", checkpoint_id)
    if active:
        return active[0]
    return jobs.enqueue(conn, PULL_KIND, {"checkpoint_id": checkpoint_id},
                        max_attempts=PULL_ATTEMPTS)


def pull_missing(conn: sqlite3.Connection, run_id: int) -> int:
    """Queue the pull of every checkpoint of the run not on this machine; returns how many."""
    with store.transaction(conn):
        missing = [c.id for c in for_run(conn, run_id) if c.state != "local"]
        for checkpoint_id in missing:
            queue_pull(conn, checkpoint_id)
    return len(missing)


def pulls_pending(conn: sqlite3.Connection, run_ids: list[int]) -> int:
    """Pulls not finished yet of these runs' checkpoints (a pod's stop waits for them)."""
    if not run_ids:
        return 0
    runs_in = ",".join("?" * len(run_ids))
    active_in = ",".join("?" * len(jobs.ACTIVE))
    return conn.execute(
        "SELECT COUNT(*) FROM jobs j JOIN checkpoints c ON c.id = json_extract(j.payload,"
        f" '$.checkpoint_id') WHERE j.kind = ? AND j.state IN ({active_in})"
        f" AND c.run_id IN ({runs_in})", (PULL_KIND, *jobs.ACTIVE, *run_ids)).fetchone()[0]


def mark_pulled(conn: sqlite3.Connection, checkpoint_id: int, local: Path, sha256: str,
                metadata: dict[str, str], *, step: int | None, epoch: int | None) -> None:
    store.table(conn, "checkpoints").update(checkpoint_id, {
        "local_path": store.stored_path(conn, local), "sha256": sha256, "size": local.stat().st_size,
        "metadata": json.dumps(metadata, sort_keys=True), "step": step, "epoch": epoch,
        "state": "local"})


def expected_size(header_bytes: bytes) -> int | None:
    """Full file size a safetensors file will have, from its first bytes (None if the header
    is not all there yet)."""
    if len(header_bytes) < 8:
        return None
    (n,) = struct.unpack("<Q", header_bytes[:8])
    if len(header_bytes) < 8 + n:
        return None
    try:
        header = json.loads(header_bytes[8:8 + n])
    except ValueError:
        return None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
              default=0)
    return 8 + n + end


TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")  # torch.save: a zip archive since torch 1.6


def is_safetensors(name: str) -> bool:
    return name.endswith(".safetensors")


def verify(path: Path) -> dict[str, Any]:
    """Open with the safetensors library; returns the metadata (all strings). Another format
    (a command trainer's torch `.pt`) is checked as far as it can be without loading it: not
    empty, and a torch zip archive whose every member's CRC matches."""
    if not is_safetensors(path.name):
        return verify_other(path)
    try:
        with safe_open(str(path), framework="numpy") as fh:
            metadata = fh.metadata() or {}
            if not list(fh.keys()):
                raise PermanentError(f"{path.name}: no tensors inside")
    except PermanentError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means a broken file
        raise PermanentError(f"{path.name} is not a valid safetensors file: {exc}") from None
    return metadata


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes when a checkpoint is found, pulled or renamed."""
    return tuple(conn.execute("SELECT COUNT(*), MAX(id), group_concat(state) FROM checkpoints"
                              ).fetchone())


def verify_other(path: Path) -> dict[str, Any]:
    """A checkpoint lorad does not unpickle (torch.load runs code): whole, not empty, and when
    it is a zip archive (torch.save's format), every member intact."""
    import zipfile

    size = path.stat().st_size
    if size == 0:
        raise PermanentError(f"{path.name} is empty")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError) as exc:
            raise PermanentError(f"{path.name} is a broken archive: {exc}") from None
        if bad is not None:
            raise PermanentError(f"{path.name}: {bad} inside it is corrupt")
    elif path.suffix in TORCH_SUFFIXES and size < 64:
        raise PermanentError(f"{path.name} is too small to be a torch checkpoint ({size} bytes)")
    return {}
