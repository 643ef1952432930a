"""A workspace folder moved whole keeps working: paths inside it are stored relative to it."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import run_jobs, wait_for
from media_factory import make_video

from lorad.captions import versions
from lorad.core import daemon, workspace
from lorad.datasets import export, preflight
from lorad.media import clips, datasets, profiles

PROFILE = profiles.get("wan21-t2v-480p-portrait")


def _ingest(ws, conn, tmp_path) -> datasets.Dataset:
    folder = tmp_path / "sources"
    folder.mkdir()
    inside = ws.root / "raw"  # a source kept inside the workspace moves with it
    inside.mkdir()
    sources = [make_video(folder / "a.mp4", seconds=3, audio=False),
               make_video(inside / "b.mp4", seconds=3, audio=False, source="mandelbrot")]
    d = datasets.create(conn, "trucks", PROFILE.name, trigger="TRK")
    clips.add(conn, d, sources)
    run_jobs(ws, timeout=120)
    for c in clips.list_clips(conn, d.id):
        assert c.state == "ready", c.error
        versions.set_caption(conn, c.id, "TRK, a white pickup truck parked on a dirt road, "
                                         "static shot, daylight")
        assert clips.set_review(conn, [c.id], "approved") == (1, 0)
    return d


def test_a_moved_workspace_finds_its_media_and_writes_only_under_its_new_place(ws, conn,
                                                                              tmp_path,
                                                                              fault_report):
    """After a move, `dataset check` reported every clip's media missing, and the daemon
    re-created the old folder to write into it."""
    d = _ingest(ws, conn, tmp_path)
    raw = conn.execute("SELECT source_path, media_path, filmstrip_path FROM clips").fetchall()
    stored = [p for row in raw for p in row if p]
    inside = [p for p in stored if "a.mp4" not in p]
    assert inside and not any(Path(p).is_absolute() for p in inside)
    assert any(Path(p).is_absolute() for p in stored)  # the source outside stays absolute
    conn.close()

    old = ws.root
    moved = shutil.move(old, tmp_path / "elsewhere" / "ws")
    assert not old.exists()
    ws2 = workspace.find(moved)
    conn2 = ws2.connect()
    try:
        d2 = datasets.get(conn2, d.name)
        for c in clips.list_clips(conn2, d2.id):
            assert Path(c.media_path).is_relative_to(moved) and Path(c.media_path).exists()
        report = preflight.check(conn2, d2, PROFILE)
        fault_report("workspace folder moved", counted="clips with missing media after it",
                     expected=0, observed=sum("missing" in f.message for f in report.errors))
        assert report.ok, [f.message for f in report.errors]
        p = export.plan(conn2, d2, PROFILE)
        version = export.record(conn2, p, export.write(p, export.export_dir(ws2.root, p)))
        assert Path(export.get_version(conn2, version).export_path).is_relative_to(moved)
        # more work after the move lands under the new place, never the old one
        clips.reprocess(conn2, [c.id for c in clips.list_clips(conn2, d2.id)])
        run_jobs(ws2, timeout=120)
        assert all(c.state in ("ready", "approved") and Path(c.media_path).is_relative_to(moved)
                   for c in clips.list_clips(conn2, d2.id))
    finally:
        conn2.close()
    assert not old.exists()


def test_a_daemon_whose_workspace_is_moved_stops_and_says_where_to_start(ws, conn, daemon_proc,
                                                                          tmp_path,
                                                                          fault_report):
    daemon_proc.start()
    wait_for(lambda: daemon.status(ws).ready, message="the daemon serving")
    conn.close()
    old = ws.root
    moved = Path(shutil.move(old, tmp_path / "elsewhere"))
    assert daemon_proc.proc.wait(20) == 0
    log = (moved / ws.log_path.relative_to(old)).read_text()
    assert "the workspace was moved or deleted while the daemon ran" in log
    assert "daemon start" in log
    assert not old.exists()  # nothing re-created the old folder
    fault_report("workspace moved under a running daemon", counted="old folders re-created",
                 expected=0, observed=int(old.exists()), note="daemon stops, says where")
