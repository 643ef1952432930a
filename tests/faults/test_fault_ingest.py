"""Ingest under faults: a daemon killed mid-conversion leaves no half-written file behind."""

from __future__ import annotations

from pathlib import Path

from helpers import wait_for
from media_factory import make_video

from lorad.core import files
from lorad.media import clips, datasets


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.rglob(files.PART_PREFIX + "*"))


def test_a_conversion_cut_by_kill_9_leaves_no_part_file_after_restart(ws, conn, daemon_proc,
                                                                       tmp_path):
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
    assert not any(p.exists() for p in left)
    assert "unfinished file(s)" in ws.log_path.read_text()
