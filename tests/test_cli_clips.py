"""The dataset and clips commands, end to end in-process (the daemon loop runs here too)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_jobs
from media_factory import make_video

from lorad.cli import main


def run(ws, capsys, *args) -> tuple[int, str, str]:
    code = main(["-w", str(ws.root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_add_list_review(ws, capsys, tmp_path):
    make_video(tmp_path / "raw" / "one.mp4", seconds=3, size="540x960")
    make_video(tmp_path / "raw" / "short.mp4", seconds=1, size="540x960")
    code, out, _ = run(ws, capsys, "dataset", "create", "trucks", "--profile",
                       "wan21-t2v-480p-portrait", "--trigger", "TRUCKUGC")
    assert code == 0 and "lorad clips add trucks" in out
    code, out, _ = run(ws, capsys, "clips", "add", "trucks", str(tmp_path / "raw"))
    assert code == 0 and "2 new" in out and "daemon is not running" in out
    run_jobs(ws)
    code, out, _ = run(ws, capsys, "clips", "list", "trucks", "--json")
    listed = {c["source_path"].rsplit("/", 1)[1]: c for c in json.loads(out)}
    assert listed["one.mp4"]["state"] == "ready"
    assert listed["short.mp4"]["state"] == "error"
    code, out, _ = run(ws, capsys, "clips", "approve", "trucks", str(listed["one.mp4"]["id"]),
                       str(listed["short.mp4"]["id"]))
    assert "1 clip(s) approved; 1 not reviewable" in out
    code, out, _ = run(ws, capsys, "clips", "list", "trucks", "--state", "error")
    assert "too short" in out
    code, out, _ = run(ws, capsys, "clips", "add", "trucks", str(tmp_path / "raw"))
    assert "0 new, 0 changed, 2 already in trucks" in out
    code, out, _ = run(ws, capsys, "dataset", "list", "--json")
    assert json.loads(out)[0]["clips"] == {"approved": 1, "error": 1}


def test_unknown_profile_and_dataset_are_one_line_errors(ws, capsys):
    code, _, err = run(ws, capsys, "dataset", "create", "x", "--profile", "nope")
    assert code == 1 and "no profile named 'nope'" in err and "wan21-t2v-480p-portrait" in err
    assert "Traceback" not in err
    code, _, err = run(ws, capsys, "clips", "list", "missing")
    assert code == 1 and "no dataset named 'missing'" in err


def test_profiles_lists_builtins_and_config(ws, capsys):
    ws.config_path.write_text('[profiles.tall]\nbase = "wan22-14b-720p"\nframes = 49\n')
    code, out, _ = run(ws, capsys, "profiles", "--json")
    data = json.loads(out)
    assert data["tall"]["frames"] == 49 and data["tall"]["width"] == 1280
    assert "image-1024" in data


def test_rules_bulk_check_and_export_from_the_cli(ws, conn, capsys, tmp_path):
    from test_captions import add_clip

    from lorad.captions import versions
    from lorad.media import datasets, profiles

    d = datasets.create(conn, "t", "wan21-t2v-480p-portrait", trigger="TRK")
    fp = profiles.get("wan21-t2v-480p-portrait").fingerprint()
    ids = []
    for n in range(2):
        media = tmp_path / f"m{n}.mp4"
        media.write_bytes(b"v%d" % n)
        ids.append(add_clip(conn, d.id, f"m{n}", media=str(media)))
        conn.execute("UPDATE clips SET profile_fingerprint = ? WHERE id = ?", (fp, ids[-1]))
    code, out, _ = run(ws, capsys, "dataset", "rules", "t", "--template",
                       "[color] truck parked in a field, static shot", "--ban", "drone")
    assert json.loads(out)["caption_rules"]["banned_words"] == ["drone"]
    code, out, _ = run(ws, capsys, "captions", "bulk", "t", "template")
    assert "2 caption(s) would change" in out and versions.current(conn, ids[0]) is None
    run(ws, capsys, "captions", "bulk", "t", "--apply", "template")
    code, out, _ = run(ws, capsys, "dataset", "check", "t")
    assert code == 1 and "unfilled placeholder [color]" in out
    code, out, _ = run(ws, capsys, "dataset", "export", "t")
    assert code == 1 and "export stopped" in out
    run(ws, capsys, "captions", "bulk", "t", "--apply", "replace", "[color]", "red")
    versions.set_caption(conn, ids[1], "TRK, blue truck parked in a field, static shot")
    code, out, _ = run(ws, capsys, "dataset", "export", "t", "--json")
    assert code == 0, out
    result = json.loads(out[out.index("{"):])
    assert result["clips"] == 2
    assert (Path(result["path"]) / "dataset.toml").exists()
    code, again, _ = run(ws, capsys, "dataset", "export", "t", "--json")
    assert json.loads(again[again.index("{"):])["content_hash"] == result["content_hash"]


def test_a_clip_whose_source_is_gone_can_be_rejected_as_its_error_says(ws, capsys, tmp_path):
    """The message said "put it back, or reject this clip", and a clip in error could not be
    rejected."""
    video = make_video(tmp_path / "raw" / "gone.mp4", seconds=3, size="540x960")
    w = ["-w", str(ws.root)]
    run(ws, capsys, "dataset", "create", "trucks", "--profile", "wan21-t2v-480p-portrait")
    run(ws, capsys, "clips", "add", "trucks", str(video))
    video.unlink()
    run_jobs(ws)
    listed = json.loads(run(ws, capsys, "clips", "list", "trucks", "--json")[1])
    clip = listed[0]
    assert clip["state"] == "error" and f"lorad clips reject DATASET {clip['id']}" in clip["error"]
    assert main([*w, "clips", "approve", "trucks", str(clip["id"])]) == 0
    assert "0 clip(s) approved; 1 not reviewable" in capsys.readouterr().out
    assert main([*w, "clips", "reject", "trucks", str(clip["id"])]) == 0
    assert "1 clip(s) rejected" in capsys.readouterr().out
