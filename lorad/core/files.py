"""Small file helpers every stage uses: content hashes and cheap copies."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

CHUNK = 1 << 20
# A file being written beside its final name starts with this and is renamed when complete;
# one left behind was cut off by a crash, so the daemon removes them when it starts.
# (Resumable pulls use `name.part` instead: those are kept.)
PART_PREFIX = ".part-"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def link_or_copy(src: Path, dst: Path) -> None:
    """Hardlink (instant, no extra space); copy across filesystems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def part_name(target: Path) -> Path:
    """Where to write `target` until it is complete (see PART_PREFIX)."""
    return target.with_name(f"{PART_PREFIX}{os.getpid()}-{target.name}")


def remove_leftover_parts(*folders: Path) -> tuple[int, int]:
    """Delete the PART_PREFIX files under `folders` (files, bytes). Call only while no one can be
    writing them: the daemon does at start, holding its lock."""
    count = size = 0
    for folder in folders:
        for dirpath, _dirs, names in os.walk(folder):
            for name in names:
                if name.startswith(PART_PREFIX):
                    path = Path(dirpath) / name
                    try:
                        size += path.stat().st_size
                        path.unlink()
                        count += 1
                    except FileNotFoundError:
                        continue
    return count, size
