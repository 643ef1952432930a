"""Ingest with real ffmpeg on clips made here, run through the daemon's job loop."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import run_jobs
from media_factory import ffprobe, make_audio, make_image, make_video

from lorad.core import jobs
from lorad.media import analysis, clips, datasets, profiles

PORTRAIT = "wan21-t2v-480p-portrait"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """One folder holding every kind of file phones, editors and users hand over."""
    root = tmp_path_factory.mktemp("raw")
    s = {
        "plain": make_video(root / "truck at dusk.mp4"),
        "landscape": make_video(root / "wide.mov", size="1920x1080", source="smptehdbars"),
        "rotated": make_video(root / "phone" / "IMG_0001.MOV", size="1920x1080",
                              source="color=c=black", vf="drawbox=0:0:960:1080:white:fill",
                              rotate=90),
        "same_basename": make_video(root / "other" / "IMG_0001.MOV", source="mandelbrot",
                                    size="540x960"),
        "vfr": make_video(root / "vfr.mp4", vfr=True, source="smptebars"),
        "hevc10": make_video(root / "hevc 10bit.mp4", codec="libx265", pix_fmt="yuv420p10le",
                             size="1280x720", source="rgbtestsrc"),
        "anamorphic": make_video(root / "anamorphic.mkv", size="720x1280", sar="4/3",
                                 source="yuvtestsrc"),
        "unicode": make_video(root / "Wéird nâme 日本.mp4", source="color=c=gray", audio=False),
        "static": make_video(root / "static.mp4", source="smptebars", audio=False),
        "panning": make_video(root / "pan.mp4", size="1400x1920", source="testsrc",
                              vf="crop=1080:1920:'t*100':0"),
        "moving": make_video(root / "life.mp4", source="life=ratio=0.5:mold=10", size="540x960",
                             audio=False),
        "letterboxed": make_video(root / "bars.mp4", source="testsrc", audio=False,
                                  vf="drawbox=0:0:1080:300:black:fill,"
                                     "drawbox=0:1620:1080:300:black:fill"),
        "short": make_video(root / "short.mp4", seconds=1.2, source="smptebars"),
        "audio_only": make_audio(root / "voice.mp4"),
        "still": make_image(root / "poster.png"),
        "small": make_video(root / "small.mp4", size="240x424", source="testsrc"),
    }
    s["copy"] = root / "copies" / "truck at dusk (1).mp4"
    s["copy"].parent.mkdir()
    shutil.copy(s["plain"], s["copy"])
    s["near"] = make_video(root / "copies" / "truck reencoded.mp4", size="720x1280")
    s["corrupt"] = root / "broken.mp4"
    s["corrupt"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    (root / "notes.txt").write_text("captions live elsewhere")
    return s


@pytest.fixture(scope="module")
def ingested(sources, tmp_path_factory):
    from lorad.core import workspace

    ws = workspace.init(tmp_path_factory.mktemp("ws") / "ws")
    ws.config_path.write_text("[daemon]\npoll_interval = 0.05\n")
    conn = ws.connect()
    d = datasets.create(conn, "trucks", PORTRAIT, trigger="TRUCKUGC")
    report = clips.add(conn, d, [next(iter(sources.values())).parent])
    run_jobs(ws)
    by_source = {Path(c.source_path).resolve(): c for c in clips.list_clips(conn, d.id)}
    named = {key: by_source[path.resolve()] for key, path in sources.items()}
    yield ws, conn, d, report, named
    conn.close()


def test_folder_scan_takes_media_and_names_ignored_files(ingested, sources):
    _ws, _conn, _d, report, named = ingested
    assert len(report.queued) == len(sources)
    assert [Path(p).name for p in report.ignored] == ["notes.txt"]


@pytest.mark.parametrize("key", ["landscape", "rotated", "same_basename", "vfr",
                                 "hevc10", "anamorphic", "unicode", "static", "panning",
                                 "moving", "letterboxed", "small"])
def test_outputs_match_the_profile_exactly(ingested, key):
    _ws, _conn, _d, _r, named = ingested
    clip = named[key]
    assert clip.state == "ready", clip.error
    facts = ffprobe(Path(clip.media_path))
    assert (facts["width"], facts["height"], facts["fps"], facts["frames"]) == (480, 848, 16.0, 41)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert facts["rotation"] == 0 and facts["sar"] in ("1:1", None)
    assert Path(clip.filmstrip_path).stat().st_size > 0
    assert (clip.frames, clip.width, clip.height) == (41, 480, 848)


def test_rotated_phone_clip_comes_out_upright(ingested):
    """The source is stored landscape (white left half) with a 90° display matrix: shown
    upright it is portrait with white on top or bottom. Unrotated and cropped it would be a
    left/right split instead."""
    import subprocess

    import numpy as np

    clip = ingested[4]["rotated"]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", clip.media_path, "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True,
                         check=True).stdout
    frame = np.frombuffer(raw, np.uint8).reshape(848, 480)
    top, bottom = frame[:300].mean(), frame[-300:].mean()
    left, right = frame[:, :200].mean(), frame[:, -200:].mean()
    assert abs(top - bottom) > 200
    assert abs(left - right) < 30
    assert clip.probe["rotation"] in (90, 270)


def test_same_basename_in_two_folders_gives_two_unique_names(ingested):
    named = ingested[4]
    a, b = named["rotated"], named["same_basename"]
    assert a.name != b.name and a.name.startswith("img_0001-") and b.name.startswith("img_0001-")
    assert Path(a.media_path).name != Path(b.media_path).name


def test_unicode_and_spaces_become_safe_stable_names(ingested):
    clip = ingested[4]["unicode"]
    assert clip.name.startswith("weird_name-")
    assert clip.name == clips.clip_name(clip.source_path)


@pytest.mark.parametrize("key,message", [
    ("short", "too short: 1.2 s at 16 fps gives 19 frames; this profile needs 41"),
    ("audio_only", "no video stream: the file holds only audio (aac); give a video file"),
    ("still", "this is a still image (png, 1200x900)"),
    ("corrupt", "not a readable media file"),
])
def test_bad_files_end_in_error_with_an_actionable_message(ingested, key, message):
    ws, conn, _d, _r, named = ingested
    clip = named[key]
    assert clip.state == "error"
    assert message in clip.error
    job = jobs.get(conn, clip.job_id)
    assert job.state == "failed" and message in job.error


def test_exact_duplicate_is_linked_not_processed(ingested):
    """Of two identical files processed at once, exactly one becomes the other's duplicate."""
    named = ingested[4]
    copy, original = named["copy"], named["plain"]
    if original.duplicate_of:
        copy, original = original, copy
    assert original.duplicate_of is None and original.state == "ready"
    assert copy.duplicate_of == original.id
    assert copy.state == "rejected" and copy.flags == ["duplicate"]
    assert copy.media_path is None
    assert f"exact duplicate of clip {original.id}" in copy.note


def test_near_duplicate_is_flagged(ingested):
    named = ingested[4]
    original = named["plain"] if named["copy"].duplicate_of else named["copy"]
    assert "near_duplicate" in named["near"].flags
    assert "near_duplicate" not in named["moving"].flags
    assert analysis.hamming(named["near"].phash, original.phash) <= 10


@pytest.mark.parametrize("key,flag", [
    ("static", "static"), ("panning", "panning"), ("moving", "moving"),
    ("letterboxed", "letterboxed"), ("vfr", "vfr"), ("small", "upscaled"),
    ("landscape", "cropped"),
])
def test_scores_become_flags(ingested, key, flag):
    assert flag in ingested[4][key].flags


def test_plain_clip_has_no_false_flags(ingested):
    named = ingested[4]
    flags = set((named["plain"] if named["copy"].duplicate_of else named["copy"]).flags)
    assert not flags & {"letterboxed", "upscaled", "cropped", "vfr", "duplicate", "panning"}


def test_second_add_of_the_same_folder_adds_nothing_new(ingested, sources):
    ws, conn, d, _r, _named = ingested
    report = clips.add(conn, d, [sources["plain"].parent])
    assert report.queued == [] and report.changed == []
    assert len(report.skipped) == len(sources)
    counts = jobs.counts_by_state(conn)
    assert counts["queued"] == 0


def test_originals_are_never_modified(sources, ingested):
    import hashlib

    named = ingested[4]
    for key in ("plain", "rotated", "hevc10"):
        digest = hashlib.sha256(sources[key].read_bytes()).hexdigest()
        assert digest == named[key].source_hash


# ---- profile rules ----------------------------------------------------------------------------

@pytest.mark.parametrize("available,expected", [
    (0, None), (16, None), (17, 17), (18, 17), (20, 17), (21, 21), (44, 41), (45, 45),
    (80, 77), (81, 81), (82, 81), (500, 81),
])
def test_largest_4n1_within_min_and_max(available, expected):
    p = profiles.get("wan22-14b-720p")
    assert p.frames_for(available) == expected


@pytest.mark.parametrize("available,expected", [(40, None), (41, 41), (100, 41)])
def test_fixed_frame_count(available, expected):
    assert profiles.get(PORTRAIT).frames_for(available) == expected


def test_orientation_match_swaps_for_portrait_sources():
    p = profiles.get("wan22-14b-720p")
    assert p.target_size(1080, 1920) == (720, 1280)
    assert p.target_size(1920, 1080) == (1280, 720)
    assert profiles.get(PORTRAIT).target_size(1920, 1080) == (480, 848)


def test_custom_profile_from_config_is_validated(ws):
    from lorad.core.config import ConfigError

    ws.config_path.write_text('[profiles.mine]\nbase = "wan22-14b-720p"\nframes = 42\n')
    with pytest.raises(ConfigError, match=r"lorad.toml:\d+: profiles.mine.frames must be 4n\+1"):
        profiles.all_profiles(ws.config())
    ws.config_path.write_text('[profiles.mine]\nbase = "wan22-14b-720p"\nframe = 41\n')
    with pytest.raises(ConfigError, match=r"lorad.toml:3: unknown key 'profiles.mine.frame'"):
        ws.config()


# ---- reprocess, images, scenes ----------------------------------------------------------------

def test_profile_change_then_reprocess_stale_clips(ws, conn, tmp_path):
    ws.config_path.write_text('[daemon]\npoll_interval = 0.05\n[profiles.small]\n'
                              'base = "wan21-t2v-480p-portrait"\nwidth = 240\nheight = 432\n'
                              'frames = 17\n')
    d = datasets.create(conn, "d", "small", config=ws.config())
    src = make_video(tmp_path / "a.mp4", seconds=2, size="540x960")
    clips.add(conn, d, [src])
    run_jobs(ws)
    (clip,) = clips.list_clips(conn, d.id)
    assert (clip.width, clip.height, clip.frames) == (240, 432, 17)
    clips.set_review(conn, [clip.id], "approved")
    ws.config_path.write_text(ws.config_path.read_text().replace("frames = 17", "frames = 25"))
    fingerprint = profiles.get("small", ws.config()).fingerprint()
    assert clips.stale_ids(conn, d.id, fingerprint) == [clip.id]
    clips.reprocess(conn, [clip.id])
    run_jobs(ws)
    clip = clips.get(conn, clip.id)
    assert clip.frames == 25 and ffprobe(Path(clip.media_path))["frames"] == 25
    assert clip.state == "approved"  # the review survives reprocessing
    assert clips.stale_ids(conn, d.id, fingerprint) == []


def test_image_profile_buckets_images_and_refuses_videos(ws, conn, tmp_path):
    d = datasets.create(conn, "stills", "image-1024")
    img = make_image(tmp_path / "p.png", size="1600x900")
    vid = make_video(tmp_path / "v.mp4", seconds=1, size="320x240")
    clips.add(conn, d, [img, vid])
    run_jobs(ws)
    by_name = {Path(c.source_path).name: c for c in clips.list_clips(conn, d.id)}
    still = by_name["p.png"]
    assert still.state == "ready", still.error
    facts = ffprobe(Path(still.media_path))
    assert facts["width"] % 16 == 0 and facts["height"] % 16 == 0
    assert abs(facts["width"] / facts["height"] - 16 / 9) < 0.05
    assert 0.8 < facts["width"] * facts["height"] / 1024**2 <= 1.0
    assert by_name["v.mp4"].state == "error" and "takes still images" in by_name["v.mp4"].error


def test_split_scenes_ingests_each_shot_with_its_range(ws, conn, tmp_path):
    import subprocess

    parts = [make_video(tmp_path / f"part{i}.mp4", seconds=3.5, size="540x960", source=src,
                        audio=False)
             for i, src in enumerate(["smptebars", "color=c=red", "mandelbrot"])]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    long = tmp_path / "long source.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", str(long)], check=True)
    d = datasets.create(conn, "shots", PORTRAIT)
    report = clips.add(conn, d, [long], split_scenes=True)
    assert len(report.split_jobs) == 1
    run_jobs(ws)
    shots = clips.list_clips(conn, d.id)
    assert len(shots) == 3
    starts = [c.source_range[0] for c in shots]
    assert starts[0] == 0.0 and abs(starts[1] - 3.5) < 0.1 and abs(starts[2] - 7.0) < 0.1
    assert all(c.state == "ready" for c in shots), [c.error for c in shots]
    assert len({c.name for c in shots}) == 3
    # the same long source again: nothing new
    assert clips.add(conn, d, [long], split_scenes=True).split_jobs == []


def test_percent_in_a_name_is_that_file_not_a_sequence_pattern(ws, conn, tmp_path):
    """ffmpeg's image2 demuxer reads `%03d` as a pattern: `shot%03d.png` would open shot001.png
    (a different picture) and `photo%20dog.png` nothing at all."""
    folder = tmp_path / "stills"
    make_image(folder / "photo%20dog.png", size="1600x900", source="color=c=red")
    make_image(folder / "shot%03d.png", size="1600x900", source="color=c=blue")
    make_image(folder / "shot001.png", size="1600x900", source="color=c=green")
    d = datasets.create(conn, "stills", "image-1024")
    clips.add(conn, d, [folder])
    run_jobs(ws)
    by_name = {Path(c.source_path).name: c for c in clips.list_clips(conn, d.id)}
    assert sorted(by_name) == ["photo%20dog.png", "shot%03d.png", "shot001.png"]
    assert all(c.state == "ready" for c in by_name.values()), [c.error for c in by_name.values()]
    colours = {name: _centre_rgb(Path(c.media_path)) for name, c in by_name.items()}
    assert colours["photo%20dog.png"][0] > 200
    assert colours["shot%03d.png"][2] > 200 and colours["shot%03d.png"][1] < 50


def _centre_rgb(path: Path) -> tuple[int, int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB").getpixel((image.width // 2, image.height // 2))


def test_a_phone_photo_with_exif_orientation_comes_out_upright(ws, conn, tmp_path):
    """Phones store a portrait photo as a landscape picture plus an orientation tag (6: turn
    90 degrees clockwise). Made with Pillow, which writes the tag as cameras do."""
    from PIL import Image

    stored = Image.new("RGB", (1600, 900), (255, 0, 0))
    stored.paste((0, 0, 255), (0, 0, 800, 900))  # left half blue: the top once upright
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "IMG_2041.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    d = datasets.create(conn, "phone", "image-1024")
    clips.add(conn, d, [path])
    run_jobs(ws)
    (clip,) = clips.list_clips(conn, d.id)
    assert clip.state == "ready", clip.error
    with Image.open(clip.media_path) as out:
        assert out.height > out.width  # portrait, as the phone showed it
        top = out.convert("RGB").getpixel((out.width // 2, out.height // 4))
        bottom = out.convert("RGB").getpixel((out.width // 2, out.height * 3 // 4))
    assert top[2] > 200 and top[0] < 60, top
    assert bottom[0] > 200 and bottom[2] < 60, bottom
    strip = Path(clip.filmstrip_path)
    with Image.open(strip) as picture:
        assert picture.height > picture.width
