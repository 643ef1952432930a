"""`lorad doctor`: checks a workspace without changing it: config, database integrity, schema,
folders, tools, free space and the daemon. Each check says what is wrong and what to do."""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from lorad.core import store
from lorad.core.errors import LoradError
from lorad.core.workspace import Workspace

LOW_SPACE_BYTES = 2 * 1024**3  # below this, ingest and pulls may fill the disk


@dataclass
class Check:
    name: str
    status: str  # ok, warning or error
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


def check_config(ws: Workspace) -> Check:
    try:
        ws.config()
    except LoradError as exc:
        return Check("config", "error", str(exc))
    return Check("config", "ok", str(ws.config_path))


def check_database(ws: Workspace) -> list[Check]:
    """Integrity, foreign keys and schema version, read-only: a damaged file is not touched."""
    path = ws.db_path
    if not path.exists():
        return [Check("database", "error", f"{path} is missing: put a backup back, or create "
                                           f"an empty workspace with `lorad init {ws.root}`")]
    try:
        store.refuse_empty(path)
    except store.StoreError as exc:
        return [Check("database", "error", str(exc))]
    checks = []
    try:
        conn = _read_only(path)
        try:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
            if problems != ["ok"]:
                checks.append(Check("integrity", "error", str(store.damaged(
                    path, "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""),
                    offer_doctor=False))))
            else:
                checks.append(Check("integrity", "ok", f"{path} ({path.stat().st_size} bytes)"))
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            checks.append(Check("references", "error" if broken else "ok",
                                f"{len(broken)} row(s) point at rows that are gone (first: "
                                f"{broken[0][0]} row {broken[0][1]})" if broken
                                else "every row's references exist"))
            checks.append(_schema(conn))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        detail = str(store.damaged(path, str(exc), offer_doctor=False)) \
            if store.is_damage(exc) else \
            f"{path} cannot be read: {exc}"
        checks.append(Check("integrity", "error", detail))
    return checks


def _schema(conn: sqlite3.Connection) -> Check:
    known = store.migration_files()[-1][0]
    version = store.schema_version(conn)
    if version > known:
        return Check("schema", "error", f"version {version} is newer than this lorad knows "
                                        f"({known}): upgrade lorad")
    if version < known:
        return Check("schema", "ok", f"version {version}; the next open migrates it to {known}")
    return Check("schema", "ok", f"version {version}")


def check_folders(ws: Workspace) -> list[Check]:
    folders = [ws.root, ws.state_dir]
    try:
        folders += [ws.media_dir(), ws.downloads_dir()]
    except LoradError:
        pass  # the config check says why
    checks = []
    for folder in folders:
        if not folder.is_dir():
            checks.append(Check("folder", "error", f"{folder} is missing: `lorad init "
                                                   f"{ws.root}` creates it"))
        elif not os.access(folder, os.W_OK | os.X_OK):
            checks.append(Check("folder", "error", f"{folder} is not writable by this user"))
    if not checks:
        checks.append(Check("folders", "ok", "workspace, state, media and downloads writable"))
    free = shutil.disk_usage(ws.root).free
    checks.append(Check("disk space", "warning" if free < LOW_SPACE_BYTES else "ok",
                        f"{free / 1024**3:.1f} GB free on the workspace's disk"
                        + (": ingest and checkpoint pulls may fill it" if free < LOW_SPACE_BYTES
                           else "")))
    return checks


def check_tools() -> list[Check]:
    checks = []
    for tool in ("ffmpeg", "ffprobe"):
        found = shutil.which(tool)
        checks.append(Check(tool, "ok" if found else "error",
                            found or f"{tool} is not on PATH: ingest needs it (install ffmpeg)"))
    return checks


def check_daemon(ws: Workspace) -> Check:
    from lorad.core import daemon

    st = daemon.status(ws)
    if not st.running:
        return Check("daemon", "warning", "not running: queued work waits until "
                                          "`lorad daemon start`")
    return Check("daemon", "ok", f"running, pid {st.pid}" + ("" if st.ready else
                                                               " (still starting)"))


def run(ws: Workspace) -> list[Check]:
    return [check_config(ws), *check_database(ws), *check_folders(ws), *check_tools(),
            check_daemon(ws)]
