"""Music tracks for audio LoRAs (ACE-Step): every ffmpeg call an audio profile makes.

A track becomes one clip in two passes over the window it keeps:

1. measure (`astats`, `silencedetect`, `ebur128`): the peak, the share of samples at full
   scale (clipping), the share of time below the silence threshold, the integrated loudness;
2. convert: the window, resampled to the profile's rate and channels, peak-normalised to
   -1 dBFS, MP3 at the profile's bitrate, and a waveform picture (`showwavespic`) the Clips
   screen shows in place of a filmstrip.

The quality score (0-100, shown per track) starts at 100 and loses:

- clipping: 4000 x the clipped share, at most 40 (0.1 % of samples at full scale: 4 points,
  1 %: 40);
- silence: 100 x the silent share above 10 %, at most 40 (60 % silent: 40);
- a source below 44.1 kHz: 15 (it has no high end to learn from);
- a lossy source below 192 kbps: 10;
- integrated loudness outside -24 to -6 LUFS before normalisation: 10 (a very quiet or a
  crushed master).

A track is flagged `clipping` above 0.1 % clipped samples, `silence` above 50 % of its time
below -50 dBFS (for half a second or more), `low_quality` below a score of 60.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg

from lorad.core import files
from lorad.media.convert import MediaError
from lorad.media.profiles import Profile

SILENCE_DB = -50.0  # below this for SILENCE_SECONDS or more: silence
SILENCE_SECONDS = 0.5
CLIPPING_SHARE = 0.001  # of samples at full scale: clipping
SILENCE_SHARE = 0.5
PEAK_TARGET_DB = -1.0
MIN_RATE = 22050  # below: not music (a phone or a voice recorder)
LONGEST_SOURCE = 3600.0  # a longer file is a mix or a recording, not a track
WAVE_SIZE = "960x160"
LOSSY = ("mp3", "aac", "vorbis", "opus", "wmav2")


@dataclass(frozen=True)
class AudioProbe:
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration: float
    bit_rate: int | None  # bits per second, when the file says
    container: str
    kind: str = "audio"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def facts(self) -> str:
        rate = f"{self.bit_rate // 1000} kbps" if self.bit_rate else ""
        parts = [self.codec, f"{self.sample_rate / 1000:g} kHz", self.layout or
                 f"{self.channels} ch", rate, f"{self.duration:.1f} s"]
        return ", ".join(p for p in parts if p)


def probe(path: Path) -> AudioProbe:
    """A track's facts; MediaError saying what to do when it cannot be one."""
    if not path.exists():
        raise MediaError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise MediaError("the file is empty (0 bytes): copy it again from where it came")
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else "ffprobe failed"
        raise MediaError(f"not a readable audio file ({reason}); check that the file is a "
                         "complete MP3, WAV, FLAC, M4A or OGG") from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is not None:
        raise MediaError(f"this is a video ({video.get('codec_name')}, {video.get('width')}x"
                         f"{video.get('height')}): an audio profile takes music tracks; take "
                         "its sound out (ffmpeg -i IN -vn -c:a copy OUT.m4a) and add that")
    if audio is None:
        raise MediaError("no audio stream in this file; give a music track")
    fmt = info.get("format", {})
    duration = 0.0
    for value in (audio.get("duration"), fmt.get("duration")):
        try:
            duration = float(value)
            break
        except (TypeError, ValueError):
            continue
    bit_rate = audio.get("bit_rate") or fmt.get("bit_rate")
    return AudioProbe(audio.get("codec_name", "?"), int(audio.get("sample_rate") or 0),
                      int(audio.get("channels") or 0), audio.get("channel_layout") or "",
                      duration, int(bit_rate) if str(bit_rate or "").isdigit() else None,
                      fmt.get("format_name", ""))


@dataclass(frozen=True)
class AudioPlan:
    start: float
    seconds: float
    flags: tuple[str, ...]
    note: str | None  # where a long track was trimmed


def clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def plan(src: AudioProbe, profile: Profile, window: tuple[float, float] | None = None
         ) -> AudioPlan:
    """The window of the track a clip keeps, or MediaError saying why it cannot."""
    if src.sample_rate and src.sample_rate < MIN_RATE:
        raise MediaError(f"{src.sample_rate} Hz is too low for music (a phone or voice "
                         "recording?): use the track at 44.1 or 48 kHz")
    if src.duration <= 0:
        raise MediaError("the file does not say how long it is; convert it again (ffmpeg -i "
                         "IN -c:a flac OUT.flac) and add that")
    if src.duration > LONGEST_SOURCE and window is None:
        raise MediaError(f"{src.duration / 3600:.1f} h long: a mix or a recording, not a "
                         "track; cut the track out of it first")
    start, end = window if window else (0.0, src.duration)
    seconds = max(0.0, min(end, src.duration) - start)
    low, high = profile.min_seconds or 0.0, profile.max_seconds
    if seconds < low:
        raise MediaError(f"{seconds:.1f} s is shorter than the {low:g} s the profile needs "
                         f"({profile.name}: {low:g}-{high:g} s): use a longer track")
    flags, note = [], None
    if high is not None and seconds > high:
        note = (f"trimmed to {clock(start)}-{clock(start + high)} of {clock(src.duration)} "
                f"(the profile keeps {high:g} s; `lorad clips window` picks another start)")
        seconds = high
        flags.append("trimmed")
    if src.channels == 1 and (profile.channels or 2) == 2:
        flags.append("mono")
    elif src.channels > 2:
        flags.append("downmixed")
    if src.sample_rate and src.sample_rate < 44100:
        flags.append("low_rate")
    return AudioPlan(start, seconds, tuple(flags), note)


@dataclass
class Measures:
    peak_db: float  # of the kept window, dBFS
    clipped_share: float  # of samples at full scale
    silent_share: float  # of the time below SILENCE_DB
    lufs: float | None  # integrated loudness
    samples: int = 0
    score: int = 100
    penalties: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FLOAT = r"(-?(?:inf|[\d.]+))"


def parse_measures(stderr: str, seconds: float) -> Measures:
    """astats' overall section, silencedetect's spans and ebur128's summary."""
    overall = stderr[stderr.rfind("] Overall"):] if "] Overall" in stderr else stderr
    peak = re.search(rf"Peak level dB: {FLOAT}", overall)
    count = re.search(r"Peak count: ([\d.]+)", overall)
    samples = re.search(r"Number of samples: (\d+)", stderr)
    peak_db = float(peak.group(1)) if peak else 0.0
    n = int(samples.group(1)) if samples else 0
    clipped = (float(count.group(1)) / n if count and n and peak_db >= -0.1 else 0.0)
    silent, began = 0.0, None
    for m in re.finditer(r"silence_(start|end): (-?[\d.]+)", stderr):
        at = float(m.group(2))
        if m.group(1) == "start":
            began = max(0.0, at)
        elif began is not None:
            silent += at - began
            began = None
    if began is not None:  # silent to the end
        silent += max(0.0, seconds - began)
    lufs = None
    summary = stderr[stderr.rfind("Integrated loudness:"):]
    m = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    if m:
        lufs = float(m.group(1))
    return Measures(peak_db, min(1.0, clipped), min(1.0, silent / seconds) if seconds else 0.0,
                    lufs, n)


def score(m: Measures, src: AudioProbe) -> Measures:
    """The quality score of the module docstring, with what took points off."""
    penalties = {}
    if m.clipped_share:
        penalties["clipping"] = min(40.0, m.clipped_share * 4000)
    if m.silent_share > 0.1:
        penalties["silence"] = min(40.0, (m.silent_share - 0.1) * 100)
    if src.sample_rate and src.sample_rate < 44100:
        penalties["sample rate"] = 15.0
    if src.codec in LOSSY and src.bit_rate and src.bit_rate < 192_000:
        penalties["lossy bitrate"] = 10.0
    if m.lufs is not None and not -24 <= m.lufs <= -6:
        penalties["loudness"] = 10.0
    m.penalties = {k: round(v, 1) for k, v in penalties.items()}
    m.score = max(0, min(100, round(100 - sum(penalties.values()))))
    return m


def flags_of(m: Measures) -> list[str]:
    flags = []
    if m.clipped_share > CLIPPING_SHARE:
        flags.append("clipping")
    if m.silent_share > SILENCE_SHARE:
        flags.append("silence")
    if m.score < 60:
        flags.append("low_quality")
    return flags


async def _run(args: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        _out, err = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        raise
    text = err.decode(errors="replace")
    if proc.returncode != 0:
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["ffmpeg failed"]
        raise MediaError(f"ffmpeg could not read the track: {last[0]}")
    return text


async def measure(src_path: Path, p: AudioPlan) -> Measures:
    stream = (ffmpeg.input(str(src_path), ss=f"{p.start:.3f}", t=f"{p.seconds:.3f}").audio
              .filter("astats").filter("silencedetect", n=f"{SILENCE_DB:g}dB",
                                       d=SILENCE_SECONDS).filter("ebur128"))
    args = ffmpeg.output(stream, "-", format="null").global_args(
        "-hide_banner", "-nostdin", "-nostats").compile()
    return parse_measures(await _run(args), p.seconds)


async def convert(src_path: Path, p: AudioPlan, profile: Profile, gain_db: float,
                  out_media: Path, out_wave: Path) -> None:
    """The clip (MP3) and its waveform, written beside and renamed when whole."""
    out_media.parent.mkdir(parents=True, exist_ok=True)
    out_wave.parent.mkdir(parents=True, exist_ok=True)
    tmp_media, tmp_wave = files.part_name(out_media), files.part_name(out_wave)
    sound = (ffmpeg.input(str(src_path), ss=f"{p.start:.3f}", t=f"{p.seconds:.3f}").audio
             .filter("volume", f"{gain_db:.2f}dB"))
    fork = sound.filter_multi_output("asplit")
    extra: dict[str, Any] = {}
    if profile.sample_rate:
        extra["ar"] = profile.sample_rate
    if profile.channels:
        extra["ac"] = profile.channels
    clip = ffmpeg.output(fork[0], str(tmp_media), acodec="libmp3lame",
                         audio_bitrate=profile.audio_bitrate, map_metadata=-1, format="mp3",
                         **extra)
    wave = ffmpeg.output(fork[1].filter("showwavespic", s=WAVE_SIZE, split_channels=1,
                                        colors="0x4fa3e0|0x8fd16a"),
                         str(tmp_wave), format="image2", **{"frames:v": 1, "update": 1})
    args = ffmpeg.merge_outputs(clip, wave).global_args(
        "-hide_banner", "-nostdin", "-loglevel", "error", "-y").compile()
    try:
        await _run(args)
        tmp_media.replace(out_media)
        tmp_wave.replace(out_wave)
    finally:
        tmp_media.unlink(missing_ok=True)
        tmp_wave.unlink(missing_ok=True)
