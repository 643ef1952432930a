"""musubi-tuner's training output, line by line.

Formats and regexes follow the reference (tqdm `format_meter` in a pipe: 10-character bar,
`s/it` or `it/s`, `avr_loss` as `.3g`, each step printed about twice). tqdm never ends its line,
so a traceback or log line can follow a bar on the same line:
`...avr_loss=0.111]Traceback (most recent call last):`.
"""

from __future__ import annotations

import re

from lorad.training.logparse import (
    OOM,
    TRACEBACK,
    Checkpoint,
    Epoch,
    Event,
    Failure,
    LineParser,
    ModelSaved,
    Progress,
    StateSaved,
    TotalSteps,
    parse_loss,
)

PROGRESS = re.compile(
    r"steps:\s*(\d+)%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([\d:]+)<([\d:?]+),\s*([\d.?]+)\s*(s/it|it/s)"
    r"(?P<postfix>[^\]]*)")
# The loss anywhere in the postfix (with --scale_weight_norms it follows "Average key norm" and
# "Keys Scaled"), and only when its value is ended by "," or "]": a bar cut short must not give
# a truncated number.
AVR_LOSS = re.compile(r"avr_loss=([^,\]\s]+)\s*(?=[,\]])")
EPOCH = re.compile(r"^epoch (\d+)/(\d+)\s*$")
CHECKPOINT = re.compile(r"^saving checkpoint: (.+\.safetensors)\s*$")
TOTAL_STEPS = re.compile(r"total optimization steps / .*?: (\d+)")
STATE_SAVE = re.compile(r"saving state at (epoch|step) (\d+)|saving last state\.")
MODEL_SAVED = "model saved."


def clock(text: str) -> float | None:
    """`MM:SS` or `H:MM:SS` to seconds; `?` is unknown."""
    if "?" in text:
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_line(line: str) -> Event | None:
    """One line (without CR or LF) to its last event, or None."""
    events = events_in(line)
    return events[-1] if events else None


def events_in(line: str) -> list[Event]:
    first = _event(line)
    failure = None
    if TRACEBACK in line and not isinstance(first, Failure):
        failure = Failure("traceback", line[line.index("Traceback"):].strip())
    return [e for e in (first, failure) if e is not None]


def finished_bar(tail: str) -> list[Event]:
    """An unfinished line that is already a whole progress bar (tqdm draws the next one a
    step later)."""
    if not tail.rstrip().endswith("]"):
        return []
    event = _event(tail)
    return [event] if isinstance(event, Progress) else []


def parser(offset: int = 0, *, report_finished_tail: bool = True) -> LineParser:
    """bench/training.py turns the early report of a finished bar off for its baseline."""
    return LineParser(events_in, offset, tail=finished_bar if report_finished_tail else None)


def _event(line: str) -> Event | None:
    if OOM in line:
        return Failure("oom", line.strip())
    if "steps:" in line:
        m = PROGRESS.search(line)
        if m:
            rate_value = None if "?" in m.group(6) else float(m.group(6))
            if rate_value is not None and m.group(7) == "s/it":
                rate_value = 1.0 / rate_value if rate_value else None
            loss = AVR_LOSS.search(line, m.start("postfix"))
            return Progress(int(m.group(2)), int(m.group(3)), clock(m.group(4)),
                            clock(m.group(5)), rate_value, parse_loss(loss.group(1)) if loss
                            else None)
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
