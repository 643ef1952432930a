"""What a trainer's log means, as events, read incrementally from a byte offset.

A trainer says how to read one line (its ``events_in``); :class:`LineParser` does the rest for
every trainer: it splits on both ``\\r`` (progress-bar updates) and ``\\n``, keeps an unfinished
line for the next chunk, and counts the bytes of complete lines in ``offset``. Persist the
offset, and a new parser started there after a dropped connection neither loses nor repeats an
event (a step's loss is stored under its step number, the last value winning).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    elapsed: float | None = None
    remaining: float | None = None
    rate: float | None = None  # steps per second
    avr_loss: float | None = None


@dataclass(frozen=True)
class Epoch:
    epoch: int
    total: int


@dataclass(frozen=True)
class Checkpoint:
    path: str  # on the pod, as the trainer printed it


@dataclass(frozen=True)
class EvalLoss:
    step: int  # the optimizer step the evaluation ran at
    loss: float | None


@dataclass(frozen=True)
class TotalSteps:
    total: int


@dataclass(frozen=True)
class StateSaved:
    line: str


@dataclass(frozen=True)
class ModelSaved:
    pass


@dataclass(frozen=True)
class Failure:
    kind: str  # oom | nan | traceback | error
    line: str


Event = (Progress | Epoch | Checkpoint | TotalSteps | StateSaved | ModelSaved | Failure
         | EvalLoss)
LineReader = Callable[[str], list[Event]]

OOM = "CUDA out of memory"
TRACEBACK = "Traceback (most recent call last)"


class LineParser:
    """Incremental: feed raw bytes, get events; ``offset`` is the log position just after the
    last complete line.

    ``tail`` reads the unfinished last line, for trainers whose progress bar only ends its
    line when it draws the next one (tqdm): a tail that already holds a whole bar is reported
    now instead of a step later (its step's loss is stored again, same value, when the line
    ends)."""

    def __init__(self, events_in: LineReader, offset: int = 0, *,
                 tail: LineReader | None = None) -> None:
        self.events_in = events_in
        self.tail = tail
        self.offset = offset
        self._pending = b""
        self._shown_tail = b""

    def feed(self, data: bytes) -> list[Event]:
        buf = self._pending + data
        events: list[Event] = []
        start = 0
        for m in re.finditer(rb"[\r\n]", buf):
            line = buf[start:m.start()].decode("utf-8", errors="replace")
            start = m.end()
            if line:
                events.extend(self.events_in(line))
        self.offset += start  # the unfinished tail is read again after a reconnect
        self._pending = buf[start:]
        if self.tail is not None and self._pending and self._pending != self._shown_tail:
            found = self.tail(self._pending.decode("utf-8", errors="replace"))
            if found:
                self._shown_tail = self._pending
                events.extend(found)
        return events


def is_nan(value: float | None) -> bool:
    return value is not None and math.isnan(value)


def parse_loss(text: str | None) -> float | None:
    """A loss as printed: a number, `nan` or `inf`; anything else is unknown."""
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return None


def common_failure(text: str) -> str | None:
    """What every PyTorch trainer's log says when it dies: out of memory, or a traceback."""
    if OOM in text:
        return "CUDA out of memory (lower resolution or frames, or trade speed for memory)"
    if TRACEBACK in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return f"the trainer crashed: {last.strip()}"
    return None


def readable(text: str, events_in: LineReader) -> list[str]:
    """A log for people: CRs become line breaks, empty lines go, and of each run of
    progress updates (lines the trainer's `events_in` reads as Progress) only the last stays
    (a long run writes thousands)."""
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    progress = [any(isinstance(e, Progress) for e in events_in(line)) for line in lines]
    return [line for n, line in enumerate(lines)
            if not (progress[n] and n + 1 < len(lines) and progress[n + 1])]


def as_terminal(lines: list[str], text: str, limit: int) -> list[str]:
    """The last `limit` lines a terminal would show after `text`: a carriage return draws over
    the current line (a progress bar redrawn for every step shows once, not once per redraw)."""
    out = list(lines) or [""]
    for n, piece in enumerate(text.split("\n")):
        if n:
            out.append("")
        for m, segment in enumerate(piece.split("\r")):
            if m == 0:
                out[-1] += segment
            elif segment:
                out[-1] = segment
    return out[-limit:]
