"""A zero-byte or damaged lorad.db: never replaced by an empty store, never touched; every
command names the file and the way to recover, and `lorad doctor` finds it."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from test_captions import add_clip

from lorad.cli import main
from lorad.media import datasets


def run(ws, capsys, *args) -> tuple[int, str, str]:
    code = main(["-w", str(ws.root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def page_of(conn, table: str) -> int:
    return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]


def test_a_zero_byte_database_is_refused_not_made_again_empty(ws, capsys, fault_report):
    """A zero-byte lorad.db was silently recreated empty: the workspace looked new."""
    ws.db_path.write_bytes(b"")
    for wal in ws.root.glob("lorad.db-*"):
        wal.unlink()
    code, _out, err = run(ws, capsys, "dataset", "list")
    assert code == 1
    assert f"the workspace database {ws.db_path} is empty (0 bytes)" in err
    assert f"mv {ws.db_path} {ws.db_path}.empty" in err
    assert ws.db_path.stat().st_size == 0  # not migrated into an empty workspace
    code, out, _ = run(ws, capsys, "doctor", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert [c["status"] for c in report["checks"] if c["name"] == "database"] == ["error"]
    assert ws.db_path.stat().st_size == 0
    fault_report("zero-byte lorad.db", counted="bytes written into it", expected=0,
                 observed=ws.db_path.stat().st_size)


def test_a_missing_database_is_not_replaced_by_an_empty_one(ws, capsys):
    ws.db_path.unlink()
    code, _out, err = run(ws, capsys, "dataset", "list")
    assert code == 1 and f"no database at {ws.db_path}" in err and "lorad init" in err
    assert not ws.db_path.exists()


@pytest.mark.parametrize("where", ["header", "a table read at open", "a table read later"])
def test_a_damaged_database_names_the_file_and_the_way_back_and_is_kept(ws, conn, capsys, where,
                                                                        fault_report):
    """It gave "database disk image is malformed" with no path and no next step."""
    d = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait")
    offset = {"header": 0,
              "a table read at open": (page_of(conn, "schema_migrations") - 1) * 4096,
              "a table read later": (page_of(conn, "datasets") - 1) * 4096}[where]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(ws.db_path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 4000)
    before = digest(ws.db_path)
    code, _out, err = run(ws, capsys, "dataset", "show", d.name)
    assert code == 1
    assert f"the workspace database {ws.db_path} is damaged" in err
    assert f"sqlite3 {ws.db_path} .recover | sqlite3 {ws.root / 'lorad-recovered.db'}" in err
    assert "lorad doctor" in err and "traceback" not in err
    code, out, _ = run(ws, capsys, "doctor")
    assert code == 1
    assert any(line.startswith("ERROR  integrity") for line in out.splitlines()), out
    assert digest(ws.db_path) == before  # left exactly as it was
    fault_report(f"damaged lorad.db ({where})", counted="changes to the file", expected=0,
                 observed=int(digest(ws.db_path) != before))


def test_doctor_passes_a_healthy_workspace_and_reports_missing_media(ws, conn, capsys, tmp_path):
    d = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait")
    media = ws.media_dir() / "c.mp4"
    media.write_bytes(b"x")
    add_clip(conn, d.id, "c", media=str(media))
    code, out, _ = run(ws, capsys, "doctor", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], out
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["integrity"] == "ok" and statuses["media"] == "ok"
    media.unlink()
    code, out, _ = run(ws, capsys, "doctor")
    assert code == 0  # a warning, with the way to make it again
    assert "1 processed clip(s) have no media file (c)" in out
    shutil.rmtree(ws.state_dir)
    code, out, _ = run(ws, capsys, "doctor")
    assert code == 1 and f"{ws.state_dir} is missing" in out
