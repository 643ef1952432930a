"""Make real media files with ffmpeg's lavfi sources, shaped like what phones and editors give."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_video(path: Path, *, size: str = "1080x1920", fps: float = 30, seconds: float = 3.0,
               source: str = "testsrc2", codec: str = "libx264", pix_fmt: str = "yuv420p",
               audio: bool = True, rotate: int | None = None, sar: str | None = None,
               vfr: bool = False, vf: str | None = None, extra: list[str] | None = None) -> Path:
    """A clip from a lavfi source. `rotate` writes display-matrix metadata (as phones do);
    `sar` makes non-square pixels; `vfr` drops frames irregularly for variable frame rate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sep = ":" if "=" in source else "="
    src = f"{source}{sep}size={size}:rate={fps}"
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    filters = []
    if vf:
        filters.append(vf)
    if sar:
        filters.append(f"setsar={sar}")
    if vfr:
        filters.append("select='not(eq(mod(n,5),3))'")  # gaps keep their timestamps
    if filters:
        args += ["-vf", ",".join(filters)]
    args += ["-c:v", codec, "-pix_fmt", pix_fmt]
    if codec == "libx264":
        args += ["-preset", "ultrafast"]
    if codec == "libx265":
        args += ["-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1"]
    if vfr:
        args += ["-fps_mode", "passthrough"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    args += ["-t", str(seconds), *(extra or [])]
    tmp = path.with_name("tmp-" + path.name) if rotate is not None else path
    subprocess.run([*args, str(tmp)], check=True)
    if rotate is not None:
        # ffmpeg 5.1 writes the mp4 display matrix from the legacy `rotate` tag (6.0+ also
        # has -display_rotation); phones store the same matrix.
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(tmp),
                        "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(path)],
                       check=True)
        tmp.unlink()
    return path


def make_image(path: Path, size: str = "1200x900", source: str = "testsrc2") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sep = ":" if "=" in source else "="
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"{source}{sep}size={size}:rate=1", "-frames:v", "1", "-update", "1",
                    str(path)], check=True)
    return path


def make_audio(path: Path, seconds: float = 3.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:a", "aac", str(path)],
                   check=True)
    return path


def ffprobe(path: Path) -> dict:
    """Width, height, fps, frame count (counted, not guessed) and rotation of the first video."""
    import json

    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=width,height,r_frame_rate,nb_read_frames,codec_name,pix_fmt,sample_aspect_ratio"
         ":stream_side_data=rotation", "-of", "json", str(path)],
        capture_output=True, text=True, check=True)
    stream = json.loads(out.stdout)["streams"][0]
    num, den = stream["r_frame_rate"].split("/")
    rotation = 0
    for side in stream.get("side_data_list") or []:
        rotation = int(side.get("rotation", 0))
    return {"width": stream["width"], "height": stream["height"],
            "fps": float(num) / float(den), "frames": int(stream["nb_read_frames"]),
            "codec": stream["codec_name"], "pix_fmt": stream.get("pix_fmt"),
            "sar": stream.get("sample_aspect_ratio"), "rotation": rotation}


def tiny_clip(path: Path, colour: str = "red", seconds: float = 0.5) -> Path:
    """A real, very small video (64x112 at 16 fps) for code that must read frames but not
    judge them: exports write each eval prompt's start image from a clip."""
    return make_video(path, size="64x112", fps=16, seconds=seconds,
                      source=f"color=c={colour}", audio=False)
