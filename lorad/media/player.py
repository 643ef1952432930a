"""Which command plays a clip: the `tui.player` setting, or the first player found."""

from __future__ import annotations

import shlex
import shutil

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
