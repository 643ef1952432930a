"""Facts computed from the small grayscale frames of one conversion pass.

- motion: mean absolute difference between consecutive frames (0-255 scale), and the global
  shift that best explains each change, which tells a pan from motion inside a still frame;
- letterbox: rows or columns that stay black through the whole clip;
- dhash: a 192-bit perceptual hash (difference hash of first, middle and last frame) whose
  Hamming distance finds near-duplicates that differ in encoding, size or a few frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MOTION_STATIC = 1.0  # mean abs difference per frame below this: a tripod shot
MOTION_SLIGHT = 3.5  # below this: handheld sway, leaves in wind
PAN_MIN_SHIFT = 0.1  # analysis pixels per frame (of 64 across) of consistent global shift
PAN_SPAN = 8  # compare frames this far apart: slow pans move less than a pixel per frame
MAX_SHIFT = 6
BLACK_LEVEL = 28  # luma (limited range black is 16)
BAR_MIN_FRACTION = 0.04  # a bar is at least this share of the height (or width)


@dataclass
class Analysis:
    motion: float  # mean abs difference between consecutive frames
    motion_class: str  # static | slight | moving | panning
    shift: float  # mean magnitude of the best global shift per frame, in analysis pixels
    shift_gain: float  # how much of the change the shift explains (0..1)
    letterbox: bool
    bars: tuple[int, int, int, int]  # dark rows/cols at top, bottom, left, right (analysis px)
    dhash: str

    def as_dict(self) -> dict:
        return asdict(self)


def frames_from_bytes(raw: bytes, width: int, height: int) -> np.ndarray:
    n = len(raw) // (width * height)
    return np.frombuffer(raw[: n * width * height], dtype=np.uint8).reshape(n, height, width)


def _best_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int]:
    """Smallest mean abs difference of b shifted against a, over small integer shifts."""
    h, w = a.shape
    m = MAX_SHIFT
    core = a[m:h - m, m:w - m]
    best = (float("inf"), 0, 0)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            moved = b[m + dy:h - m + dy, m + dx:w - m + dx]
            err = float(np.abs(core - moved).mean())
            if err < best[0] - 1e-9 or (abs(err - best[0]) < 1e-9 and abs(dx) + abs(dy)
                                        < abs(best[1]) + abs(best[2])):
                best = (err, dx, dy)
    return best


def motion(frames: np.ndarray) -> tuple[float, str, float, float]:
    if len(frames) < 2:
        return 0.0, "static", 0.0, 0.0
    f = frames.astype(np.int16)
    diffs = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2))
    mad = float(diffs.mean())
    # Global shift between frames PAN_SPAN apart, on a few evenly spaced pairs.
    span = min(PAN_SPAN, len(f) - 1)
    picks = np.linspace(0, len(f) - 1 - span, num=min(4, len(f) - span)).astype(int)
    shifts, gains = [], []
    m = MAX_SHIFT
    for i in picks:
        a, b = f[i], f[i + span]
        zero = float(np.abs(a - b)[m:-m, m:-m].mean())
        err, dx, dy = _best_shift(a, b)
        shifts.append((dx * dx + dy * dy) ** 0.5 / span)
        gains.append(0.0 if zero < 1e-6 else max(0.0, (zero - err) / zero))
    shift = float(np.median(shifts))
    gain = float(np.median(gains))
    if mad < MOTION_STATIC:
        cls = "static"
    elif shift >= PAN_MIN_SHIFT and gain >= 0.3:
        cls = "panning"
    elif mad < MOTION_SLIGHT:
        cls = "slight"
    else:
        cls = "moving"
    return mad, cls, shift, gain


def bars(frames: np.ndarray) -> tuple[int, int, int, int]:
    brightest = frames.max(axis=0)  # a bar stays dark in every frame
    rows = brightest.max(axis=1) < BLACK_LEVEL
    cols = brightest.max(axis=0) < BLACK_LEVEL

    def run(mask: np.ndarray) -> int:
        n = 0
        for dark in mask:
            if not dark:
                break
            n += 1
        return n

    if rows.all():  # an all-black clip has no bars, it is just black
        return 0, 0, 0, 0
    return run(rows), run(rows[::-1]), run(cols), run(cols[::-1])


def is_letterboxed(b: tuple[int, int, int, int], width: int, height: int) -> bool:
    top, bottom, left, right = b
    min_rows = max(1, int(height * BAR_MIN_FRACTION))
    min_cols = max(1, int(width * BAR_MIN_FRACTION))
    return (top >= min_rows and bottom >= min_rows) or (left >= min_cols and right >= min_cols)


def _resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average resize (small, exact enough for hashing)."""
    h, w = frame.shape
    ys = np.linspace(0, h, height + 1).astype(int)
    xs = np.linspace(0, w, width + 1).astype(int)
    out = np.empty((height, width), dtype=np.float32)
    for i in range(height):
        for j in range(width):
            out[i, j] = frame[ys[i]:max(ys[i + 1], ys[i] + 1), xs[j]:max(xs[j + 1], xs[j] + 1)].mean()
    return out


def dhash(frames: np.ndarray) -> str:
    bits = []
    for index in sorted({0, len(frames) // 2, len(frames) - 1}) if len(frames) > 1 else [0, 0, 0]:
        small = _resize(frames[index].astype(np.float32), 8, 9)
        bits.extend((small[:, 1:] > small[:, :-1]).flatten().tolist())
    while len(bits) < 192:  # a 2-frame clip: pad with its last hash
        bits.extend(bits[-64:])
    value = 0
    for bit in bits[:192]:
        value = (value << 1) | int(bit)
    return f"{value:048x}"


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def analyse(raw: bytes, width: int, height: int) -> Analysis:
    frames = frames_from_bytes(raw, width, height)
    mad, cls, shift, gain = motion(frames)
    b = bars(frames)
    return Analysis(round(mad, 3), cls, round(shift, 3), round(gain, 3),
                    is_letterboxed(b, width, height), b, dhash(frames))
