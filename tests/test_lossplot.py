from __future__ import annotations

import math

from lorad.training.lossplot import downsample, ema, step_ticks


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


def test_step_ticks_are_whole_evenly_spaced_steps():
    assert step_ticks(1, 960, 7) == [200, 400, 600, 800]
    assert step_ticks(1, 3, 5) == [1, 2, 3]
    assert step_ticks(100_001, 100_040, 3) == [100_020, 100_040]
    assert step_ticks(5, 5, 4) == [5]
    for first, last, count in ((1, 37, 4), (0, 120_000, 6), (3, 7_777, 9)):
        ticks = step_ticks(first, last, count)
        assert 1 <= len(ticks) <= count and first <= ticks[0] and ticks[-1] <= last
        assert all(isinstance(t, int) for t in ticks)
