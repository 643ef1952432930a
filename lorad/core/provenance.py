"""What every manifest records of the tools that made something: lorad's version and
ffmpeg's, read once per process."""

from __future__ import annotations

import functools
import platform
import subprocess
from typing import Any


@functools.cache
def ffmpeg_version() -> str | None:
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True,
                             check=False, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.splitlines()[0] if out else ""
    return first.split(" version ", 1)[1].split(" ", 1)[0] if " version " in first else None


def tools() -> dict[str, Any]:
    from lorad import __version__

    return {"lorad": __version__, "ffmpeg": ffmpeg_version(),
            "python": platform.python_version()}
