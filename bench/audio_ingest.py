"""Benchmark: lorad's audio ingest against plain ffmpeg (issue 13, item 8).

Run by hand (not part of the tests):  .venv/bin/python bench/audio_ingest.py [--tracks 20]
[--seconds 180] [--repeat 1] [--keep]

It makes N tracks first (not timed): 3 minutes each, 44.1 kHz stereo, a mix of MP3 (192 kbps),
WAV and FLAC, a chord with noise and a slow swell so the analysis has something to measure.
Then it times, over the same files:

(a) lorad: `clips.add` on the folder of an `ace-step-audio` dataset and the real daemon working
    the queue: hash, probe, the measuring pass (astats, silencedetect, ebur128 over the kept
    240 s window), the converting pass (normalise, resample to 48 kHz, MP3 320 kbps, waveform
    picture) and the writes, with the daemon's own parallelism (one media worker per core). The
    daemon is started before the clock (start-up reported apart).
(b) baseline: one plain `ffmpeg -i IN -ar 48000 -ac 2 -c:a libmp3lame -b:a 320k OUT.mp3` per
    file, sequentially: what a person does by hand, with no measuring, no normalising and no
    waveform.

The target is lorad / baseline <= 1.0 while doing more.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchrun import problem_lines, run_in_tempdir
from ingest import best_lorad

PROFILE = "ace-step-audio"
FORMATS = [("mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]), ("wav", ["-c:a", "pcm_s16le"]),
           ("flac", ["-c:a", "flac"])]


def make_track(path: Path, seconds: float, index: int) -> None:
    base = 110 * (1 + index % 5)
    graph = (f"sine=f={base}:d={seconds}[a];sine=f={base * 1.5:g}:d={seconds}[b];"
             f"anoisesrc=d={seconds}:c=pink:a=0.05[n];[a][b][n]amix=inputs=3,"
             "volume='0.5+0.4*sin(t/7)':eval=frame,aformat=channel_layouts=stereo")
    fmt = FORMATS[index % len(FORMATS)][1]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-filter_complex",
                    graph, "-ar", "44100", *fmt, str(path)], check=True)


def generate(folder: Path, n: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        ext = FORMATS[i % len(FORMATS)][0]
        path = folder / f"track {i:02d}.{ext}"
        make_track(path, seconds, i)
        paths.append(path)
    return paths


def time_baseline(paths: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for path in paths:
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(path),
                        "-ar", "48000", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "320k",
                        str(out / f"{path.stem}.mp3")], check=True)
    return time.perf_counter() - t0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=20)
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--repeat", type=int, default=1, help="keep the best of R runs of each")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p.parse_args(argv)


def run(args: argparse.Namespace, work: Path) -> list[str]:
    n = args.tracks
    print(f"making {n} tracks of {args.seconds:g} s ...", file=sys.stderr)
    paths = generate(work / "tracks", n, args.seconds)
    best = best_lorad(args.repeat, work / "tracks", work, n, PROFILE)
    baseline = min(time_baseline(paths, work / f"plain{r}") for r in range(args.repeat))
    jobs = sorted(best.job_seconds)
    median = jobs[len(jobs) // 2] if jobs else 0.0
    cores = len(__import__("os").sched_getaffinity(0))
    lines = [
        f"lorad audio ingest benchmark: {n} tracks x {args.seconds:g} s (44.1 kHz stereo; MP3, "
        "WAV, FLAC mixed)",
        f"machine: {cores} usable CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}",
        "",
        "| way | what it does | wall | per track | ratio to baseline |",
        "|---|---|---|---|---|",
        f"| lorad (daemon, {cores} media workers) | hash, probe, measure (astats, silencedetect, "
        f"ebur128), trim to 240 s, normalise to -1 dBFS, 48 kHz, MP3 320k, waveform, store | "
        f"{best.seconds:.2f} s | {best.seconds / n * 1000:.0f} ms | "
        f"{best.seconds / baseline:.2f} |",
        f"| baseline (plain ffmpeg, one after another) | resample to 48 kHz, MP3 320k | "
        f"{baseline:.2f} s | {baseline / n * 1000:.0f} ms | 1.00 |",
        "",
        f"lorad: daemon start-up {best.startup:.2f} s (not timed); one track's job: median "
        f"{median * 1000:.0f} ms of work each (two ffmpeg passes over the kept window, 240 s "
        f"at most, of {args.seconds:g} s); quality scores {min(best.scores, default=0)}-"
        f"{max(best.scores, default=0)}",
    ]
    return lines + problem_lines(best.problems, 10)


def main(argv: list[str] | None = None) -> int:
    return run_in_tempdir(run, parse_args(argv), "lorad-audio-bench-")


if __name__ == "__main__":
    sys.exit(main())
