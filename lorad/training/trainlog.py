"""Parse musubi-tuner's training output as it arrives, in any chunking.

The remote log is read by byte offset; `LogParser.feed(bytes)` splits on both `\\r` (tqdm bar
updates) and `\\n`, keeps an unfinished line for the next chunk, and returns events. Formats and
regexes follow the reference (tqdm `format_meter` in a pipe: 10-character bar, `s/it` or
`it/s`, `avr_loss` as `.3g`, each step printed about twice).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PROGRESS = re.compile(
    r"steps:\s*(\d+)%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([\d:]+)<([\d:?]+),\s*([\d.?]+)\s*(s/it|it/s)"
    r"(?:,\s*avr_loss=([^,\]]+))?")
EPOCH = re.compile(r"^epoch (\d+)/(\d+)\s*$")
CHECKPOINT = re.compile(r"^saving checkpoint: (.+\.safetensors)\s*$")
TOTAL_STEPS = re.compile(r"total optimization steps / .*?: (\d+)")
STATE_SAVE = re.compile(r"saving state at (epoch|step) (\d+)|saving last state\.")
MODEL_SAVED = "model saved."
OOM = "CUDA out of memory"


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    elapsed: float | None
    remaining: float | None
    rate: float | None  # steps per second
    avr_loss: float | None


@dataclass(frozen=True)
class Epoch:
    epoch: int
    total: int


@dataclass(frozen=True)
class Checkpoint:
    path: str


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
    kind: str  # oom | traceback | error
    line: str


def clock(text: str) -> float | None:
    """`MM:SS` or `H:MM:SS` to seconds; `?` is unknown."""
    if "?" in text:
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_loss(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip()
    try:
        return float(text)  # float("nan") is nan, as the bar prints it
    except ValueError:
        return None


def parse_line(line: str):
    """One line (without CR or LF) to its last event, or None."""
    events = events_in(line)
    return events[-1] if events else None


def events_in(line: str) -> list:
    """Events of one line. tqdm never ends its line, so a traceback or log line can follow a
    bar on the same line: `...avr_loss=0.111]Traceback (most recent call last):`."""
    first = _event(line)
    failure = None
    if "Traceback (most recent call last)" in line and not isinstance(first, Failure):
        failure = Failure("traceback", line[line.index("Traceback"):].strip())
    return [e for e in (first, failure) if e is not None]


def _event(line: str):
    if OOM in line:
        return Failure("oom", line.strip())
    if "steps:" in line:
        m = PROGRESS.search(line)
        if m:
            rate_value = None if "?" in m.group(6) else float(m.group(6))
            if rate_value is not None and m.group(7) == "s/it":
                rate_value = 1.0 / rate_value if rate_value else None
            return Progress(int(m.group(2)), int(m.group(3)), clock(m.group(4)),
                            clock(m.group(5)), rate_value, parse_loss(m.group(8)))
    m = EPOCH.match(line)
    if m:
        return Epoch(int(m.group(1)), int(m.group(2)))
    m = CHECKPOINT.match(line)
    if m:
        return Checkpoint(m.group(1))
    if line.rstrip().endswith(MODEL_SAVED):
        return ModelSaved()
    m = TOTAL_STEPS.search(line)
    if m:
        return TotalSteps(int(m.group(1)))
    if STATE_SAVE.search(line):
        return StateSaved(line.strip())
    return None


class LogParser:
    """Incremental: feed raw bytes, get events. `offset` is the log position just after the
    last complete line: persist it, and a new parser started there after a dropped connection
    neither loses nor repeats an event. (A step's loss is stored under its step number, the
    last value winning, so the bar printing a step twice gives one point.)"""

    report_finished_tail = True  # bench/training.py turns it off for its baseline

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset
        self._pending = b""
        self._shown_tail = b""

    def feed(self, data: bytes) -> list:
        buf = self._pending + data
        events = []
        start = 0
        for m in re.finditer(rb"[\r\n]", buf):
            line = buf[start:m.start()].decode("utf-8", errors="replace")
            start = m.end()
            if line:
                events.extend(events_in(line))
        self.offset += start  # the unfinished tail is read again after a reconnect
        self._pending = buf[start:]
        # tqdm ends a bar only when it draws the next one, a whole step later: a tail that is
        # already a complete bar is reported now (its step's loss is stored again, same value,
        # when the line ends)
        tail = self._pending
        if self.report_finished_tail and tail and tail != self._shown_tail \
                and tail.rstrip().endswith(b"]"):
            self._shown_tail = tail
            event = _event(tail.decode("utf-8", errors="replace"))
            if isinstance(event, Progress):
                events.append(event)
        return events


def is_nan(value: float | None) -> bool:
    return value is not None and math.isnan(value)


def readable(text: str) -> list[str]:
    """A log for people: CRs become line breaks, empty lines go, and of each run of
    progress-bar updates only the last stays (a long run writes thousands)."""
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return [line for n, line in enumerate(lines)
            if not (line.startswith("steps:") and n + 1 < len(lines)
                    and lines[n + 1].startswith("steps:"))]
