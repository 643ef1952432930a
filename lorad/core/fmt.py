"""Plain-text formatting shared by the CLI and the TUI (ages, durations, tables)."""

from __future__ import annotations

import re
import time


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def age(timestamp: float | None, now: float | None = None) -> str:
    if timestamp is None:
        return "-"
    return duration((now or time.time()) - timestamp)


def bar(fraction: float | None, width: int = 10) -> str:
    if fraction is None:
        return " " * width
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def percent(fraction: float | None) -> str:
    """`  42%`, or blanks of the same width when unknown."""
    return "    " if fraction is None else f"{fraction * 100:3.0f}%"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text as a terminal may print it: control characters (an ESC that would recolour or move
    the cursor, a NUL, a C1 code) shown as `\\x1b`-style escapes, never sent raw."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows of one line each: user text in a cell cannot break the table or the terminal."""
    rows = [[printable(str(c)).replace("\n", " ").replace("\t", " ") for c in row]
            for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def money(amount: float) -> str:
    """Dollars with cents, or with a tenth of a cent when that is all there is ($0.004): a
    batch of caption drafts is not "$0.00"."""
    return f"${amount:.2f}" if amount >= 0.1 or amount == 0 else f"${amount:.4f}"
