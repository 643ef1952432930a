"""How a clip is played: in a player window (the `tui.player` setting, or the first player
found) where a display exists, else inside the terminal from frames decoded here."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorad.core.errors import LoradError

AUTO = [["mpv", "--loop-file=inf", "--really-quiet"], ["ffplay", "-loop", "0", "-autoexit",
                                                        "-loglevel", "error"], ["xdg-open"],
        ["open"]]


class PlayerError(LoradError):
    pass


def command(setting: str, path: str) -> list[str]:
    if setting and setting != "auto":
        args = shlex.split(setting)
        if not shutil.which(args[0]):
            raise PlayerError(f"player {args[0]!r} (tui.player in lorad.toml) is not installed")
        return [*args, path]
    for candidate in AUTO:
        if shutil.which(candidate[0]):
            return [*candidate, path]
    raise PlayerError("no video player found: install mpv (or ffplay), or set tui.player in "
                      "lorad.toml")


AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".m4a", ".ogg", ".opus", ".aac")
# a track plays in the terminal the TUI suspends for: no window (over SSH there is none), the
# player's own keys (space pauses, q stops)
AUDIO_PLAYERS = [["mpv", "--no-video", "--force-window=no", "--loop-file=no"],
                 ["ffplay", "-nodisp", "-autoexit", "-loglevel", "error"]]


def is_audio(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def audio_command(setting: str, path: str) -> list[str]:
    """The player for a track: `tui.player` when it is set to one, else mpv or ffplay with no
    window."""
    if setting and setting not in ("auto", "terminal"):
        return command(setting, path)
    for candidate in AUDIO_PLAYERS:
        if shutil.which(candidate[0]):
            return [*candidate, path]
    raise PlayerError("no audio player found: install mpv (or ffplay, part of ffmpeg), or set "
                      "tui.player in lorad.toml")


def has_display(env: dict[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether a GUI player can show a window here: macOS and Windows have a desktop; elsewhere
    an X11 or Wayland display must be set (over plain SSH it is not)."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def in_terminal(setting: str) -> bool:
    """Play inside the TUI (frames drawn in the terminal) rather than in a player window:
    `tui.player = "terminal"`, or "auto" where no window can open."""
    return setting == "terminal" or (setting in ("", "auto") and not has_display())


@dataclass
class Frames:
    images: list[Any]  # PIL images
    fps: float
    duration: float  # of the whole clip, s


def frames(path: str | Path, *, fps: float = 8.0, height: int = 216, limit: int = 480) -> Frames:
    """A clip's frames, decoded small and at a few per second, for drawing in the terminal
    (the same image method as the filmstrips). Runs in a worker, never on the UI loop."""
    import subprocess

    from PIL import Image

    from lorad.media import convert

    facts = convert.probe(Path(path))
    if not facts.width or not facts.height:
        raise PlayerError(f"{Path(path).name} has no picture to play")
    if facts.kind == "image":
        fps = 1.0
    height = min(height, facts.height) // 2 * 2
    width = max(2, int(facts.width * height / facts.height) // 2 * 2)
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf",
                           f"fps={fps},scale={width}:{height}", "-frames:v", str(limit),
                           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, check=False)
    size = width * height * 3
    if done.returncode != 0 or len(done.stdout) < size:
        raise PlayerError(f"cannot decode {Path(path).name}: "
                          f"{done.stderr.decode(errors='replace').strip()[-200:]}")
    images = [Image.frombytes("RGB", (width, height), done.stdout[i:i + size])
              for i in range(0, len(done.stdout) - size + 1, size)]
    return Frames(images, fps, facts.duration or len(images) / fps)
