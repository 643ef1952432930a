"""The ffmpeg client: probe a source, plan its conversion to a profile, run it in one pass.

One ffmpeg process per clip decodes only the part it needs and writes three things at once: the
training clip (exact size, fps, frame count), a filmstrip (first, middle, last frame) and a small
grayscale copy of the source frames on stdout, from which `lorad.media.analysis` derives motion,
letterboxing and a perceptual hash. Every failure is a :class:`MediaError` whose message says
what is wrong with the file and what to do.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from lorad.core import files
from lorad.core.errors import LoradError
from lorad.media.profiles import Profile

ANALYSIS_WIDTH = 64  # grayscale analysis frames are this wide; height keeps the aspect ratio
FILMSTRIP_HEIGHT = 160
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe",
                 "gif_pipe", "pam_pipe", "ppm_pipe", "qoi_pipe", "jpegxl_pipe")
HDR_TRANSFERS = ("smpte2084", "arib-std-b67")
# EXIF orientation -> the filters that show the picture upright (Pillow's exif_transpose table)
ORIENTATION_FILTERS: dict[int, list[tuple[str, tuple]]] = {
    2: [("hflip", ())], 3: [("hflip", ()), ("vflip", ())], 4: [("vflip", ())],
    5: [("transpose", (0,))], 6: [("transpose", (1,))], 7: [("transpose", (3,))],
    8: [("transpose", (2,))],
}


class MediaError(LoradError):
    """This file cannot become a clip for this profile; the message says why and what to do."""


@dataclass
class Probe:
    kind: str  # video | image
    codec: str
    width: int  # display size: rotation and non-square pixels applied
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # degrees the player turns the picture
    sar: str  # sample aspect ratio "1:1", "4:3"...
    fps: float | None  # average frame rate
    vfr: bool  # variable frame rate (phones do this)
    duration: float | None
    frames: int | None  # nb_frames when the container says
    pix_fmt: str | None
    bit_depth: int
    hdr: bool
    audio: str | None  # audio codec, if any
    container: str
    orientation: int = 1  # a still's EXIF orientation (phones store portraits sideways + a tag)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def facts(self) -> str:
        fps = f"{self.fps:.3g} fps" if self.fps else ""
        parts = [f"{self.width}x{self.height}", self.codec, fps,
                 f"{self.duration:.2f} s" if self.duration else ""]
        return ", ".join(p for p in parts if p)


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0/1"):
        return None
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value or None


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    rotate = (stream.get("tags") or {}).get("rotate")
    return int(rotate) % 360 if rotate else 0


def input_options(src: Probe) -> dict[str, Any]:
    """ffmpeg input options that make it read exactly this file the way the probe saw it.

    The image2 demuxer reads `%` in a name as a sequence pattern (`shot%03d.png` would open
    shot001.png, `photo%20dog.png` nothing), so pattern matching is turned off; the option
    exists only for that demuxer. A still with an EXIF orientation is turned upright by
    explicit filters (`orient`) rather than by whatever this ffmpeg version's autorotate does.
    """
    options: dict[str, Any] = {}
    if src.container == "image2":
        options["pattern_type"] = "none"
    if src.orientation in ORIENTATION_FILTERS:
        options["noautorotate"] = None
    return options


def orient(stream, src: Probe):
    """Apply a still's EXIF orientation to an ffmpeg-python stream."""
    for name, args in ORIENTATION_FILTERS.get(src.orientation, []):
        stream = stream.filter(name, *args)
    return stream


def _exif_orientation(path: Path) -> int:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            value = image.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError, ValueError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def probe(path: Path) -> Probe:
    """Read a source's facts with ffprobe (through ffmpeg-python)."""
    if not path.exists():
        raise MediaError(f"file not found: {path}")
    try:
        # ffprobe ignores pattern_type for demuxers other than image2, unlike ffmpeg
        info = ffmpeg.probe(str(path), pattern_type="none")
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else "ffprobe failed"
        raise MediaError(f"not a readable media file ({reason}); check that the file is a "
                         "complete video or image") from None
    streams = info.get("streams", [])
    fmt = info.get("format", {})
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        if audio is not None:
            raise MediaError(f"no video stream: the file holds only audio "
                             f"({audio.get('codec_name')}); give a video file")
        raise MediaError("no video stream in this file; give a video or image file")
    container = fmt.get("format_name", "")
    coded_w, coded_h = int(video.get("width") or 0), int(video.get("height") or 0)
    if not coded_w or not coded_h:
        raise MediaError("the video stream has no picture size; the file is probably damaged")
    sar_text = video.get("sample_aspect_ratio") or "1:1"
    try:
        num, den = (int(x) for x in sar_text.split(":"))
        sar = Fraction(num, den) if num and den else Fraction(1)
    except ValueError:
        sar = Fraction(1)
    rotation = _rotation(video)
    width = int(round(coded_w * sar)) if sar != 1 else coded_w
    height = coded_h
    if rotation in (90, 270):
        width, height = height, width
    is_image = container in IMAGE_FORMATS or any(container.startswith(f) for f in IMAGE_FORMATS)
    avg = _rate(video.get("avg_frame_rate"))
    real = _rate(video.get("r_frame_rate"))
    duration = None
    for value in (video.get("duration"), fmt.get("duration")):
        try:
            duration = float(value)
            break
        except (TypeError, ValueError):
            continue
    frames = video.get("nb_frames")
    frames = int(frames) if frames and str(frames).isdigit() else None
    pix_fmt = video.get("pix_fmt")
    bits = video.get("bits_per_raw_sample")
    bit_depth = int(bits) if bits and str(bits).isdigit() else (
        10 if pix_fmt and ("10" in pix_fmt) else 8)
    if is_image and (frames or 1) <= 1:
        kind = "image"
    else:
        kind = "video"
    orientation = _exif_orientation(path) if kind == "image" else 1
    if orientation >= 5:  # 5-8 turn the picture a quarter
        width, height = height, width
    return Probe(
        kind=kind, codec=video.get("codec_name", "?"), width=width, height=height,
        coded_width=coded_w, coded_height=coded_h, rotation=rotation,
        sar=f"{sar.numerator}:{sar.denominator}", fps=avg or real,
        vfr=bool(avg and real and abs(avg - real) / real > 0.01),
        duration=duration, frames=frames, pix_fmt=pix_fmt, bit_depth=bit_depth,
        hdr=video.get("color_transfer") in HDR_TRANSFERS,
        audio=audio.get("codec_name") if audio else None, container=container,
        orientation=orientation,
    )


@dataclass
class Plan:
    """How one source becomes one clip: range, frames, sizes, and the flags known in advance."""

    media: str
    start: float
    read_seconds: float | None  # how much of the source ffmpeg decodes
    frames: int
    fps: float | None
    width: int
    height: int
    analysis_size: tuple[int, int]
    flags: list[str] = field(default_factory=list)


def available_frames(seconds: float, fps: float) -> int:
    # ffmpeg's fps filter emits about one frame per 1/fps of input; floor keeps us on the safe side.
    return int(math.floor(seconds * fps + 1e-6))


def plan(src: Probe, profile: Profile, source_range: tuple[float, float] | None = None) -> Plan:
    """Decide what to make of this source, or raise MediaError saying why it cannot work."""
    width, height = profile.target_size(src.width, src.height)
    aw = ANALYSIS_WIDTH
    ah = max(8, int(round(aw * src.height / src.width / 2)) * 2)
    flags: list[str] = []
    scale = max(width / src.width, height / src.height) if profile.crop == "fill" else min(
        width / src.width, height / src.height)
    if scale > 1.01:
        flags.append("upscaled")
    if profile.crop == "fill":
        kept = (width * height) / (src.width * scale * src.height * scale)
        if kept < 0.7:  # e.g. a landscape clip cut down to a portrait strip
            flags.append("cropped")
    if profile.media == "image":
        if src.kind != "image":
            raise MediaError(f"this is a video ({src.facts()}); profile {profile.name} takes still "
                             "images: export frames first or use a video profile")
        return Plan("image", 0.0, None, 1, None, width, height, (aw, ah), flags)
    if src.kind == "image":
        raise MediaError(f"this is a still image ({src.codec}, {src.width}x{src.height}); profile "
                         f"{profile.name} needs video clips of {profile.frame_rule()}")
    start, end = (source_range if source_range else (0.0, src.duration))
    if profile.audio and profile.media == "video" and not src.audio:
        raise MediaError(f"profile {profile.name} keeps the clip's sound (its trainer learns "
                         "from it), and this file has no audio stream: use the recording with "
                         "its sound")
    if end is None:
        raise MediaError("the file does not say how long it is; remux it (ffmpeg -i in -c copy "
                         "out.mp4) and add it again")
    seconds = max(0.0, end - start)
    have = available_frames(seconds, profile.fps)
    frames = profile.frames_for(have)
    if frames is None:
        need = profile.frames_needed()
        raise MediaError(
            f"too short: {seconds:.1f} s at {profile.fps:g} fps gives {have} frames; this profile "
            f"needs {need if profile.frames else f'at least {need}'}")
    if src.vfr:
        flags.append("vfr")
    if src.hdr:
        flags.append("hdr")
    # Read a little past the last needed frame so the fps filter has its neighbour.
    read = min(seconds, frames / profile.fps + 2.0 / profile.fps + 0.25)
    return Plan("video", start, read, frames, profile.fps, width, height, (aw, ah), flags)


def build(src_path: Path, src: Probe, profile: Profile, p: Plan, out_media: Path,
          out_filmstrip: Path):
    """The ffmpeg-python graph for one pass: clip, filmstrip and analysis frames on stdout."""
    input_args: dict[str, Any] = input_options(src)
    if p.start:
        input_args["ss"] = f"{p.start:.3f}"
    if p.read_seconds is not None:
        input_args["t"] = f"{p.read_seconds:.3f}"
    source_input = ffmpeg.input(str(src_path), **input_args)
    stream = orient(source_input.video, src)
    if src.sar not in ("1:1", "0:1"):
        stream = stream.filter("scale", "trunc(iw*sar/2)*2", "ih").filter("setsar", 1)
    if p.media == "video":
        stream = stream.filter("fps", p.fps).filter("trim", end_frame=p.frames)
    # Scale once (to cover, or to fit for pad), then split: the analysis copy is made from the
    # already small frames instead of from full-resolution ones, which is much cheaper.
    if profile.crop == "fill":
        stream = stream.filter("scale", p.width, p.height, force_original_aspect_ratio="increase",
                               flags="lanczos")
    else:
        stream = stream.filter("scale", p.width, p.height, force_original_aspect_ratio="decrease",
                               flags="lanczos")
    fork = stream.split()
    source, shaped = fork[0], fork[1]
    if profile.crop == "fill":
        shaped = shaped.filter("crop", p.width, p.height)
    else:
        shaped = shaped.filter("pad", p.width, p.height, "(ow-iw)/2", "(oh-ih)/2", color="black")
    shaped = shaped.filter("setsar", 1)
    fork = shaped.split()
    clip, strip = fork[0], fork[1]
    aw, ah = p.analysis_size
    analysis = source.filter("scale", aw, ah, flags="area").filter("format", "gray")
    if p.media == "video":
        mid, last = p.frames // 2, p.frames - 1
        strip = (strip.filter("select", f"eq(n,0)+eq(n,{mid})+eq(n,{last})")
                 .filter("scale", -2, FILMSTRIP_HEIGHT).filter("tile", "3x1"))
        streams, sound = [clip], {"an": None}
        if profile.audio:  # the sound of exactly the kept frames, as AAC
            streams.append(source_input.audio.filter("atrim", end=p.frames / p.fps)
                           .filter("asetpts", "PTS-STARTPTS"))
            sound = {"acodec": "aac", "audio_bitrate": "192k"}
        clip_out = ffmpeg.output(
            *streams, str(out_media), vcodec=profile.codec, crf=profile.crf,
            preset=profile.preset, pix_fmt=profile.pix_fmt, map_metadata=-1,
            movflags="+faststart", **sound,
            **{"frames:v": p.frames, "fps_mode": "cfr", "r": p.fps})
    else:
        strip = strip.filter("scale", -2, FILMSTRIP_HEIGHT)
        clip_out = ffmpeg.output(clip, str(out_media), map_metadata=-1, **{"frames:v": 1})
    strip_out = ffmpeg.output(strip, str(out_filmstrip), **{"frames:v": 1, "fps_mode": "vfr",
                                                            "q:v": 4})
    analysis_out = ffmpeg.output(analysis, "pipe:", format="rawvideo", pix_fmt="gray")
    return ffmpeg.merge_outputs(clip_out, strip_out, analysis_out).global_args(
        "-hide_banner", "-nostdin", "-loglevel", "error", "-y")


@dataclass
class Converted:
    analysis_frames: bytes
    frames_written: int


async def convert(src_path: Path, src: Probe, profile: Profile, p: Plan, out_media: Path,
                  out_filmstrip: Path) -> Converted:
    """Run the one-pass conversion. Outputs appear only complete (written beside, renamed)."""
    out_media.parent.mkdir(parents=True, exist_ok=True)
    out_filmstrip.parent.mkdir(parents=True, exist_ok=True)
    tmp_media, tmp_strip = files.part_name(out_media), files.part_name(out_filmstrip)
    args = build(src_path, src, profile, p, tmp_media, tmp_strip).compile()
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        for tmp in (tmp_media, tmp_strip):
            tmp.unlink(missing_ok=True)
        raise
    if proc.returncode != 0:
        for tmp in (tmp_media, tmp_strip):
            tmp.unlink(missing_ok=True)
        lines = stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise MediaError(f"ffmpeg could not convert it: {reason}")
    aw, ah = p.analysis_size
    got = len(stdout) // (aw * ah)
    if got < p.frames:
        for tmp in (tmp_media, tmp_strip):
            tmp.unlink(missing_ok=True)
        raise MediaError(f"decoded only {got} of the {p.frames} frames the file promises; it may "
                         "be truncated or have broken timestamps: re-encode it and add it again")
    os.replace(tmp_media, out_media)
    os.replace(tmp_strip, out_filmstrip)
    return Converted(stdout[: p.frames * aw * ah], p.frames)


def first_frame(src: Path, out: Path) -> Path:
    """The clip's first frame as a lossless PNG (an image-to-video sample's start image)."""
    import subprocess

    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-frames:v", "1",
                           str(out)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        raise MediaError(f"cannot read the first frame of {src.name}: "
                         f"{(done.stderr or '').strip()[-200:]}")
    return out


def last_frame(src: Path, out: Path) -> Path:
    """The video's exact last frame as a lossless PNG: every frame is decoded and written over
    the same file (image2's -update), so the last one stays, whatever the container says."""
    import subprocess

    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.stem + ".part" + out.suffix)
    done = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-map", "0:v:0",
                           "-f", "image2", "-update", "1", "-c:v", "png", str(part)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 or not part.exists():
        part.unlink(missing_ok=True)
        raise MediaError(f"cannot read the last frame of {src.name}: "
                         f"{(done.stderr or '').strip()[-200:]}")
    part.replace(out)
    return out


def concat(sources: list[Path], out: Path, crf: int = 16) -> Path:
    """The videos one after the other (every frame of each), re-encoded once: shots from a
    service may differ in encoding details that a stream copy would trip on. They must share
    a size; the first one's frame rate is kept."""
    import subprocess

    if not sources:
        raise MediaError("nothing to join")
    sizes = {(p.width, p.height) for p in (probe(s) for s in sources)}
    if len(sizes) > 1:
        listed = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
        raise MediaError(f"the shots have different sizes ({listed}): they cannot be joined "
                         "into one video")
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.stem + ".part" + out.suffix)
    inputs = [arg for s in sources for arg in ("-i", str(s))]
    chain = "".join(f"[{n}:v:0]" for n in range(len(sources)))
    done = subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex",
                           f"{chain}concat=n={len(sources)}:v=1:a=0[v]", "-map", "[v]",
                           "-fps_mode", "passthrough", "-c:v", "libx264", "-crf", str(crf),
                           "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(part)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 or not part.exists():
        part.unlink(missing_ok=True)
        raise MediaError(f"joining the shots failed: {(done.stderr or '').strip()[-300:]}")
    part.replace(out)
    return out


def filmstrip(src: Path, out: Path, facts: Probe | None = None) -> Path | None:
    """First, middle and last frame of a finished video side by side (for review screens).
    Pass the file's probe as `facts` if you have it."""
    import subprocess

    try:
        probe_ = facts or probe(src)
    except MediaError:
        return None
    inputs = [arg for key, value in input_options(probe_).items()
              for arg in (f"-{key}", *([] if value is None else [str(value)]))]
    if probe_.kind == "image":
        turn = "".join(f"{name}{'=' + str(args[0]) if args else ''},"
                       for name, args in ORIENTATION_FILTERS.get(probe_.orientation, []))
        args = ["-vf", f"{turn}scale=-2:{FILMSTRIP_HEIGHT}"]
    else:
        n = probe_.frames or int((probe_.duration or 1) * (probe_.fps or 16))
        mid, last = max(0, n // 2), max(0, n - 1)
        args = ["-vf", f"select='eq(n\\,0)+eq(n\\,{mid})+eq(n\\,{last})',"
                       f"scale=-2:{FILMSTRIP_HEIGHT},tile=3x1", "-fps_mode", "vfr"]
    done = subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-i", str(src), *args, "-frames:v", "1",
                           "-q:v", "4", str(out)], capture_output=True, check=False)
    return out if done.returncode == 0 and out.exists() else None
