"""Loss series for charts: smoothing and min/max downsampling (spikes survive), so a chart
stays readable and fast at 100,000 points."""

from __future__ import annotations

import math


def ema(values: list[float | None], alpha: float = 0.05) -> list[float | None]:
    """Exponential moving average; None and NaN points keep the previous value."""
    out: list[float | None] = []
    current: float | None = None
    for v in values:
        if v is not None and not math.isnan(v):
            current = v if current is None else alpha * v + (1 - alpha) * current
        out.append(current)
    return out


def downsample(steps: list[int], values: list[float | None], buckets: int
               ) -> tuple[list[float], list[float], list[float]]:
    """Split into `buckets` runs of steps; keep each run's mean step, min and max value."""
    pairs = [(s, v) for s, v in zip(steps, values, strict=True)
             if v is not None and not math.isnan(v)]
    if not pairs:
        return [], [], []
    if len(pairs) <= buckets:
        xs = [float(s) for s, _ in pairs]
        ys = [v for _, v in pairs]
        return xs, ys, ys
    size = len(pairs) / buckets
    xs, lows, highs = [], [], []
    for b in range(buckets):
        chunk = pairs[int(b * size):int((b + 1) * size)]
        if not chunk:
            continue
        xs.append(sum(s for s, _ in chunk) / len(chunk))
        vals = [v for _, v in chunk]
        lows.append(min(vals))
        highs.append(max(vals))
    return xs, lows, highs


def step_ticks(first: int, last: int, count: int) -> list[int]:
    """Whole steps to label an axis from `first` to `last` with at most `count` labels, spaced
    by 1, 2 or 5 times a power of ten (200, 400, 600, not 242.6, 480.2)."""
    if last <= first:
        return [first]
    count = max(1, count)
    power = 1
    while True:
        for m in (1, 2, 5):
            step = m * power
            ticks = list(range(-(-first // step) * step, last + 1, step))
            if len(ticks) <= count:
                return ticks
        power *= 10


def finite(value: float) -> bool:
    """A value a chart can draw (NaN and infinities are not)."""
    return value == value and value not in (float("inf"), float("-inf"))
