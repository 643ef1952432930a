"""Benchmark: `lorad captions draft` for N clips through the real daemon against the loopback fal
double, at realistic, unscaled latencies (issue 16).

Run by hand (not part of the tests):
    .venv/bin/python bench/draft_captions.py [--clips 200] [--queue-seconds 1] [--run-seconds 3]
                                             [--cap 8] [--keep]

What runs: a fresh workspace with lorad's default configuration (only [daemon.concurrency]
"gen.run" when --cap differs from gen_job.MAX_IN_FLIGHT, and [generations] poll_seconds /
poll_max_seconds when --poll-seconds / --poll-max differ from lorad's 2 s / 10 s); a video
dataset (profile wan21-t2v-480p-portrait, a trigger, a template and a banned word, so the prompt
carries rules) of --clips approved clips: one real 480x848 16 fps mp4 of 41 frames made by ffmpeg,
copied per clip with distinct trailing bytes (an mp4 reads the same with bytes after its end; the
same bytes would be uploaded once and shared, as they should), inserted with their ingest jobs
deleted, as tests/test_drafts.py does. Then `drafting.plan` + `drafting.submit` (what
`lorad captions draft DATASET --yes` runs) queue one gemini-flash request per clip
(openrouter/router/video), and the real daemon (`python -m lorad -w WS daemon run`, a
subprocess, started and idle before the submit) works the `gen.run` jobs: sha256 of the clip,
a storage token and the upload to fal's CDN, the submit, status polls from `poll_seconds`
growing x1.5 up to `poll_max_seconds`, the result, the shaped caption written as a `draft:`
caption version in the job's success transaction, the cost booked. The fal queue is
tests/support/fal_double.py on 127.0.0.1, in this process.

Latencies: a caption request from a vision model waits about 0.5-2 s in fal's queue and runs
about 2-4 s; each request gets --queue-seconds then --run-seconds (fixed, so the bound below is
exact). The double is made time-driven (queue_polls = run_polls = 0); it would start a run only
at the status poll that sees the queue time over, so the benchmark backdates that start to when
the queue time ended, as on fal where a runner picks the request up by itself. So every request
is COMPLETED exactly queue + run seconds after fal accepted it.

Measured, from just before `drafting.submit` until every draft request is completed, failed or
cancelled (the store polled every --look s):
- wall time, against the lower bound set by the concurrency cap. A `gen.run` job holds one of the
  cap's slots from its claim to its end, and no request can finish sooner than queue + run
  seconds after its submit, so with N requests and a cap of C at least ceil(N / C) rounds of
  C requests run one after another: bound = ceil(N / C) * (queue + run). (Uploads, the submit,
  the result and the write only add to it.) Printed too: the "schedule bound", the same with
  each request taking until the first status poll at or after queue + run (polls at 0, p,
  p + 1.5p, ... capped at poll_max: what lorad's poll schedule lets it see at best), which
  splits the excess into what the schedule costs and what the daemon's own work costs.
- requests per caption: every HTTP request the double received (storage tokens, uploads,
  submits, status polls, results, cancels, file downloads) / captions written, by kind, against
  what one caption needs (one upload, one submit, one result, the schedule's polls, and one
  storage token for the whole run: a token is good for an hour).
- daemon CPU per caption: utime + stime of the daemon process from /proc/<pid>/stat (its own
  threads; child processes apart), divided by captions written; the idle rate of the started
  daemon with nothing to do is measured first, so the part that is the daemon's timers (claim
  loop, heartbeats, lease renewals) can be told from the per-caption work.
- correctness: every request completed, exactly one draft caption version per clip (source
  draft:gemini-flash, the clip's current caption), accepted submits == clips, uploads == clips,
  one ledger entry per caption. Anything else is listed under PROBLEMS and the benchmark exits 1.
Below the table: the phases of a request (wait for a slot, upload + submit, on fal plus the poll
overshoot, result + write), in-flight peak and mean, DB row updates per caption, the double's CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

import generations as genbench  # noqa: E402  bench/generations.py: daemon, /proc and machine helpers
from benchrun import problem_lines, run_in_tempdir  # noqa: E402
from fal_double import ROUTER_VIDEO, Latency, fal_double  # noqa: E402
from media_factory import make_video  # noqa: E402

from lorad.captions import versions  # noqa: E402
from lorad.core import daemon, workspace  # noqa: E402
from lorad.core.store import transaction  # noqa: E402
from lorad.generation import drafting, gen_job, generations  # noqa: E402
from lorad.media import clips, datasets  # noqa: E402

DATASET, PROFILE, TRIGGER = "truck", "wan21-t2v-480p-portrait", "TRUCKUGC"
CAPTIONER = "gemini-flash"
KINDS = ("token", "upload", "submit", "status", "result", "cancel", "download")


@dataclass
class Result:
    n: int  # captions asked for (clips)
    wall: float
    startup: float
    idle_cpu_rate: float
    cpu: genbench.Cpu
    bench_cpu: float
    peak_rss_mb: float
    requests: dict[str, int]
    http_errors: int
    submits: int
    uploads: int
    statuses: dict[str, int]
    drafted: int  # clips whose current caption is the one draft version
    phases: dict[str, float]
    peak_inflight: int
    mean_inflight: float
    db_updates: int
    retries: int
    clip_bytes: int
    problems: list[str] = field(default_factory=list)

    @property
    def captions(self) -> int:
        return self.drafted


# ---- the model of lorad's poll schedule -------------------------------------------------------

def seen_after(latency: float, first: float, cap: float) -> tuple[float, int]:
    """(when, polls): the first status poll at or after `latency` s from the submit, and how many
    polls it took, for gen_job._poll's schedule (one right after the submit, then after each
    delay, x POLL_GROWTH up to `cap`), with no overhead."""
    t, delay, polls = 0.0, first, 1
    while t < latency:
        t += delay
        delay = min(delay * gen_job.POLL_GROWTH, cap)
        polls += 1
    return t, polls


# ---- setup ------------------------------------------------------------------------------------

def config_text(args: argparse.Namespace) -> str:
    text = ""
    if args.poll_seconds != 2.0 or args.poll_max != 10.0:
        text += (f"[generations]\npoll_seconds = {args.poll_seconds!r}\n"
                 f"poll_max_seconds = {args.poll_max!r}\n")
    if args.cap != gen_job.MAX_IN_FLIGHT:
        text += f'\n[daemon.concurrency]\n"gen.run" = {args.cap}\n'
    return text


def clip_dataset(conn, work: Path, n: int) -> tuple[datasets.Dataset, int]:
    """A video dataset of `n` approved clips, each a copy of one real mp4 with its own bytes."""
    d = datasets.create(conn, DATASET, PROFILE, trigger=TRIGGER)
    datasets.change_rules(conn, d.id, datasets.RulesChange(
        rules={"template": "[scene], [camera motion], [lighting]"}, ban=["beautiful"]))
    source = make_video(work / "shot.mp4", size="480x848", fps=16, seconds=41 / 16,
                        source="testsrc2", audio=False)
    data = source.read_bytes()
    folder = work / "clips"
    folder.mkdir()
    with transaction(conn):
        for i in range(n):
            copy = folder / f"clip_{i:04d}.mp4"
            copy.write_bytes(data + str(copy).encode())
            clip_id = clips.insert(conn, d.id, str(copy), None, size=len(data), mtime=0,
                                   now=time.time())
            conn.execute("UPDATE clips SET state = 'approved', media_path = ?, frames = 41,"
                         " fps = 16, width = 480, height = 848, job_id = NULL WHERE id = ?",
                         (str(copy), clip_id))
        conn.execute("DELETE FROM jobs WHERE kind = 'clip.ingest'")  # processed already
    return datasets.get(conn, DATASET), len(data)


def time_driven(double, latency: Latency) -> None:
    """Every request queues, then runs, for fixed times; its run starts when its queue time
    ends, not at the status poll that notices (see the docstring)."""
    double.latency = latency
    advance = double._advance

    def backdated_advance(job):
        queued_since = job.since if job.state == "IN_QUEUE" else None
        advance(job)
        if queued_since is not None and job.state == "IN_PROGRESS":
            job.since = queued_since + job.latency.queue_seconds
            advance(job)

    double._advance = backdated_advance  # called as self._advance under double.lock


def classify(path: str, method: str) -> str:
    bare = path.split("?", 1)[0]
    if method == "POST" and bare == "/storage/auth/token":
        return "token"
    if method == "POST" and bare == "/files/upload":
        return "upload"
    if method == "POST":
        return "submit"
    if bare.startswith("/files/"):
        return "download"
    if method == "PUT":
        return "cancel"
    if bare.endswith("/status"):
        return "status"
    return "result"


def wait_done(conn, ids: list[int], proc, timeout: float, look: float) -> None:
    marks = ",".join("?" * len(generations.DONE))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = conn.execute(f"SELECT COUNT(*) FROM generations WHERE clip_id IS NOT NULL AND"
                            f" status IN ({marks})", generations.DONE).fetchone()[0]
        if done >= len(ids):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited (code {proc.returncode}) with"
                               f" {done}/{len(ids)} done")
        time.sleep(look)
    raise RuntimeError(f"draft requests still out after {timeout:.0f} s")


def phases(conn, t0_wall: float, latency: float) -> dict[str, float]:
    """Mean seconds per request of each phase, from the store's timestamps (wall clock)."""
    rows = conn.execute(
        "SELECT j.started_at, j.finished_at, g.submitted_at, g.finished_at AS gen_finished"
        " FROM generations g JOIN jobs j ON j.id = g.job_id WHERE g.clip_id IS NOT NULL AND"
        " j.started_at IS NOT NULL AND j.finished_at IS NOT NULL AND g.submitted_at IS NOT NULL"
        " AND g.finished_at IS NOT NULL").fetchall()
    if not rows:
        return {}
    n = len(rows)

    def mean(fn) -> float:
        return sum(fn(r) for r in rows) / n

    return {
        "slot wait": mean(lambda r: r["started_at"] - t0_wall),
        "claim to submitted": mean(lambda r: r["submitted_at"] - r["started_at"]),
        "submitted to recorded": mean(lambda r: r["gen_finished"] - r["submitted_at"]),
        "overshoot": mean(lambda r: r["gen_finished"] - r["submitted_at"] - latency),
        "slot held": mean(lambda r: r["finished_at"] - r["started_at"]),
    }


# ---- the run ----------------------------------------------------------------------------------

def run_drafts(args: argparse.Namespace, work: Path) -> Result:
    print(f"making {args.clips} clips ...", flush=True)
    ws = workspace.init(work / "ws")
    ws.config_path.write_text(config_text(args))
    conn = ws.connect()
    conn.executescript(genbench.COUNTERS)
    d, clip_bytes = clip_dataset(conn, work, args.clips)
    p = drafting.plan(conn, d, "video", ws.config()["drafts"], model=CAPTIONER)
    if len(p.clip_ids) != args.clips:
        raise RuntimeError(f"the plan drafts {len(p.clip_ids)} clips, not {args.clips}")
    latency = args.queue_seconds + args.run_seconds
    with fal_double() as double:
        time_driven(double, Latency(queue_polls=0, run_polls=0, queue_seconds=args.queue_seconds,
                                    run_seconds=args.run_seconds))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAL_")}
        env.update(FAL_KEY=double.key, FAL_QUEUE_URL=double.url,
                   PYTHONPATH=os.pathsep.join(x for x in (str(ROOT), os.environ.get("PYTHONPATH"))
                                              if x))
        t_start = time.perf_counter()
        proc = genbench.start_daemon(ws, env, work / "daemon.out")
        try:
            startup = time.perf_counter() - t_start
            time.sleep(0.5)  # let start-up work (reconcile, first claims) settle
            idle0, t_idle = genbench.proc_cpu(proc.pid), time.perf_counter()
            time.sleep(args.idle)
            idle_rate = (genbench.proc_cpu(proc.pid).own - idle0.own) / (
                time.perf_counter() - t_idle)
            print(f"drafting {args.clips} captions ...", flush=True)
            cpu0, bench0 = genbench.proc_cpu(proc.pid), genbench.self_cpu()
            t0, t0_wall = time.perf_counter(), time.time()
            ids = drafting.submit(conn, p)
            daemon.nudge(ws)  # as `lorad captions draft --yes` does
            bound = math.ceil(args.clips / args.cap) * latency
            wait_done(conn, ids, proc, timeout=args.timeout or 4 * bound + 120, look=args.look)
            wall = time.perf_counter() - t0
            cpu1, bench1 = genbench.proc_cpu(proc.pid), genbench.self_cpu()
            peak_rss = genbench.proc_kb(proc.pid, "VmHWM") / 1024
        finally:
            genbench.stop_daemon(proc)
        with double.lock:
            recorded = list(double.requests)
            submits = double.submits[ROUTER_VIDEO]
            uploads = len(double.uploads)
    requests: dict[str, int] = {}
    for r in recorded:
        kind = classify(r.path, r.method)
        requests[kind] = requests.get(kind, 0) + 1
    http_errors = sum(1 for r in recorded if not 200 <= r.status < 300)

    problems = []
    gens = [g for g in generations.list_all(conn, drafts=True) if g.clip_id is not None]
    statuses: dict[str, int] = {}
    for g in gens:
        statuses[g.status] = statuses.get(g.status, 0) + 1
        if g.status != "completed":
            problems.append(f"draft request {g.id} (clip {g.clip_id}): {g.status}: {g.error}")
        elif not str(g.checks.get("draft", "")).startswith("drafted"):
            problems.append(f"draft request {g.id} (clip {g.clip_id}): {g.checks.get('draft')}")
    source = versions.draft_source(CAPTIONER)
    drafted = 0
    for clip_id in p.clip_ids:
        history = versions.history(conn, clip_id)
        ours = [v for v in history if v.source == source]
        if len(ours) == 1 and history[-1].id == ours[0].id and ours[0].text.startswith(TRIGGER):
            drafted += 1
        else:
            problems.append(f"clip {clip_id}: {len(ours)} draft version(s) of {len(history)}"
                            f" (current: {history[-1].source if history else 'none'})")
    if submits != args.clips:
        problems.append(f"{submits} submits accepted by the double for {args.clips} clips")
    if uploads != args.clips:
        problems.append(f"{uploads} uploads for {args.clips} clips (each has its own bytes)")
    booked = conn.execute("SELECT COUNT(*) FROM cost_entries WHERE kind = 'caption_draft'"
                          ).fetchone()[0]
    if booked != args.clips:
        problems.append(f"{booked} ledger entries for {args.clips} captions")
    if http_errors:
        problems.append(f"{http_errors} non-2xx answers from the double")
    retries = conn.execute("SELECT COALESCE(SUM(j.attempts - 1), 0) FROM generations g JOIN jobs j"
                           " ON j.id = g.job_id WHERE g.clip_id IS NOT NULL").fetchone()[0]
    db_updates = conn.execute("SELECT SUM(n) FROM bench_updates").fetchone()[0]
    peak_inflight, mean_inflight = genbench.inflight_profile(conn)
    spans = phases(conn, t0_wall, latency)
    conn.close()
    cpu = genbench.Cpu(cpu1.own - cpu0.own, cpu1.children - cpu0.children, cpu1.main - cpu0.main)
    return Result(args.clips, wall, startup, idle_rate, cpu, bench1 - bench0, peak_rss, requests,
                  http_errors, submits, uploads, statuses, drafted, spans, peak_inflight,
                  mean_inflight, db_updates, retries, clip_bytes, problems)


# ---- reporting --------------------------------------------------------------------------------

def report(args: argparse.Namespace, r: Result) -> list[str]:
    latency = args.queue_seconds + args.run_seconds
    rounds = math.ceil(args.clips / args.cap)
    bound = rounds * latency
    seen, model_polls = seen_after(latency, args.poll_seconds, args.poll_max)
    schedule_bound = rounds * seen
    per = max(1, r.captions)
    total = sum(r.requests.values())
    needed = 3 + model_polls + 1 / per  # upload, submit, result, polls; one token for the run
    work = r.cpu.own - r.idle_cpu_rate * r.wall
    cap_label = f"{args.cap}" + (" (default)" if args.cap == gen_job.MAX_IN_FLIGHT else "")
    rows = [
        ("captions written", f"{r.captions} of {r.n}"),
        ("wall time", f"{r.wall:.1f} s"),
        ("lower bound ceil(N/cap)*(queue+run)", f"{bound:.1f} s ({rounds} rounds x {latency:g} s)"),
        ("  wall / bound", f"{r.wall / bound:.2f}"),
        ("schedule bound ceil(N/cap)*first poll", f"{schedule_bound:.1f} s ({rounds} x {seen:g} s)"),
        ("  wall / schedule bound", f"{r.wall / schedule_bound:.2f}"),
        ("captions per minute", f"{r.captions / r.wall * 60:.1f}"
                                f" (bound {args.clips / bound * 60:.1f})"),
        ("requests per caption", f"{total / per:.2f} (needed {needed:.2f})"),
        *((f"  {k}", f"{r.requests.get(k, 0) / per:.2f}"
           + (f" (schedule {model_polls})" if k == "status" else "")) for k in KINDS),
        ("daemon CPU", f"{r.cpu.own:.2f} s = event loop {r.cpu.main:.2f} s + other threads"
                       f" {r.cpu.own - r.cpu.main:.2f} s"),
        ("daemon CPU per caption", f"{r.cpu.own / per * 1000:.1f} ms"),
        ("  above idle, per caption", f"{work / per * 1000:.1f} ms (idle"
                                      f" {r.idle_cpu_rate * 1000:.1f} ms/s x {r.wall:.1f} s)"),
        ("  child processes", f"{r.cpu.children:.2f} s"),
        ("daemon peak RSS", f"{r.peak_rss_mb:.1f} MB"),
    ]
    width = max(len(k) for k, _ in rows) + 2
    ph = r.phases
    lines = [
        "",
        f"lorad caption drafts benchmark: {args.clips} clips x {CAPTIONER} ({ROUTER_VIDEO})"
        " through the daemon against the loopback fal double",
        *genbench.machine_info(),
        f"fal latency: queue {args.queue_seconds:g} s + run {args.run_seconds:g} s per request;"
        f" gen.run cap {cap_label}; polls {args.poll_seconds:g} s x{gen_job.POLL_GROWTH:g} to"
        f" {args.poll_max:g} s; clip {r.clip_bytes / 1e6:.2f} MB (480x848, 41 frames)",
        "",
        *(f"{k:<{width}}{v}" for k, v in rows),
        "",
        f"statuses: {', '.join(f'{k} {v}' for k, v in sorted(r.statuses.items()))}; job retries"
        f" {r.retries}; non-2xx answers {r.http_errors}; accepted submits {r.submits}; uploads"
        f" {r.uploads}; daemon start-up {r.startup:.2f} s (not timed)",
    ]
    if ph:
        lines += [
            f"per request (means): slot wait {ph['slot wait']:.2f} s; claim to submitted"
            f" (sha256, token, upload, submit) {ph['claim to submitted'] * 1000:.0f} ms;"
            f" submitted to recorded {ph['submitted to recorded']:.2f} s = fal {latency:g} s +"
            f" the schedule's overshoot {(seen - latency) * 1000:.0f} ms +"
            f" {(ph['overshoot'] - (seen - latency)) * 1000:.0f} ms (late polls, result, write);"
            f" slot held {ph['slot held']:.2f} s",
        ]
    lines += [
        f"in flight: peak {r.peak_inflight}, mean {r.mean_inflight:.1f} of {args.cap}; DB row"
        f" updates (jobs + generations) {r.db_updates / per:.1f}/caption; double + this script"
        f" CPU {r.bench_cpu:.2f} s",
    ]
    lines += problem_lines(r.problems, 40)
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="clips to draft (default 200)")
    parser.add_argument("--queue-seconds", type=float, default=1.0,
                        help="each request's time in fal's queue (default 1.0)")
    parser.add_argument("--run-seconds", type=float, default=3.0,
                        help="each request's run time on fal (default 3.0)")
    parser.add_argument("--cap", type=int, default=gen_job.MAX_IN_FLIGHT,
                        help=f"gen.run concurrency cap (default gen_job.MAX_IN_FLIGHT ="
                             f" {gen_job.MAX_IN_FLIGHT}, lorad's)")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="[generations] poll_seconds (lorad's default 2.0)")
    parser.add_argument("--poll-max", type=float, default=10.0,
                        help="[generations] poll_max_seconds (lorad's default 10.0)")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds to measure idle CPU")
    parser.add_argument("--look", type=float, default=0.05, help="seconds between DB looks")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="0: 4 x the lower bound + 120 s")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.cap < 1 or args.queue_seconds < 0 or args.run_seconds < 0 \
            or args.queue_seconds + args.run_seconds <= 0 or args.poll_seconds <= 0 \
            or args.poll_max <= 0:
        parser.error("--clips and --cap must be at least 1, latencies not negative (their sum"
                     " above 0), poll times above 0")
    return args


def run(args: argparse.Namespace, work: Path) -> list[str]:
    return report(args, run_drafts(args, work))


def main(argv: list[str] | None = None) -> int:
    return run_in_tempdir(run, parse_args(argv), "lorad-bench-drafts-")


if __name__ == "__main__":
    sys.exit(main())
