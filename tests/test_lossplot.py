from __future__ import annotations

import math

from lorad.training.lossplot import downsample, ema


def test_downsample_keeps_spikes_and_bounds_the_size():
    steps = list(range(1, 100_001))
    values = [0.1] * 100_000
    values[54_321] = 9.0  # one spike
    xs, lows, highs = downsample(steps, values, 400)
    assert len(xs) == 400 and max(highs) == 9.0 and min(lows) == 0.1
    assert xs == sorted(xs)


def test_nan_and_none_are_skipped():
    xs, lows, highs = downsample([1, 2, 3], [0.5, math.nan, None], 10)
    assert xs == [1.0] and lows == [0.5]
    assert ema([None, 1.0, math.nan, 0.0], alpha=0.5) == [None, 1.0, 1.0, 0.5]
