"""Ingest under faults: a daemon killed mid-conversion leaves no half-written file behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import daemon_env
from helpers import run_jobs, wait_for
from media_factory import make_video

from lorad.core import daemon, files, jobs
from lorad.media import clips, datasets


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.rglob(files.PART_PREFIX + "*"))


def test_a_conversion_cut_by_kill_9_leaves_no_part_file_after_restart(ws, conn, daemon_proc,
                                                                       tmp_path, fault_report):
    """Interrupted ingest left `.part-*` files in the media folders forever."""
    source = make_video(tmp_path / "long.mp4", seconds=6, size="1920x1080", source="testsrc2",
                        audio=False)
    d = datasets.create(conn, "d", "wan21-t2v-480p-portrait")
    clips.add(conn, d, [source])
    media = ws.media_dir()
    daemon_proc.start()
    wait_for(lambda: _parts(media), interval=0.005, message="ffmpeg writing the clip")
    daemon_proc.proc.kill()  # the worst moment: the clip half written
    daemon_proc.proc.wait(10)
    left = _parts(media)
    assert left, "the kill came too late to leave a part file"
    daemon_proc.start()
    wait_for(lambda: clips.list_clips(conn, d.id)[0].state == "ready",
             message="the clip converted by the next daemon")
    assert _parts(media) == []
    fault_report("kill -9 during a conversion", counted="part files left after restart",
                 expected=0, observed=len(_parts(media)),
                 daemon_alive=daemon_proc.proc.poll() is None)
    assert not any(p.exists() for p in left)
    assert "unfinished file(s)" in ws.log_path.read_text()


def _lorad(ws, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorad", "-w", str(ws.root), *args],
                          capture_output=True, text=True, env=daemon_env(), timeout=300)


def _long_source(tmp_path: Path) -> Path:
    """Three shots: 3.5 s, 1.5 s (long enough to be a shot, too short to train on), 3.5 s."""
    parts = [make_video(tmp_path / f"part{i}.mp4", seconds=s, size="540x960", source=src,
                        audio=False)
             for i, (src, s) in enumerate([("smptebars", 3.5), ("color=c=red", 1.5),
                                           ("mandelbrot", 3.5)])]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    long = tmp_path / "in" / "long source.mp4"
    long.parent.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", str(long)], check=True)
    return long


def test_split_scenes_failures_and_short_shots_are_shown_and_counted(ws, conn, tmp_path,
                                                                     fault_report):
    """--split-scenes failures were invisible: no clip row, `--wait` printed 0/0 and exited 0,
    the failed file was queued again on every run, and too-short shots vanished."""
    long = _long_source(tmp_path)
    (long.parent / "broken.mp4").write_bytes(b"not a video at all" * 100)
    make_video(long.parent / "brief.mp4", seconds=1.2, size="540x960", audio=False)
    d = datasets.create(conn, "shots", "wan21-t2v-480p-portrait")
    try:
        first = _lorad(ws, "clips", "add", "shots", str(long.parent), "--split-scenes", "--wait")
    finally:
        daemon.stop(ws)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "split long source.mp4: 2 shot(s) queued, 1 shorter than 2.56 s left out" \
        in first.stdout
    assert "done: 2 error, 2 ready" in first.stdout
    assert "2 clip(s) in error" in first.stderr
    errors = {Path(c.source_path).name: c.error
              for c in clips.list_clips(conn, d.id, states=["error"])}
    assert sorted(errors) == ["brief.mp4", "broken.mp4"]
    fault_report("--split-scenes on 2 bad files and 1 good", counted="failures shown as clips",
                 expected=2, observed=len(errors))
    assert "none of its 1 shot(s) is as long as the 2.56 s" in errors["brief.mp4"]

    again = _lorad(ws, "clips", "add", "shots", str(long.parent), "--split-scenes")
    assert again.returncode == 1
    assert "queued: 0 new, 0 changed, 1 already in shots" in again.stdout
    assert again.stderr.count("not split again:") == 2
    assert jobs.counts_by_state(conn)["queued"] == 0  # nothing queued twice

    retried = _lorad(ws, "clips", "reprocess", "shots", "--errors")
    assert retried.returncode == 0 and "2 clip(s) queued" in retried.stdout
    assert jobs.counts_by_state(conn)["queued"] == 2


def test_an_empty_folder_is_an_error_not_a_silent_success(ws, conn, tmp_path):
    datasets.create(conn, "d", "wan21-t2v-480p-portrait")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no media here")
    out = _lorad(ws, "clips", "add", "d", str(tmp_path / "empty"))
    assert out.returncode == 1
    assert f"no media files in {tmp_path / 'empty'}" in out.stderr


def test_a_touch_does_not_re_encode_and_copies_follow_their_originals_content(ws, conn,
                                                                               tmp_path,
                                                                               fault_report):
    """`touch` alone re-encoded a file; a copy stayed "rejected, duplicate" of an original
    whose content had changed, or that had failed."""
    folder = tmp_path / "in"
    a = make_video(folder / "a.mp4", seconds=3, size="540x960", audio=False)
    shutil.copy(a, folder / "b.mp4")
    d = datasets.create(conn, "d", "wan21-t2v-480p-portrait")
    clips.add(conn, d, [folder / "a.mp4"])
    run_jobs(ws)
    clips.add(conn, d, [folder / "b.mp4"])
    run_jobs(ws)
    first, copy = clips.list_clips(conn, d.id)
    assert copy.duplicate_of == first.id and copy.state == "rejected"
    made = Path(first.media_path).stat().st_mtime_ns

    os.utime(a, (time.time() + 60, time.time() + 60))  # touch: same bytes, new time
    assert clips.add(conn, d, [folder]).changed == [first.id]
    run_jobs(ws)
    again = clips.get(conn, first.id)
    assert jobs.get(conn, again.job_id).result == {"clip_id": first.id, "unchanged": True}
    assert again.state == "ready" and Path(again.media_path).stat().st_mtime_ns == made
    fault_report("touch on an ingested file", counted="re-encodes", expected=0,
                 observed=int(Path(again.media_path).stat().st_mtime_ns != made))
    assert clips.get(conn, copy.id).duplicate_of == first.id

    make_video(a, seconds=3, size="540x960", source="mandelbrot", audio=False)  # new content
    assert clips.add(conn, d, [folder]).changed == [first.id]
    run_jobs(ws)
    changed, freed = clips.get(conn, first.id), clips.get(conn, copy.id)
    assert changed.state == "ready" and Path(changed.media_path).stat().st_mtime_ns != made
    assert freed.duplicate_of is None and freed.state == "ready", freed.error
    assert Path(freed.media_path).exists() and "duplicate" not in freed.flags

    shutil.copy(folder / "b.mp4", folder / "c.mp4")  # a copy of b, which then breaks
    clips.add(conn, d, [folder / "c.mp4"])
    run_jobs(ws)
    third = [c for c in clips.list_clips(conn, d.id) if c.id not in (first.id, copy.id)][0]
    assert third.duplicate_of == copy.id
    (folder / "b.mp4").write_bytes(b"broken now" * 1000)
    clips.add(conn, d, [folder])
    run_jobs(ws)
    assert clips.get(conn, copy.id).state == "error"
    alone = clips.get(conn, third.id)  # its own bytes are fine: processed on its own
    assert alone.duplicate_of is None and alone.state == "ready", alone.error
