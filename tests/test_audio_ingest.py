"""Music tracks into an audio dataset (issue 13, item 1): real files made by ffmpeg, through
`lorad clips add` and the daemon's ingest job: 48 kHz stereo MP3 at 320 kbps, peak-normalised to
-1 dBFS, trimmed to 240 s, clipping and silence flagged, a quality score, and an error that says
what to do on each track that cannot be one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import run_jobs
from media_factory import make_video

from lorad.cli import main
from lorad.media import audio, clips, datasets


def track(path: Path, seconds: float, *, rate: int = 44100, channels: int = 2,
          source: str | None = None, af: str | None = None, codec: list[str] | None = None
          ) -> Path:
    """A tune from lavfi (two sines, a little noise), written in the file's own format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    src = source or (f"sine=frequency=220:sample_rate={rate}:duration={seconds}")
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src]
    filters = [f for f in (af, ) if f]
    if filters:
        args += ["-af", ",".join(filters)]
    args += ["-ac", str(channels), "-ar", str(rate), *(codec or []), str(path)]
    subprocess.run(args, check=True)
    return path


def facts(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_name,sample_rate,channels,bit_rate:format=duration",
                          "-of", "json", str(path)], capture_output=True, text=True,
                         check=True).stdout
    data = json.loads(out)
    return {**data["streams"][0], "duration": float(data["format"]["duration"])}


def peak_db(path: Path) -> float:
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-af",
                          "volumedetect", "-f", "null", "-"], capture_output=True,
                         text=True).stderr
    return float(err.split("max_volume: ")[1].split(" dB")[0])


@pytest.fixture
def lofi(ws, conn):
    assert main(["-w", str(ws.root), "dataset", "create", "lofi", "--profile",
                 "ace-step-audio"]) == 0
    return datasets.get(conn, "lofi")


def add(ws, conn, d, paths) -> dict[str, clips.Clip]:
    assert main(["-w", str(ws.root), "clips", "add", d.name, *map(str, paths)]) == 0
    run_jobs(ws, timeout=180)
    return {Path(c.source_path).name: c for c in clips.list_clips(conn, d.id)}


def test_every_format_becomes_a_normalised_48k_stereo_mp3(ws, conn, lofi, tmp_path):
    folder = tmp_path / "tracks"
    made = [track(folder / "a.wav", 40, af="volume=-12dB"),
            track(folder / "b.flac", 35, rate=48000, af="volume=-6dB"),
            track(folder / "c.m4a", 31, codec=["-c:a", "aac", "-b:a", "256k"]),
            track(folder / "d.ogg", 33, codec=["-c:a", "libvorbis"]),
            track(folder / "e.mp3", 32, codec=["-c:a", "libmp3lame", "-b:a", "320k"]),
            track(folder / "pink noise.flac", 31, source="anoisesrc=d=31:c=pink:a=0.3",
                  codec=["-c:a", "flac"])]
    (folder / "notes.txt").write_text("not a track")
    found = add(ws, conn, lofi, [folder])
    assert sorted(found) == sorted(p.name for p in made)  # the notes were not taken
    for name, clip in found.items():
        assert clip.state == "ready", (name, clip.error)
        out = Path(clip.media_path)
        assert out.suffix == ".mp3"
        f = facts(out)
        assert (f["codec_name"], f["sample_rate"], f["channels"]) == ("mp3", "48000", 2)
        assert int(f["bit_rate"]) == 320000
        assert peak_db(out) == pytest.approx(-1.0, abs=0.6)  # -1 dBFS, within MP3's ripple
        assert Path(clip.filmstrip_path).suffix == ".png"  # the waveform
        analysis = clip.analysis
        assert 0 <= analysis["score"] <= 100
        assert clip.probe["codec"] in ("pcm_s16le", "flac", "aac", "vorbis", "mp3")
    quiet = found["a.wav"].analysis
    assert quiet["gain_db"] > 10  # -12 dB of sine came up to -1 dBFS


def test_long_tracks_are_trimmed_and_say_where(ws, conn, lofi, tmp_path):
    found = add(ws, conn, lofi, [track(tmp_path / "long.flac", 300, codec=["-c:a", "flac"])])
    clip = found["long.flac"]
    assert clip.state == "ready" and "trimmed" in clip.flags
    assert "trimmed to 0:00-4:00 of 5:00" in clip.note
    assert facts(Path(clip.media_path))["duration"] == pytest.approx(240, abs=0.2)


def test_clipping_and_silence_are_flagged_and_scored(ws, conn, lofi, tmp_path):
    loud = track(tmp_path / "loud.wav", 40, af="volume=30dB")  # a sine driven into the rails
    quiet = track(tmp_path / "quiet.wav", 60, source="sine=frequency=220:duration=60",
                  af="volume=enable='gt(t,20)':volume=0")  # 20 s of tune, 40 s of nothing
    found = add(ws, conn, lofi, [loud, quiet])
    clipped = found["loud.wav"]
    assert "clipping" in clipped.flags, clipped.analysis
    assert clipped.analysis["clipped_share"] > audio.CLIPPING_SHARE
    assert clipped.analysis["penalties"]["clipping"] == 40.0
    silent = found["quiet.wav"]
    assert "silence" in silent.flags
    assert silent.analysis["silent_share"] == pytest.approx(40 / 60, abs=0.03)
    assert silent.analysis["score"] < 75 and "silence" in silent.analysis["penalties"]


def test_each_bad_track_gets_its_own_error_and_the_rest_go_on(ws, conn, lofi, tmp_path):
    folder = tmp_path / "mixed"
    good = track(folder / "ok 100% ünïcode.wav", 31)
    mono = track(folder / "mono.wav", 31, channels=1)
    surround = track(folder / "surround.flac", 31, channels=6, codec=["-c:a", "flac"])
    phone = track(folder / "phone.wav", 31, rate=8000)
    short = track(folder / "short.wav", 10)
    (folder / "empty.mp3").write_bytes(b"")
    (folder / "broken.flac").write_bytes(b"fLaC" + b"\0" * 200)
    video = make_video(folder / "clip.mp4", size="320x240", seconds=1.0)
    found = add(ws, conn, lofi, [folder])
    assert found[good.name].state == "ready", found[good.name].error
    assert found["mono.wav"].state == "ready" and "mono" in found["mono.wav"].flags
    assert facts(Path(found["mono.wav"].media_path))["channels"] == 2
    assert "downmixed" in found["surround.flac"].flags
    errors = {name: c.error for name, c in found.items() if c.state == "error"}
    assert set(errors) == {"phone.wav", "short.wav", "empty.mp3", "broken.flac", "clip.mp4"}
    assert "8000 Hz is too low for music" in errors["phone.wav"]
    assert "10.0 s is shorter than the 30 s the profile needs" in errors["short.wav"]
    assert "the file is empty (0 bytes)" in errors["empty.mp3"]
    assert "not a readable audio file" in errors["broken.flac"]
    assert "this is a video" in errors["clip.mp4"] and "-vn" in errors["clip.mp4"]
    del mono, surround, phone, short, video


def test_an_exact_duplicate_is_linked_as_for_video(ws, conn, lofi, tmp_path):
    first = track(tmp_path / "one" / "song.wav", 31)
    copy = tmp_path / "two" / "song-copy.wav"
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    found = add(ws, conn, lofi, [first, copy])
    states = sorted((c.state, c.duplicate_of is not None) for c in found.values())
    assert states == [("ready", False), ("rejected", True)]


async def test_the_clips_screen_shows_a_tracks_facts_waveform_and_score(ws, conn, lofi,
                                                                        tmp_path):
    import asyncio

    from helpers import pilot_until as until
    from helpers import widget_lines

    from tui.app import LoradApp
    from tui.screens.clips import ClipsScreen

    await asyncio.to_thread(add, ws, conn, lofi, [track(tmp_path / "loud.wav", 35,
                                                        af="volume=30dB")])
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ClipsScreen)
        detail = screen.query_one("#clips-detail")

        def shown() -> str:
            return "\n".join(widget_lines(app, detail))

        await until(pilot, lambda: "quality" in shown(), message="the track's facts")
        text = shown()
        assert "pcm_s16le 44.1 kHz" in text and "clipped" in text
        assert "quality 50/100 (clipping -40" in text and "loudness -10" in text


def test_export_writes_ace_steps_dataset_with_the_datasets_library(ws, conn, lofi, tmp_path,
                                                                  capsys):
    """convert2hf_dataset.py's examples, a seeded validation split, repeats, the LoRA config
    and a summary; a track without a tag prompt stops the export."""
    import datasets as hf

    from lorad.captions import versions

    found = add(ws, conn, lofi, [track(tmp_path / f"t{n}.wav", 31 + n) for n in range(4)])
    ids = [c.id for c in found.values()]
    clips.set_review(conn, ids, "approved")
    for n, clip_id in enumerate(ids[:3]):
        versions.set_caption(conn, clip_id, f"lofi, mellow, piano, {70 + n} bpm")
    w = ["-w", str(ws.root)]
    assert main([*w, "dataset", "export", "lofi", "--validation", "0.25", "--repeat", "3"]) == 1
    assert "no tag prompt" in capsys.readouterr().out  # the fourth has none
    versions.set_caption(conn, ids[3], "lofi, rain, vinyl crackle")
    assert main([*w, "dataset", "export", "lofi", "--validation", "0.25", "--repeat", "3",
                 "--json"]) == 0
    out = capsys.readouterr().out
    version = Path(json.loads(out[out.index("{"):])["path"])
    summary = json.loads((version / "summary.json").read_text())
    assert (summary["train"], summary["validation"], summary["train_examples"]) == (3, 1, 9)
    train = hf.load_from_disk(str(version / "hf_train"))
    assert len(train) == 9 and set(train.column_names) == {
        "keys", "filename", "tags", "speaker_emb_path", "norm_lyrics", "recaption"}
    first = train[0]
    assert first["filename"].endswith(f"/audio/{first['keys']}.mp3")
    assert first["tags"][0] == "lofi" and first["norm_lyrics"] == "[Instrumental]"
    assert len(hf.load_from_disk(str(version / "hf_validation"))) == 1
    config = json.loads((version / "lora_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["use_rslora"]) == (256, 32, True)
    assert "speaker_embedder" in config["target_modules"]
    stem = first["keys"]
    assert (version / "audio" / f"{stem}_prompt.txt").read_text().startswith("lofi, ")
    assert (version / "audio" / f"{stem}_lyrics.txt").read_text() == "[Instrumental]\n"


def test_lyrics_are_versioned_and_go_into_the_export(ws, conn, lofi, tmp_path, capsys):
    import datasets as hf

    from lorad.captions import lyrics, versions

    found = add(ws, conn, lofi, [track(tmp_path / "song.wav", 31)])
    clip = next(iter(found.values()))
    clips.set_review(conn, [clip.id], "approved")
    versions.set_caption(conn, clip.id, "lofi, piano")
    w = ["-w", str(ws.root), "captions", "lyrics", "lofi", str(clip.id)]
    capsys.readouterr()
    assert main(w) == 0 and capsys.readouterr().out == "[Instrumental]\n"  # nothing written
    song = tmp_path / "song.txt"
    song.write_text("[verse]\nrain on the window\n[chorus]\nslow slow morning\n")
    assert main([*w, "--file", str(song)]) == 0
    assert main([*w, "[verse]\nrain on the glass\n[refrain]\nslow"]) == 0
    assert "[refrain] is not a part marker" in capsys.readouterr().err
    assert main([*w, "--undo"]) == 0
    assert lyrics.text_of(conn, clip.id).startswith("[verse]\nrain on the window")
    assert [v.source for v in lyrics.history(conn, clip.id)] == ["typed", "typed", "undo"]
    assert main(["-w", str(ws.root), "dataset", "export", "lofi", "--json"]) == 0
    out = capsys.readouterr().out
    folder = Path(json.loads(out[out.index("{"):])["path"])
    row = hf.load_from_disk(str(folder / "hf_train"))[0]
    assert row["norm_lyrics"] == "[verse]\nrain on the window\n[chorus]\nslow slow morning"
    stem = row["keys"]
    assert (folder / "audio" / f"{stem}_lyrics.txt").read_text().startswith("[verse]")
    # new lyrics are a new version of the dataset
    lyrics.set_lyrics(conn, clip.id, "[Instrumental]")
    assert main(["-w", str(ws.root), "dataset", "export", "lofi", "--json"]) == 0
    out = capsys.readouterr().out
    assert Path(json.loads(out[out.index("{"):])["path"]) != folder


async def test_lyrics_are_edited_from_the_captions_screen(ws, conn, lofi, tmp_path):
    import asyncio

    from helpers import pilot_until as until

    from lorad.captions import lyrics
    from tui.app import LoradApp
    from tui.forms.base import FormScreen
    from tui.forms.lyrics import LyricsForm
    from tui.screens.captions import CaptionsScreen

    found = await asyncio.to_thread(add, ws, conn, lofi, [track(tmp_path / "s.wav", 31)])
    clip = next(iter(found.values()))
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, CaptionsScreen)
                    and app.screen.current_row() is not None, message="captions")
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LyricsForm)
                    and app.screen.data is not None, message="the lyrics form")
        form = app.screen
        assert form.query_one("#lyrics-text").text == "[Instrumental]"
        form.query_one("#lyrics-text").text = "[verse]\nslow rain\n[hook]\nhum"
        await until(pilot, lambda: "ACE-Step knows" in str(form.query_one("#form-note")
                                                              .render()), message="checked")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="saved")
    assert lyrics.text_of(conn, clip.id) == "[verse]\nslow rain\n[hook]\nhum"


def test_presets_tag_tracks_and_the_style_balance_is_said(ws, conn, lofi, tmp_path, capsys):
    """A taxonomy as data (built-in lofi presets and one of lorad.toml extending them), tags
    in front of the track's own, the source record, and the distribution per category."""
    from lorad.captions import versions

    ws.config_path.write_text(ws.config_path.read_text() + '''
[presets.lofi-night-drive]
extends = "lofi-rain"
category = "thematic"
atmosphere = ["city lights"]
''')
    from test_captions import add_clip

    found = add(ws, conn, lofi, [track(tmp_path / f"n{n}.wav", 31 + n) for n in range(2)])
    ids = sorted(c.id for c in found.values())
    ids += [add_clip(conn, lofi.id, f"more{n}") for n in range(9)]  # processed elsewhere
    w = ["-w", str(ws.root)]
    capsys.readouterr()
    assert main([*w, "presets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    night = listed["lofi-night-drive"]
    assert night["category"] == "thematic" and night["extends"] == "lofi-rain"
    assert night["tags"][:2] == ["lofi hip hop", "chillhop"]  # the core's first
    assert "rain" in night["tags"] and night["tags"][-1] != "lofi hip hop"
    assert "city lights" in night["groups"]["atmosphere"]
    versions.set_caption(conn, ids[0], "rainy, Chillhop, my own tag")
    assert main([*w, "captions", "preset", "lofi", "lofi-night-drive", str(ids[0])]) == 0
    caption = versions.current(conn, ids[0]).text
    assert caption.startswith("lofi hip hop, chillhop, mellow")
    assert caption.endswith("rainy, my own tag")  # theirs after, chillhop once
    assert main([*w, "captions", "preset", "lofi", "lofi-core", *map(str, ids[1:])]) == 0
    assert main([*w, "clips", "source", "lofi", str(ids[0]), "--provider", "suno", "--license",
                 "CC-BY-4.0", "--cost", "0.1", "--date", "2026-11-01", "--json"]) == 0
    capsys.readouterr()
    assert clips.get(conn, ids[0]).track["source"] == {
        "provider": "suno", "license": "CC-BY-4.0", "cost": 0.1, "date": "2026-11-01"}
    assert main([*w, "dataset", "show", "lofi", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["styles"] == {"core": 10, "thematic": 1}
    assert any(w_.startswith("thematic: 1 of 11 tracks (9%) is under-represented")
               for w_ in shown["warnings"])


async def test_space_plays_a_track_with_no_window_over_ssh(ws, conn, lofi, tmp_path,
                                                           monkeypatch):
    """A track is heard in mpv or ffplay with no window (the terminal's player), even where no
    display exists; a video player window or the in-terminal frame player is never tried."""
    import asyncio

    from helpers import pilot_until as until

    from tui.app import LoradApp
    from tui.screens.clips import ClipsScreen

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    await asyncio.to_thread(add, ws, conn, lofi, [track(tmp_path / "s.wav", 31)])
    app = LoradApp(ws, refresh_interval=0.05)
    played = []
    monkeypatch.setattr(app, "play", played.append)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}"
                        if name == "ffplay" else None)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ClipsScreen)
                    and app.screen.query_one("#clips-detail").render(), message="the clips")
        await pilot.press("space")
        await until(pilot, lambda: played, message="the player called")
        assert isinstance(app.screen, ClipsScreen)  # not the in-terminal frame player
    args = played[0]
    assert args[:3] == ["ffplay", "-nodisp", "-autoexit"] and args[-1].endswith(".mp3")


async def test_a_track_is_tagged_from_a_preset_and_tags_complete_on_the_captions_screen(
        ws, conn, lofi, tmp_path):
    import asyncio

    from helpers import pilot_until as until

    from lorad.captions import versions
    from tui.app import LoradApp
    from tui.forms.base import FormScreen
    from tui.forms.preset import PresetForm
    from tui.screens.captions import CaptionsScreen

    found = await asyncio.to_thread(add, ws, conn, lofi, [track(tmp_path / "s.wav", 31)])
    clip = next(iter(found.values()))
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, CaptionsScreen)
                    and app.screen.current_row() is not None, message="captions")
        screen = app.screen
        assert screen.data.phrases.get("vinyl crackle") == 0  # the taxonomy completes too
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, PresetForm)
                    and app.screen.data is not None, message="the preset form")
        form = app.screen
        form.query_one("#preset-name").value = "lofi-winter"
        await until(pilot, lambda: "snowfall" in str(form.query_one("#form-note").render()),
                    message="the caption it makes")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="tagged")
    assert versions.current(conn, clip.id).text.startswith("lofi hip hop, chillhop, mellow")
    assert clips.get(conn, clip.id).track["category"] == "seasonal"


def test_lint_knows_the_tag_groups_of_an_audio_dataset(conn, ws):
    from lorad.captions import lint

    ws.config()  # the workspace's presets are the taxonomy
    d = datasets.create(conn, "beats", "ace-step-audio")
    rules = lint.Rules.from_dataset(d.trigger, d.settings)
    assert rules.tag_groups and rules.tag_groups["chillhop"] == "genre"
    good = lint.lint("chillhop, mellow, rhodes piano, 75 bpm", rules)
    assert good == []
    issues = {i.code: i for i in lint.lint(
        "rhodes piano, a slow song that you hear late at night in a cafe, rhodes piano", rules)}
    assert set(issues) == {"tag_sentence", "tag_twice", "no_genre", "no_mood"}
    assert "chillhop" in issues["no_genre"].message or "lofi hip hop" in issues["no_genre"].message
    text = "rhodes piano, a slow song that you hear late at night in a cafe, rhodes piano"
    start, end = issues["tag_sentence"].span
    assert text[start:end] == "a slow song that you hear late at night in a cafe"
    video = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait")
    assert lint.Rules.from_dataset(None, video.settings).tag_groups is None


async def test_a_tracks_source_record_is_edited_on_the_clips_screen(ws, conn, lofi, tmp_path):
    import asyncio

    from helpers import pilot_until as until

    from tui.app import LoradApp
    from tui.forms.base import FormScreen
    from tui.forms.source import SourceForm
    from tui.screens.clips import ClipsScreen

    found = await asyncio.to_thread(add, ws, conn, lofi, [track(tmp_path / "s.wav", 31)])
    clip = next(iter(found.values()))
    clips.set_track(conn, clip.id, source={"provider": "suno", "cost": 0.2})
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ClipsScreen)
                    and app.screen.current is not None, message="the clips")
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, SourceForm)
                    and app.screen.data is not None, message="the source form")
        form = app.screen
        assert form.query_one("#source-provider").value == "suno"
        form.query_one("#source-license").value = "CC-BY-4.0"
        form.query_one("#source-cost").value = ""  # emptied: removed
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="saved")
    assert clips.get(conn, clip.id).track["source"] == {"provider": "suno",
                                                         "license": "CC-BY-4.0"}
