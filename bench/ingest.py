"""Benchmark: how long lorad takes to ingest a folder of phone clips, against plain ffmpeg.

Run by hand (not part of the tests):  .venv/bin/python bench/ingest.py [--clips N] [--repeat R] [--keep]

It makes N raw clips first (not timed) that look like what a phone gives: 1080x1920 portrait,
30 fps, 6-10 s, H.264 at about 15 Mbit/s with AAC audio, varied content, names with spaces.
Then it times three ways of turning those clips into Wan 2.1 480p portrait training clips
(480x848, 16 fps, 41 frames), each over the same N clips:

(a) lorad: `clips.add` on the folder and the real daemon working the queue until no job is queued
    or running. The daemon is started (and has loaded its handlers) BEFORE the clock starts, so
    start-up is reported apart; what is timed is what a user waits for after `lorad clips add`:
    queue pick-up, hashing, probing, the one-pass ffmpeg conversion (clip + filmstrip + analysis
    frames), motion/duplicate analysis and the database writes, with the daemon's own
    parallelism.
(b) baseline: what users did before lorad, one plain ffmpeg transcode per clip, sequentially, to
    the same size, fps, frame count and encoder settings.
(c) floor: decode only, sequentially, of the same part of each clip lorad reads (the read window
    comes from `lorad.media.convert.plan`), i.e. the least any tool must do to look at the frames.

lorad/baseline says what lorad's bookkeeping and extras cost (or its parallelism saves);
lorad/floor says how far it is from the decoding bound. Files sit in the page cache for all
three (they were just written), so disk speed is not measured. Each measurement is repeated
--repeat times and the best is kept. `--phases` also times lorad's steps one by one, in process
and sequentially, to show where a clip's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchrun import problem_lines, run_in_tempdir

from lorad.core import daemon, jobs, workspace
from lorad.media import analysis, clips, convert, datasets, ingest, profiles

PROFILE = "wan21-t2v-480p-portrait"
POLL = 0.05  # seconds between looks at the jobs table
WIDTH, HEIGHT, RATE = 1080, 1920, 30
ENCODE = ["-c:v", "libx264", "-b:v", "15M", "-maxrate", "15M", "-bufsize", "30M", "-preset", "veryfast",
          "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"]
BASELINE_VF = "scale=480:848:force_original_aspect_ratio=increase,crop=480:848,fps=16"

# lavfi video sources, full portrait frame at 30 fps; grain and a hue shift are added per clip.
SOURCES: list[tuple[str, str]] = [
    ("testsrc2", f"testsrc2=s={WIDTH}x{HEIGHT}:r={RATE}"),
    ("mandelbrot", f"mandelbrot=s=540x960:r={RATE},scale={WIDTH}:{HEIGHT}"),
    ("bars pan", f"smptehdbars=s=1920x{HEIGHT}:r={RATE},"
                 f"crop={WIDTH}:{HEIGHT}:x='(iw-ow)/2*(1+sin(t*1.3))':y=0"),
    ("life", f"life=s=540x960:r={RATE}:mold=10:ratio=0.3:life_color=#00ff80:death_color=#202040,"
             f"scale={WIDTH}:{HEIGHT}:flags=neighbor"),
    ("cellauto", f"cellauto=s={WIDTH}x{HEIGHT}:r={RATE}:rule=110:random_fill_ratio=0.5"),
    ("gradients", f"gradients=s={WIDTH}x{HEIGHT}:r={RATE}:speed=0.03:n=5"),
    ("sierpinski", f"sierpinski=s={WIDTH}x{HEIGHT}:r={RATE}"),
    ("testsrc hue", f"testsrc=s={WIDTH}x{HEIGHT}:r={RATE},hue=h=t*40"),
]


@dataclass
class LoradRun:
    seconds: float
    startup: float  # daemon.start() until handlers were loaded; not in `seconds`
    pickup: float  # clips.add returned -> first ingest job claimed
    job_seconds: list[float]
    span: float  # first job claimed -> last job finished
    tail: float  # last job finished -> this script noticed the queue was empty
    states: dict[str, int]
    problems: list[str] = field(default_factory=list)
    scores: list[int] = field(default_factory=list)  # the clips' quality scores, where measured


# ---- raw clips --------------------------------------------------------------------------------

def durations(n: int) -> list[float]:
    """n durations spread evenly over 6-10 s."""
    return [round(6.0 + 4.0 * i / max(1, n - 1), 2) for i in range(n)]


def make_clip(path: Path, graph: str, seconds: float, index: int) -> None:
    video = f"{graph},hue=h={index * 37 % 360},noise=alls=6:allf=t+u:all_seed={index + 1},format=yuv420p"
    audio = f"sine=frequency={220 + 55 * index}:sample_rate=48000"
    run_ffmpeg(["-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio, "-t", f"{seconds}",
                *ENCODE, str(path)])


def generate_clips(raw_dir: Path, n: int) -> list[Path]:
    raw_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, seconds in enumerate(durations(n)):
        label, graph = SOURCES[i % len(SOURCES)]
        path = raw_dir / f"IMG {i + 1:04d} {label}.mp4"
        print(f"  making {path.name} ({seconds:.1f} s)", flush=True)
        make_clip(path, graph, seconds, i)
        paths.append(path)
    return paths


# ---- ffmpeg helpers ---------------------------------------------------------------------------

def run_ffmpeg(args: list[str]) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr.strip()}")


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "ffmpeg: unknown version"


def read_windows(paths: list[Path]) -> dict[Path, float]:
    """Seconds of each source lorad decodes, from its own probe and plan."""
    profile = profiles.get(PROFILE)
    windows = {}
    for path in paths:
        plan = convert.plan(convert.probe(path), profile)
        windows[path] = plan.read_seconds if plan.read_seconds is not None else 0.0
    return windows


# ---- (a) lorad through the daemon -------------------------------------------------------------

def start_daemon(ws: workspace.Workspace) -> float:
    """Start the daemon (daemon.start runs `sys.executable -m lorad`, i.e. this interpreter) and
    wait until it has imported its handlers and logged that it serves."""
    t0 = time.perf_counter()
    status = daemon.start(ws)
    marker = f"daemon pid {status.pid} started"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ws.log_path.exists() and marker in ws.log_path.read_text(errors="replace"):
            return time.perf_counter() - t0
        time.sleep(0.01)
    raise RuntimeError(f"the daemon did not log {marker!r}; see {ws.log_path}")


def wait_idle(conn, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = jobs.counts_by_state(conn)
        if counts["queued"] == 0 and counts["running"] == 0:
            return
        time.sleep(POLL)
    raise RuntimeError(f"jobs still active after {timeout:.0f} s: {jobs.counts_by_state(conn)}")


def clip_problems(conn, dataset: datasets.Dataset) -> tuple[dict[str, int], list[str]]:
    """Counts of clip states, and one line per clip that is neither ready nor a rejected duplicate,
    or ready with other than the profile's frame count (plus failed jobs)."""
    frames = profiles.get(dataset.profile).frames  # None for audio: nothing to count
    states: dict[str, int] = {}
    problems = []
    for clip in clips.list_clips(conn, dataset.id):
        states[clip.state] = states.get(clip.state, 0) + 1
        fine = clip.state == "ready" or (clip.state == "rejected" and clip.duplicate_of is not None)
        if not fine:
            problems.append(f"clip {clip.id} {Path(clip.source_path).name}: {clip.state}: {clip.error}")
        elif frames is not None and clip.state == "ready" and clip.frames != frames:
            problems.append(f"clip {clip.id} {Path(clip.source_path).name}: {clip.frames} frames")
    for job in jobs.list_jobs(conn, ["failed", "cancelled"]):
        problems.append(f"job {job.id} {job.kind} {job.state}: {job.error}")
    return states, problems


def job_times(conn, started_wall: float, ended_wall: float) -> dict[str, float | list[float]]:
    rows = conn.execute("SELECT started_at, finished_at FROM jobs WHERE kind = ? AND finished_at IS NOT"
                        " NULL AND started_at IS NOT NULL", (clips.INGEST_KIND,)).fetchall()
    if not rows:
        return {"pickup": 0.0, "span": 0.0, "tail": 0.0, "jobs": []}
    first = min(r["started_at"] for r in rows)
    last = max(r["finished_at"] for r in rows)
    return {"pickup": first - started_wall, "span": last - first, "tail": ended_wall - last,
            "jobs": [r["finished_at"] - r["started_at"] for r in rows]}


def time_lorad(raw_dir: Path, root: Path, n: int, profile: str = PROFILE) -> LoradRun:
    ws = workspace.init(root)
    conn = ws.connect()
    dataset = datasets.create(conn, "bench", profile)
    try:
        startup = start_daemon(ws)
        started_wall, t0 = time.time(), time.perf_counter()
        report = clips.add(conn, dataset, [raw_dir], media=profiles.get(profile).media)
        daemon.nudge(ws)  # as `lorad clips add` does
        if len(report.queued) != n:
            raise RuntimeError(f"clips.add queued {len(report.queued)} files, expected {n}")
        wait_idle(conn, timeout=120 + 60 * n)
        seconds, ended_wall = time.perf_counter() - t0, time.time()
    finally:
        daemon.stop(ws)
    times = job_times(conn, started_wall, ended_wall)
    states, problems = clip_problems(conn, dataset)
    scores = [c.analysis["score"] for c in clips.list_clips(conn, dataset.id)
              if c.analysis and "score" in c.analysis]
    conn.close()
    return LoradRun(seconds, startup, times["pickup"], times["jobs"], times["span"], times["tail"],
                    states, problems, scores)


# ---- (b) baseline and (c) floor ---------------------------------------------------------------

def time_baseline(paths: list[Path], out_dir: Path) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for path in paths:
        run_ffmpeg(["-i", str(path), "-vf", BASELINE_VF, "-frames:v", "41", "-c:v", "libx264",
                    "-crf", "18", "-preset", "fast", "-pix_fmt", "yuv420p", "-an",
                    str(out_dir / f"{path.stem}.mp4")])
    return time.perf_counter() - t0


def time_floor(paths: list[Path], windows: dict[Path, float]) -> float:
    t0 = time.perf_counter()
    for path in paths:
        run_ffmpeg(["-t", f"{windows[path]:.3f}", "-i", str(path), "-an", "-f", "null", "-"])
    return time.perf_counter() - t0


# ---- optional: lorad's steps one by one -------------------------------------------------------

def time_phases(paths: list[Path], out_dir: Path) -> dict[str, float]:
    """Sum over clips of each ingest step run in this process, sequentially (no daemon)."""
    profile = profiles.get(PROFILE)
    totals = dict.fromkeys(("hash", "probe+plan", "convert (1 ffmpeg)", "analyse"), 0.0)
    for path in paths:
        totals["hash"] += _lap(lambda p=path: ingest.hash_file(p))
        totals["probe+plan"] += _lap(lambda p=path: convert.plan(convert.probe(p), profile))
        probe = convert.probe(path)
        plan = convert.plan(probe, profile)
        out = out_dir / f"{path.stem}.mp4", out_dir / f"{path.stem}.jpg"
        t = time.perf_counter()
        converted = asyncio.run(convert.convert(path, probe, profile, plan, *out))
        totals["convert (1 ffmpeg)"] += time.perf_counter() - t
        totals["analyse"] += _lap(lambda c=converted, s=plan.analysis_size:
                                  analysis.analyse(c.analysis_frames, *s))
    return totals


def _lap(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- running and reporting --------------------------------------------------------------------

def best(repeat: int, fn: Callable[[int], float]) -> float:
    return min(fn(r) for r in range(repeat))


def best_lorad(repeat: int, raw_dir: Path, work: Path, n: int, profile: str = PROFILE) -> LoradRun:
    runs = [time_lorad(raw_dir, work / f"workspace-{r}", n, profile) for r in range(repeat)]
    return min(runs, key=lambda run: run.seconds)


def machine_info() -> list[str]:
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    return [f"machine: {cpus} CPUs ({usable} usable), {platform.machine()}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()} ({sys.executable})",
            f"ffmpeg:  {ffmpeg_version()}"]


def table(n: int, lorad_s: float, baseline_s: float, floor_s: float) -> list[str]:
    lines = [f"{'':14}{'total s':>10}{'per clip ms':>14}{'lorad/this':>12}"]
    for label, seconds in (("(a) lorad", lorad_s), ("(b) baseline", baseline_s), ("(c) floor", floor_s)):
        lines.append(f"{label:14}{seconds:>10.2f}{seconds / n * 1000:>14.0f}{lorad_s / seconds:>12.2f}")
    return lines


def lorad_details(run: LoradRun, ws_cfg: dict[str, int]) -> list[str]:
    jobs_s = run.job_seconds
    mean = sum(jobs_s) / len(jobs_s) if jobs_s else 0.0
    parallel = sum(jobs_s) / run.span if run.span else 0.0
    states = ", ".join(f"{k} {v}" for k, v in sorted(run.states.items()))
    return [
        f"lorad detail (best run): daemon start-up {run.startup:.2f} s before the clock (not timed);",
        f"  queue pick-up {run.pickup:.2f} s after clips.add (daemon poll_interval"
        f" {ws_cfg['poll_interval']} s), jobs busy {run.span:.2f} s, done-detect tail {run.tail:.2f} s;",
        f"  {len(jobs_s)} ingest jobs, mean {mean:.2f} s, min {min(jobs_s, default=0):.2f} s,"
        f" max {max(jobs_s, default=0):.2f} s, {parallel:.2f} running on average"
        f" (limits: max_concurrent {ws_cfg['max_concurrent']}, clip.ingest {ingest.CORES});",
        f"  clip states: {states}",
    ]


def phase_lines(phases: dict[str, float], n: int, baseline_s: float) -> list[str]:
    lines = ["lorad steps in process, sequential, no daemon (sum over clips):"]
    for name, seconds in phases.items():
        lines.append(f"  {name:22}{seconds:>8.2f} s{seconds / n * 1000:>8.0f} ms/clip")
    total = sum(phases.values())
    lines.append(f"  {'total':22}{total:>8.2f} s{total / n * 1000:>8.0f} ms/clip"
                 f"   (baseline ffmpeg {baseline_s / n * 1000:.0f} ms/clip)")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12, help="raw clips to make (default 12)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement; best kept")
    parser.add_argument("--phases", action="store_true", help="also time lorad's steps one by one")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.repeat < 1:
        parser.error("--clips and --repeat must be at least 1")
    return args


def run(args: argparse.Namespace, work: Path) -> list[str]:
    n = args.clips
    print(f"making {n} raw clips in {work} (not timed)", flush=True)
    paths = generate_clips(work / "raw clips", n)
    windows = read_windows(paths)
    print("timing (a) lorad", flush=True)
    lorad_run = best_lorad(args.repeat, work / "raw clips", work, n)
    print("timing (b) baseline", flush=True)
    baseline_s = best(args.repeat, lambda r: time_baseline(paths, work / f"baseline-{r}"))
    print("timing (c) floor", flush=True)
    floor_s = best(args.repeat, lambda r: time_floor(paths, windows))
    profile = profiles.get(PROFILE)
    ws_cfg = workspace.Workspace(work / "workspace-0").config()["daemon"]
    spread = durations(n)
    lines = [
        "",
        f"lorad ingest benchmark: {n} clips {WIDTH}x{HEIGHT} {RATE} fps H.264 ~15 Mbit/s + AAC,"
        f" {spread[0]:.1f}-{spread[-1]:.1f} s -> {PROFILE} ({profile.summary()})",
        *machine_info(),
        f"read window (floor -t, from convert.plan):"
        f" {min(windows.values()):.3f}-{max(windows.values()):.3f} s;"
        f" best of {args.repeat} run(s); warm page cache",
        "",
        *table(n, lorad_run.seconds, baseline_s, floor_s),
        "",
        *lorad_details(lorad_run, ws_cfg),
    ]
    lines += problem_lines(lorad_run.problems)
    if args.phases:
        print("timing lorad steps one by one", flush=True)
        lines += ["", *phase_lines(time_phases(paths, work / "phases"), n, baseline_s)]
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_in_tempdir(run, parse_args(argv), "lorad-bench-")


if __name__ == "__main__":
    sys.exit(main())
