"""Automatic checks of a generated output before a person looks: that it is a readable file of
the kind the endpoint makes (else it is unusable: a failed generation, paid for), then the fps,
frame count and aspect it should have, and a frozen/static-video check (near-zero frame
difference), which flag it for a person.

What an output should be comes from the endpoint (`Endpoint.expected_output`), not from the
raw request: a service may change it on purpose (fal's Wan 2.2 interpolates frames by default,
so 81 frames at 16 fps come back as 161 at 32)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from lorad.media import analysis, convert

# The frozen check's threshold per check profile: the mean absolute difference between
# consecutive frames, as a fraction of the full range (the seed's runner: 0.003 for quality runs,
# 0 for smoke runs, where a frozen clip is no news).
CHECK_PROFILES = {"quality": 0.003, "smoke": 0.0}
ASPECTS = {"9:16": 9 / 16, "16:9": 16 / 9, "1:1": 1.0}


def thresholds(profile: str = "quality", min_frame_diff: float | None = None) -> dict[str, Any]:
    """The thresholds a check uses: the profile's, `min_frame_diff` (0-1) overriding it when
    given and not negative. Recorded with the check's result."""
    if profile not in CHECK_PROFILES:
        raise convert.MediaError(f"check profile {profile!r}: use one of "
                                 f"{', '.join(CHECK_PROFILES)}")
    override = min_frame_diff is not None and min_frame_diff >= 0
    return {"profile": profile,
            "min_frame_diff": float(min_frame_diff) if override else CHECK_PROFILES[profile],
            "min_frame_diff_from": "override" if override else "profile"}


def check(path: Path, expected: dict[str, Any], probe: convert.Probe | None = None,
          media: str = "video", limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """Facts and problems; `problems` empty means it passed, `usable` false that the output is
    not a readable `media` at all. `expected`: `frames`, `fps` and `aspect_ratio`, each checked
    when given (`Endpoint.expected_output`); the frames and fps are recorded as `expected`. Pass
    `probe` if you have it."""
    try:
        probe = probe or convert.probe(path)
    except convert.MediaError as exc:
        return {"ok": False, "usable": False, "problems": [f"unreadable output: {exc}"]}
    facts: dict[str, Any] = {"width": probe.width, "height": probe.height, "fps": probe.fps,
                             "frames": probe.frames, "duration": probe.duration,
                             "kind": probe.kind, "usable": probe.kind == media}
    if probe.kind != media:
        return {**facts, "ok": False,
                "problems": [f"the endpoint makes a {media}, but the output is a {probe.kind}"]}
    problems = []
    aspect = expected.get("aspect_ratio")
    if aspect in ASPECTS and probe.height:
        actual = probe.width / probe.height
        if abs(actual - ASPECTS[aspect]) / ASPECTS[aspect] > 0.03:
            problems.append(f"aspect {probe.width}x{probe.height} is not the {aspect} asked")
    if probe.kind == "video":
        facts["expected"] = {k: expected[k] for k in ("frames", "fps") if k in expected}
        why = expected.get("interpolation")
        want_fps = expected.get("fps")
        if want_fps and probe.fps and abs(probe.fps - want_fps) > 0.5:
            because = f" ({expected.get('asked_fps')} asked; {why})" if why else ""
            problems.append(f"{probe.fps:g} fps, {want_fps:g} expected{because}")
        want_frames = expected.get("frames")
        if want_frames and probe.frames and abs(probe.frames - want_frames) > 1:
            because = f" ({expected.get('asked_frames')} asked; {why})" if why else ""
            problems.append(f"{probe.frames} frames, {want_frames} expected{because}")
        limits = limits or thresholds()
        facts["thresholds"] = limits
        mad = frame_difference(path, probe=probe)
        facts["motion"] = mad
        floor = limits["min_frame_diff"]
        if mad is not None and floor > 0 and mad / 255 < floor:
            problems.append(f"frozen: the picture barely changes (mean frame difference "
                            f"{mad / 255:.4f} of the range, below {floor:g} for "
                            f"{limits['profile']} checks); probably a broken output")
    facts["ok"] = not problems
    facts["problems"] = problems
    return facts


def frame_difference(path: Path, width: int = 64, probe: convert.Probe | None = None
                     ) -> float | None:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf",
                          f"scale={width}:-2,format=gray", "-f", "rawvideo", "-"],
                         capture_output=True, check=False)
    if out.returncode != 0 or not out.stdout:
        return None
    probe = probe or convert.probe(path)
    height = int(round(width * probe.height / probe.width / 2)) * 2
    frames = analysis.frames_from_bytes(out.stdout, width, height)
    mad, _cls, _s, _g = analysis.motion(frames)
    return round(mad, 3)
