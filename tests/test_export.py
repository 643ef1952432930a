"""Dataset versions, exact musubi-tuner export, and preflight on purpose-built bad datasets."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from media_factory import tiny_clip
from musubi_schema import assert_valid
from test_captions import add_clip

from lorad.captions import versions
from lorad.datasets import export, preflight
from lorad.datasets.formats import musubi
from lorad.media import datasets, profiles

PROFILE = profiles.get("wan21-t2v-480p-portrait")


@pytest.fixture
def ready(conn, tmp_path):
    """A small approved dataset with media files and good captions."""
    d = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait", trigger="TRUCKUGC")
    datasets.update_settings(conn, d.id, eval_prompts=["TRUCKUGC, white Ram 1500 parked on a "
                                                       "dirt road, static shot"],
                             caption_rules={"negative_prompt": "spinning wheels, motion blur"})
    ids = []
    for n, color in enumerate(["red", "blue", "green", "black"]):
        media = tiny_clip(tmp_path / "media" / f"clip{n}-abcd.mp4", color)
        clip = add_clip(conn, d.id, f"clip{n}-abcd", media=str(media))
        conn.execute("UPDATE clips SET profile_fingerprint = ? WHERE id = ?",
                     (PROFILE.fingerprint(), clip))
        versions.set_caption(conn, clip, f"TRUCKUGC, {color} pickup truck parked in a dry field, "
                                         "static shot")
        ids.append(clip)
    return datasets.get(conn, "trucks"), ids


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_export_is_deterministic_and_musubi_valid(conn, ready, tmp_path):
    d, ids = ready
    p1 = export.plan(conn, d, PROFILE)
    out1 = export.write(p1, tmp_path / "one")
    p2 = export.plan(conn, d, PROFILE)
    out2 = export.write(p2, tmp_path / "two")
    assert p1.content_hash == p2.content_hash
    assert files(out1) == files(out2)
    config = tomllib.loads((out1 / "dataset.toml").read_text())
    assert_valid(config)
    entry = config["datasets"][0]
    assert entry["target_frames"] == [41] and entry["frame_extraction"] == "head"
    assert isinstance(entry["source_fps"], float) and "source_fps = 16.0" in \
        (out1 / "dataset.toml").read_text()
    assert entry["video_directory"].endswith("/train")
    assert (out1 / "train" / "clip0-abcd.txt").read_text() == \
        "TRUCKUGC, red pickup truck parked in a dry field, static shot\n"
    prompts = (out1 / "sample_prompts.txt").read_text().splitlines()
    assert prompts[1] == ("TRUCKUGC, white Ram 1500 parked on a dirt road, static shot --w 480 "
                          f"--h 848 --f 41 --d 42 --s 20 --i {p1.remote_root}/samples/start-1.png"
                          " --n spinning wheels, motion blur")
    version = export.record(conn, p1, out1)
    assert export.record(conn, p2, out2) == version  # same content, same version
    tools = json.loads((out1 / "manifest.json").read_text())["tools"]  # how it was made
    assert tools["lorad"] and tools["ffmpeg"]


def test_one_changed_caption_gives_a_new_hash(conn, ready):
    d, ids = ready
    before = export.plan(conn, d, PROFILE).content_hash
    versions.set_caption(conn, ids[0], "TRUCKUGC, red pickup truck parked by a fence, static shot")
    after = export.plan(conn, d, PROFILE).content_hash
    assert before != after
    versions.undo(conn, ids[0])  # back to the same content: back to the same hash
    assert export.plan(conn, d, PROFILE).content_hash == before


def test_validation_split_and_jsonl(conn, ready, tmp_path):
    d, ids = ready
    opts = export.Options(validation=0.25, jsonl=True, remote_root="/workspace/x")
    p = export.plan(conn, d, PROFILE, opts)
    assert [i.split for i in p.items].count("val") == 1
    assert [i.split for i in export.plan(conn, d, PROFILE, opts).items] == \
        [i.split for i in p.items]
    out = export.write(p, tmp_path / "v")
    assert_valid(tomllib.loads((out / "dataset.toml").read_text()))
    assert_valid(tomllib.loads((out / "dataset_val.toml").read_text()))
    lines = (out / "train.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(line.startswith('{"video_path": "/workspace/x/train/')
                                   for line in lines)
    manifest = (out / "manifest.json").read_text()
    assert '"caption_version_id"' in manifest and '"clip_id"' in manifest


def test_preflight_passes_a_good_dataset(conn, ready):
    d, _ = ready
    report = preflight.check(conn, d, PROFILE)
    assert report.ok, [f.line() for f in report.findings]
    assert (report.items, report.batches) == (4, 4)


@pytest.mark.parametrize("breakage,expected", [
    ("short", "shorter than every target"),
    ("collision", "collides with another clip"),
    ("no_caption", "no caption"),
    ("placeholder", "unfilled placeholder [color]"),
    ("fps", "clip is 24 fps but the profile trains at 16"),
    ("prompt", "eval prompt 1 contains ' --'"),
    ("negative", "the negative prompt contains ' --'"),
    ("missing_media", "processed media is missing"),
    ("stale", "older version of profile"),
])
def test_preflight_catches_each_mistake(conn, ready, breakage, expected):
    d, ids = ready
    if breakage == "short":
        conn.execute("UPDATE clips SET frames = 33 WHERE id = ?", (ids[0],))
    elif breakage == "collision":
        conn.execute("UPDATE clips SET name = 'CLIP0-ABCD' WHERE id = ?", (ids[1],))
    elif breakage == "no_caption":
        versions.set_caption(conn, ids[0], "")
    elif breakage == "placeholder":
        versions.set_caption(conn, ids[0], "TRUCKUGC, [color] pickup truck parked in a field")
    elif breakage == "fps":
        conn.execute("UPDATE clips SET fps = 24 WHERE id = ?", (ids[0],))
    elif breakage == "prompt":
        datasets.update_settings(conn, d.id, eval_prompts=["a truck --in a field"])
        d = datasets.get(conn, d.name)
    elif breakage == "negative":  # it goes into sample_prompts.txt as `--n ...`
        datasets.update_settings(conn, d.id, caption_rules={
            **d.settings.get("caption_rules", {}), "negative_prompt": "blur --s 500 --w 4096"})
        d = datasets.get(conn, d.name)
    elif breakage == "missing_media":
        conn.execute("UPDATE clips SET media_path = '/nowhere.mp4' WHERE id = ?", (ids[0],))
    elif breakage == "stale":
        conn.execute("UPDATE clips SET profile_fingerprint = 'old' WHERE id = ?", (ids[0],))
    report = preflight.check(conn, d, PROFILE)
    assert any(expected in f.message for f in report.findings), [f.line() for f in
                                                                 report.findings]
    if breakage != "stale":
        assert not report.ok


def test_preflight_with_every_clip_too_short_predicts_zero_items(conn, ready):
    d, ids = ready
    conn.execute("UPDATE clips SET frames = 17 WHERE dataset_id = ?", (d.id,))
    report = preflight.check(conn, d, PROFILE)
    assert report.items == 0
    assert any("0 training items" in f.message for f in report.errors)


def test_no_approved_clips_is_an_error(conn):
    d = datasets.create(conn, "empty", "wan21-t2v-480p-portrait")
    assert "no approved clips" in preflight.check(conn, d, PROFILE).errors[0].message


@pytest.mark.parametrize("config,problem", [
    ({"general": {"cache_directory": "/c"}, "datasets": []}, "may not hold 'cache_directory'"),
    ({"datasets": [{"video_directory": "/v", "fps": 16}]}, "extra key 'fps' not allowed"),
    ({"datasets": [{"video_directory": "/v", "source_fps": 16, "caption_extension": ".txt"}]},
     "source_fps has the wrong type"),
    ({"datasets": [{"video_directory": "/a", "caption_extension": ".txt"},
                   {"video_directory": "/a", "caption_extension": ".txt"}]}, "cache directory"),
    ({"datasets": [{"video_directory": "/v", "target_frames": [48],
                    "caption_extension": ".txt"}]}, "4n+1"),
    ({"model": {}, "datasets": []}, "top-level key 'model'"),
])
def test_schema_check_names_the_unknown_or_mistyped_key(config, problem):
    assert any(problem in p for p in musubi.check_config(config))


def test_a_24fps_wan_dataset_is_judged_as_musubi_reads_it(conn, tmp_path):
    """musubi resamples every Wan video to 16 fps and has no TI2V-5B training: a wan22-5b-720p
    dataset of 121-frame 24 fps clips gives zero training items there, yet preflight said fine."""
    profile = profiles.get("wan22-5b-720p")
    d = datasets.create(conn, "five", profile.name, trigger="TRK")
    for n in range(3):
        media = tmp_path / f"c{n}.mp4"
        media.write_bytes(b"v%d" % n)
        clip = add_clip(conn, d.id, f"c{n}", media=str(media), frames=121, fps=24.0)
        conn.execute("UPDATE clips SET profile_fingerprint = ? WHERE id = ?",
                     (profile.fingerprint(), clip))
        versions.set_caption(conn, clip, f"TRK, a truck number {n} parked in a dry field")
    report = preflight.check(conn, d, profile, export.Options(format="musubi"))
    errors = [f.message for f in report.errors]
    assert report.items == 0
    assert any("0 training items per epoch" in e for e in errors)
    assert any("121 frames become 81" in e and "16 fps" in e for e in errors)
    assert any("made for diffusion-pipe" in e and "14B only" in e
               and "export it for diffusion-pipe" in e for e in errors)
    # its own trainer reads it at 24 fps: every clip whole, in the 121-frame bucket
    report = preflight.check(conn, d, profile)
    assert report.ok and report.items == 3
    assert report.buckets == {"c0": 121, "c1": 121, "c2": 121}


@pytest.mark.parametrize("profile,fmt,reads", [
    ("ace-step-audio", "musubi", "image and video"),
    ("ace-step-audio", "diffusion-pipe", "image and video"),
    ("wan21-t2v-480p-portrait", "ace-step", "audio"),
])
def test_a_format_refuses_clips_of_a_media_its_trainer_does_not_read(conn, profile, fmt, reads):
    """diffusion-pipe took a music dataset as 2 items in the 1-frame bucket; musubi refused it
    for Wan 2.2's sake."""
    d = datasets.create(conn, "set", profile)
    clip = add_clip(conn, d.id, "c0")
    versions.set_caption(conn, clip, "lofi, piano, mellow, 70 bpm")
    report = preflight.check(conn, d, profiles.get(profile), export.Options(format=fmt))
    refusal = [f.message for f in report.errors if f.message.startswith(f"{fmt} reads")]
    assert refusal == [f"{fmt} reads {reads} clips, not {profiles.get(profile).media}: export "
                       f"this dataset for {profiles.get(profile).format} (its profile's format)"]
    assert report.items == 0 and not report.buckets
    assert not any("14B" in f.message for f in report.errors)


@pytest.mark.parametrize("frames,fps,kept", [(121, 24.0, 81), (81, 16.0, 81), (61, 30.0, 33),
                                             (41, 12.0, 41)])
def test_frames_kept_at_16fps_follow_musubis_loader(frames, fps, kept):
    """image_video_dataset.load_video keeps a frame each time int(i * 16 / fps) changes."""
    assert musubi.frames_at_16fps(frames, fps) == kept


def test_each_eval_prompt_has_a_start_image_from_a_training_clip(conn, ready, tmp_path):
    """musubi skips an image-to-video sample prompt without `--i` ("No image_path for i2v
    model"): every sample of an I2V run was silently missing."""
    import subprocess

    d, _ids = ready
    datasets.update_settings(conn, d.id, eval_prompts=["TRUCKUGC, one", "TRUCKUGC, two"])
    d = datasets.get(conn, d.name)
    p = export.plan(conn, d, PROFILE)
    out = export.write(p, tmp_path / "v")
    prompts = [line for line in (out / "sample_prompts.txt").read_text().splitlines()
               if not line.startswith("#")]
    for n, line in enumerate(prompts, 1):
        assert f" --i {p.remote_root}/samples/start-{n}.png" in line
        start = out / "samples" / f"start-{n}.png"
        clip = [i for i in p.items if i.split == "train"][n - 1]
        first = subprocess.run(["ffmpeg", "-v", "error", "-i", clip.media_path, "-frames:v", "1",
                                "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True,
                               check=True).stdout
        png = subprocess.run(["ffmpeg", "-v", "error", "-i", str(start), "-f", "rawvideo",
                              "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
        assert png == first  # the clip's first frame, losslessly
