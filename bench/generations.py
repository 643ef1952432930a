"""Benchmark: N generations through the real daemon against the loopback fal queue double.

Run by hand (not part of the tests):
    .venv/bin/python bench/generations.py [--count 200] [--scale 0.02] [--inflight 8,32] [--keep]

What runs: a fresh workspace per configuration, one LoRA (`loras.add`, expert "high"), a sweep of
--count generations of fal-ai/wan/v2.2-a14b/text-to-video/lora with distinct seeds and
num_frames 17 (the double's mp4 has 17 frames), submitted in one go (`plan_sweep` +
`submit_sweep`), and the real daemon (`python -m lorad -w WS daemon run`, a subprocess) working
the `gen.run` jobs: submit, status polls growing x1.5 from `poll_seconds` to `poll_max_seconds`,
result, download, ffprobe/ffmpeg checks and a filmstrip. The fal queue is tests/support/fal_double.py
on 127.0.0.1, in this process.

Latencies are realistic, then scaled. A real Wan 2.2 LoRA generation on fal waits about 0-60 s in
fal's queue and runs about 60-180 s; each generation draws U(0, 60) s queued and U(60, 180) s
running (fixed --seed, keyed by the generation's seed, so every configuration sees the same
latency for the same generation). All of these times, and the daemon's `poll_seconds` /
`poll_max_seconds` (lorad's defaults 2 s / 10 s), are multiplied by --scale, so the polling
schedule keeps its shape and requests per generation are what an unscaled run would send (the
"model" figure is that count computed from the unscaled schedule, without any overhead). The
double is made time-driven (queue_polls = run_polls = 0); it would start a request's run only at
the status poll that sees its queue time over, so the benchmark backdates that start to when the
queue time ended, as on fal where a runner picks the request up by itself.

What is not scaled: the daemon's own timers (claim loop `poll_interval` 0.05 s as in the tests'
FAST_CONFIG, a heartbeat per running job every 1 s, lease renewal every lease_seconds/3, the 0.2 s
progress-write throttle) and the per-output work (ffprobe, ffmpeg checks, filmstrip). So wall
time is the scaled latencies plus real overheads, and daemon CPU is the per-request work plus a
compressed share of timer work; the idle rate (CPU of the started daemon with nothing to do) is
printed so the timer part can be judged.

Measured per configuration (in-flight caps from --inflight; the first is the baseline, measured
in the same run, and a cap equal to gen_job.MAX_IN_FLIGHT is the default config, no override):
wall time from submit_sweep until every generation is completed/failed/cancelled (DB polled every
--look s), generations per minute, HTTP requests the double saw per generation (all, and status
polls), daemon CPU from /proc/<pid>/stat (utime+stime of the daemon itself; ffprobe/ffmpeg it ran
and waited for are cutime+cstime, shown apart), from just before submitting to just before
SIGTERM, peak RSS (VmHWM) of the daemon process, failures. The lower bound of wall time is
max(sum of scaled latencies / in-flight cap, longest scaled latency).

Columns: "bound s" that lower bound; "req/gen" every HTTP request the double saw (submit, status,
result, download) / N; "polls/gen" status polls / N; "CPU s" the daemon process itself (event loop
and worker threads), "ffmpeg s" the ffprobe/ffmpeg processes it ran for the output checks and
filmstrips. Below the table: ratios against the first configuration, then per configuration the
request mix with the model's polls/gen, in-flight peak and mean, the mean wait for an in-flight
slot, the mean lag from fal finishing to the generation recorded, how late status polls come
against their schedule, the daemon's CPU split (event loop thread / other threads) and idle rate,
live ffprobe/ffmpeg processes, and jobs + generations row updates per generation (counted by
triggers this benchmark adds to its temp database).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from benchrun import problem_lines, run_in_tempdir  # noqa: E402
from fal_double import Latency, fal_double  # noqa: E402

from lorad.core import config, daemon, workspace  # noqa: E402
from lorad.generation import gen_job, generations, loras  # noqa: E402

ENDPOINT = "fal-ai/wan/v2.2-a14b/text-to-video/lora"
PROMPT = "TRK, a parked truck at golden hour, phone camera"
LORA = "bench-truck"
FIRST_SEED = 1000
TICK = os.sysconf("SC_CLK_TCK")
FAST_CONFIG = """\
[daemon]
poll_interval = 0.05
retry_base_seconds = 0.05
retry_max_seconds = 0.2
lease_seconds = 6
"""  # as tests/conftest.py FAST_CONFIG


@dataclass
class Cpu:
    own: float  # utime + stime of the process, seconds
    children: float  # child processes: waited-for (cutime + cstime) and live ones (the media
    # pool's workers, with the ffprobe/ffmpeg they ran)
    main: float  # utime + stime of the main thread (the event loop)


@dataclass
class Result:
    label: str
    inflight: int
    n: int
    wall: float
    bound: float
    startup: float
    idle_cpu_rate: float  # daemon CPU s per wall s while idle
    cpu: Cpu
    peak_rss_mb: float
    idle_rss_mb: float
    requests: dict[str, int]
    http_errors: int
    bench_cpu: float  # this process (the double's server threads + DB polling)
    statuses: dict[str, int]
    checks_failed: int
    retries: int
    db_updates: int
    slot_wait: float  # mean created -> submitted to fal (waiting for an in-flight slot)
    lag: float  # mean submitted -> finished, minus the request's latency on fal
    peak_inflight: int
    mean_inflight: float
    poll_late: float  # mean status poll interval minus the scheduled delay, s
    threads: int  # daemon threads at the end (event loop + executor workers + ...)
    children_peak: int  # ffprobe/ffmpeg processes alive at once (sampled)
    children_mean: float
    problems: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.n - self.statuses.get("completed", 0)


# ---- /proc readings ---------------------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree_cpu(pid: int) -> float:
    """utime+stime+cutime+cstime of a live process and, recursively, its live children (the
    media pool's workers live as long as the daemon, so their ffmpeg time is not yet in the
    daemon's cutime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(x) for x in fields[11:15]) / TICK
    return total + sum(tree_cpu(c) for c in children_of(pid))


def proc_cpu(pid: int) -> Cpu:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    main = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    live = sum(tree_cpu(c) for c in children_of(pid))
    return Cpu((utime + stime) / TICK, (cutime + cstime) / TICK + live,
               (int(main[11]) + int(main[12])) / TICK)


def proc_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return 0.0


def child_count(pid: int) -> int:
    n = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            n += len((task / "children").read_text().split())
        except OSError:
            pass
    return n


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- latencies and the polling model ----------------------------------------------------------

def draw_latencies(n: int, seed: int, queue: tuple[float, float],
                   run: tuple[float, float]) -> dict[int, tuple[float, float]]:
    """Unscaled (queue s, run s) per generation seed."""
    rng = random.Random(seed)
    return {FIRST_SEED + i: (rng.uniform(*queue), rng.uniform(*run)) for i in range(n)}


def model_polls(latency: float, first: float, cap: float) -> int:
    """Status polls gen_job._poll sends for a request done `latency` s after its submit, with
    no overhead: one right after the submit, then after each delay (x1.5 up to the cap), the last
    one seeing COMPLETED."""
    t, delay, polls = 0.0, first, 1
    while t < latency:
        t += delay
        delay = min(delay * gen_job.POLL_GROWTH, cap)
        polls += 1
    return polls


def shape_double(double, latencies: dict[int, tuple[float, float]], scale: float) -> None:
    """Give each request its own scaled latency (by the seed in its body), and start its run when
    its queue time ends rather than at the poll that notices."""
    submit, advance = double._submit, double._advance

    def timed_submit(endpoint_id, body):
        status, payload = submit(endpoint_id, body)
        if status == 200:
            q, r = latencies[body["seed"]]
            double.jobs[payload["request_id"]].latency = Latency(
                queue_polls=0, run_polls=0, queue_seconds=q * scale, run_seconds=r * scale)
        return status, payload

    def backdated_advance(job):
        queued_since = job.since if job.state == "IN_QUEUE" else None
        advance(job)
        if queued_since is not None and job.state == "IN_PROGRESS":
            job.since = queued_since + job.latency.queue_seconds
            advance(job)

    double._submit = timed_submit  # both are called as self._x under double.lock
    double._advance = backdated_advance


def classify(path: str, method: str) -> str:
    bare = path.split("?", 1)[0]
    if method == "POST":
        return "submit"
    if bare.startswith("/files/"):
        return "download"
    if method == "PUT":
        return "cancel"
    if bare.endswith("/status"):
        return "status"
    return "result"


def lateness(recorded, first: float, cap: float) -> float:
    """Mean of (time between two status polls of a request) - (the delay gen_jobs scheduled)."""
    times: dict[str, list[float]] = {}
    for r in recorded:
        if classify(r.path, r.method) == "status":
            times.setdefault(r.path.split("?", 1)[0], []).append(r.t)
    late = []
    for ts in times.values():
        delay = first
        for a, b in zip(ts, ts[1:], strict=False):
            late.append(b - a - delay)
            delay = min(delay * gen_job.POLL_GROWTH, cap)
    return sum(late) / len(late) if late else 0.0


# ---- one configuration ------------------------------------------------------------------------

def config_text(scale: float, inflight: int, poll_seconds: float, poll_max: float) -> str:
    text = FAST_CONFIG + (f"\n[generations]\npoll_seconds = {poll_seconds * scale!r}\n"
                          f"poll_max_seconds = {poll_max * scale!r}\n")
    if inflight != gen_job.MAX_IN_FLIGHT:
        text += f'\n[daemon.concurrency]\n"gen.run" = {inflight}\n'
    return text


COUNTERS = """
CREATE TABLE bench_updates (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO bench_updates VALUES ('jobs', 0), ('generations', 0);
CREATE TRIGGER bench_jobs_updated AFTER UPDATE ON jobs BEGIN
    UPDATE bench_updates SET n = n + 1 WHERE tbl = 'jobs';
END;
CREATE TRIGGER bench_generations_updated AFTER UPDATE ON generations BEGIN
    UPDATE bench_updates SET n = n + 1 WHERE tbl = 'generations';
END;
"""


def start_daemon(ws: workspace.Workspace, env: dict[str, str], out: Path) -> subprocess.Popen:
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "lorad", "-w", str(ws.root), "daemon", "run"],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                env=env, cwd=ws.root)
    marker = f"daemon pid {proc.pid} started"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ws.log_path.exists() and marker in ws.log_path.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    stop_daemon(proc)
    raise RuntimeError(f"the daemon did not start: {out.read_text(errors='replace')[-2000:]}")


def stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(config.SCHEMA["daemon"]["shutdown_grace_seconds"][1] + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_done(conn, n: int, proc: subprocess.Popen, timeout: float, look: float) -> list[int]:
    """Returns the daemon's live child processes at each look."""
    deadline = time.monotonic() + timeout
    children = []
    while time.monotonic() < deadline:
        children.append(child_count(proc.pid))
        done = conn.execute("SELECT COUNT(*) FROM generations WHERE status IN"
                            " ('completed', 'failed', 'cancelled')").fetchone()[0]
        if done >= n:
            return children
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited (code {proc.returncode}) with {done}/{n} done")
        time.sleep(look)
    raise RuntimeError(f"generations still in flight after {timeout:.0f} s")


def inflight_profile(conn) -> tuple[int, float]:
    rows = conn.execute("SELECT started_at, finished_at FROM jobs WHERE kind = ? AND started_at IS"
                        " NOT NULL AND finished_at IS NOT NULL", (generations.JOB_KIND,)).fetchall()
    if not rows:
        return 0, 0.0
    edges = sorted([(r["started_at"], 1) for r in rows] + [(r["finished_at"], -1) for r in rows],
                   key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _t, step in edges:
        now += step
        peak = max(peak, now)
    span = max(r["finished_at"] for r in rows) - min(r["started_at"] for r in rows)
    busy = sum(r["finished_at"] - r["started_at"] for r in rows)
    return peak, busy / span if span else 0.0


def run_config(args: argparse.Namespace, work: Path, index: int, inflight: int,
               latencies: dict[int, tuple[float, float]]) -> Result:
    n, scale = args.count, args.scale
    label = f"in-flight {inflight}" + (" (default)" if inflight == gen_job.MAX_IN_FLIGHT else "")
    print(f"running {label}: {n} generations", flush=True)
    ws = workspace.init(work / f"ws-{index}")
    ws.config_path.write_text(config_text(scale, inflight, args.poll_seconds, args.poll_max))
    conn = ws.connect()
    conn.executescript(COUNTERS)
    loras.add(conn, LORA, "https://hf.example/x.safetensors", trigger="TRK",
              base_model="wan2.2-t2v-a14b", expert="high")
    extra = {"num_frames": 17}
    plan = generations.plan_sweep(conn, ENDPOINT, lora_names=[LORA], scales=[0.8],
                                  prompts=[PROMPT], seeds=sorted(latencies), extra=extra)
    scaled = [(q + r) * scale for q, r in latencies.values()]
    bound = max(sum(scaled) / inflight, max(scaled))
    with fal_double() as double:
        double.latency = Latency(queue_polls=0, run_polls=0)
        shape_double(double, latencies, scale)
        env = dict(os.environ, FAL_KEY=double.key, FAL_QUEUE_URL=double.url,
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                              if p))
        t_start = time.perf_counter()
        proc = start_daemon(ws, env, work / f"daemon-{index}.out")
        try:
            startup = time.perf_counter() - t_start
            time.sleep(0.5)  # let start-up work (reconcile, first claims) settle
            idle0, t_idle = proc_cpu(proc.pid), time.perf_counter()
            time.sleep(args.idle)
            idle_rate = (proc_cpu(proc.pid).own - idle0.own) / (time.perf_counter() - t_idle)
            idle_rss = proc_kb(proc.pid, "VmRSS") / 1024
            cpu0, bench0 = proc_cpu(proc.pid), self_cpu()
            t0 = time.perf_counter()
            ids = generations.submit_sweep(conn, plan, budget=None)
            daemon.nudge(ws)  # as `lorad gen sweep` does
            children = wait_done(conn, len(ids), proc, timeout=args.timeout or 4 * bound + 120,
                                 look=args.look)
            wall = time.perf_counter() - t0
            cpu1, bench1 = proc_cpu(proc.pid), self_cpu()
            peak_rss = proc_kb(proc.pid, "VmHWM") / 1024
            threads = int(proc_kb(proc.pid, "Threads"))
        finally:
            stop_daemon(proc)
        with double.lock:
            recorded = list(double.requests)
    requests: dict[str, int] = {}
    for r in recorded:
        kind = classify(r.path, r.method)
        requests[kind] = requests.get(kind, 0) + 1
    http_errors = sum(1 for r in recorded if not 200 <= r.status < 300)
    poll_late = lateness(recorded, args.poll_seconds * scale, args.poll_max * scale)
    gens = generations.list_all(conn, sweep_id=plan.sweep_id)
    statuses: dict[str, int] = {}
    for g in gens:
        statuses[g.status] = statuses.get(g.status, 0) + 1
    problems = [f"generation {g.id}: {g.status}: {g.error}" for g in gens if g.status != "completed"]
    checks_failed = sum(1 for g in gens if g.status == "completed" and not g.checks.get("ok"))
    problems += [f"generation {g.id}: checks: {g.checks.get('problems')}" for g in gens
                 if g.status == "completed" and not g.checks.get("ok")]
    rows = conn.execute("SELECT g.seed, g.created_at, g.submitted_at, g.finished_at, j.attempts"
                        " FROM generations g JOIN jobs j ON j.id = g.job_id WHERE g.sweep_id = ?",
                        (plan.sweep_id,)).fetchall()
    done = [r for r in rows if r["submitted_at"] and r["finished_at"]]
    slot_wait = sum(r["submitted_at"] - r["created_at"] for r in done) / max(1, len(done))
    lag = sum(r["finished_at"] - r["submitted_at"] - sum(latencies[r["seed"]]) * scale
              for r in done) / max(1, len(done))
    retries = sum(r["attempts"] - 1 for r in rows)
    db_updates = conn.execute("SELECT SUM(n) FROM bench_updates").fetchone()[0]
    peak_inflight, mean_inflight = inflight_profile(conn)
    conn.close()
    cpu = Cpu(cpu1.own - cpu0.own, cpu1.children - cpu0.children, cpu1.main - cpu0.main)
    return Result(label, inflight, n, wall, bound, startup, idle_rate, cpu, peak_rss, idle_rss,
                  requests, http_errors, bench1 - bench0, statuses, checks_failed, retries,
                  db_updates, slot_wait, lag, peak_inflight, mean_inflight, poll_late, threads,
                  max(children, default=0), sum(children) / max(1, len(children)), problems)


# ---- reporting --------------------------------------------------------------------------------

def machine_info() -> list[str]:
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return [f"machine: {cpus} CPUs ({usable} usable), {platform.machine()}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()} ({sys.executable})",
            f"ffmpeg:  {out.splitlines()[0] if out else 'unknown version'}"]


COLUMNS = [("config", 22, "s"), ("gens", 6, "d"), ("wall s", 9, ".1f"), ("bound s", 9, ".1f"),
           ("gens/min", 10, ".1f"), ("req/gen", 9, ".2f"), ("polls/gen", 11, ".2f"),
           ("CPU s", 8, ".2f"), ("CPU ms/gen", 12, ".1f"), ("ffmpeg s", 10, ".2f"),
           ("RSS MB", 8, ".1f"), ("failed", 8, "d")]


def values(r: Result) -> list:
    total = sum(r.requests.values())
    return [r.label, r.n, r.wall, r.bound, r.n / r.wall * 60, total / r.n,
            r.requests.get("status", 0) / r.n, r.cpu.own, r.cpu.own / r.n * 1000, r.cpu.children,
            r.peak_rss_mb, r.failures]


def table(results: list[Result]) -> list[str]:
    head = "".join(f"{name:<{w}}" if i == 0 else f"{name:>{w}}" for i, (name, w, _f)
                   in enumerate(COLUMNS))
    lines = [head]
    for r in results:
        lines.append("".join(f"{v:<{w}{f}}" if i == 0 else f"{v:>{w}{f}}" for i, (v, (_n, w, f))
                             in enumerate(zip(values(r), COLUMNS, strict=True))))
    return lines


def ratios(results: list[Result]) -> list[str]:
    base = results[0]
    keys = [("wall", lambda r: r.wall), ("gens/min", lambda r: r.n / r.wall),
            ("req/gen", lambda r: sum(r.requests.values()) / r.n),
            ("CPU s", lambda r: r.cpu.own), ("CPU ms/gen", lambda r: r.cpu.own / r.n),
            ("ffmpeg s", lambda r: r.cpu.children), ("RSS", lambda r: r.peak_rss_mb)]
    lines = [f"ratios vs {base.label} (this/baseline):",
             f"{'config':22}" + "".join(f"{k:>12}" for k, _ in keys)]
    for r in results[1:]:
        cells = "".join(f"{(fn(r) / fn(base) if fn(base) else float('nan')):>12.2f}" for _, fn in keys)
        lines.append(f"{r.label:22}{cells}")
    return lines


def details(r: Result, model: float) -> list[str]:
    req = r.requests
    kinds = ", ".join(f"{k} {req.get(k, 0) / r.n:.2f}" for k in ("submit", "status", "result",
                                                                   "download", "cancel"))
    states = ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items()))
    work = r.cpu.own - r.idle_cpu_rate * r.wall
    polls = req.get("status", 0) / r.n
    note = []
    if polls < 0.9 * model:
        note = [f"  NOTE: {polls:.2f} status polls/gen is under the model's {model:.2f}: polls came"
                f" late (busy CPU or worker threads), which at this --scale stretches the schedule;"
                f" an unscaled run would send about the model's count (try a larger --scale)"]
    return [
        f"{r.label}: start-up {r.startup:.2f} s (not timed); {states}; checks failed"
        f" {r.checks_failed}; job retries {r.retries}; non-2xx answers {r.http_errors}",
        f"  requests/gen: {kinds} (model polls/gen {model:.2f})",
        f"  in flight: peak {r.peak_inflight}, mean {r.mean_inflight:.1f}; wait for a slot"
        f" {r.slot_wait:.1f} s/gen; lag after fal finished {r.lag * 1000:.0f} ms/gen"
        f" (poll overshoot, result, download, checks, filmstrip); wall/bound {r.wall / r.bound:.2f}",
        f"  status polls come {r.poll_late * 1000:.0f} ms later than scheduled on average; daemon"
        f" threads {r.threads}; ffprobe/ffmpeg processes alive: peak {r.children_peak}, mean"
        f" {r.children_mean:.1f}",
        f"  daemon CPU {r.cpu.own:.2f} s = event loop thread {r.cpu.main:.2f} s + worker threads"
        f" {r.cpu.own - r.cpu.main:.2f} s; idle rate {r.idle_cpu_rate * 1000:.1f} ms/s"
        f" (x wall = {r.idle_cpu_rate * r.wall:.2f} s, so {work:.2f} s above idle)",
        f"  child processes (ffprobe/ffmpeg) {r.cpu.children:.2f} s = "
        f"{r.cpu.children / r.n * 1000:.0f} ms/gen; DB row updates {r.db_updates / r.n:.1f}/gen;"
        f" RSS idle {r.idle_rss_mb:.1f} MB, peak {r.peak_rss_mb:.1f} MB; double + this script CPU"
        f" {r.bench_cpu:.2f} s",
        *note,
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="generations per configuration")
    parser.add_argument("--scale", type=float, default=0.02,
                        help="multiplies fal latencies and the poll schedule (default 0.02)")
    parser.add_argument("--inflight", default=f"{gen_job.MAX_IN_FLIGHT},32",
                        help="comma-separated gen.run in-flight caps; the first is the baseline")
    parser.add_argument("--queue", default="0,60", help="unscaled fal queue time range, s")
    parser.add_argument("--run", default="60,180", help="unscaled fal run time range, s")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="unscaled [generations] poll_seconds (lorad's default 2.0)")
    parser.add_argument("--poll-max", type=float, default=10.0,
                        help="unscaled [generations] poll_max_seconds (lorad's default 10.0)")
    parser.add_argument("--seed", type=int, default=1, help="latency draws")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds to measure idle CPU")
    parser.add_argument("--look", type=float, default=0.05, help="seconds between DB looks")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="per configuration; 0: 4 x the lower bound + 120 s")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = parser.parse_args(argv)
    try:
        args.caps = [int(x) for x in args.inflight.split(",") if x.strip()]
        args.queue_range = tuple(float(x) for x in args.queue.split(","))
        args.run_range = tuple(float(x) for x in args.run.split(","))
    except ValueError:
        parser.error("--inflight takes integers, --queue/--run two numbers like 0,60")
    if args.count < 1 or args.scale <= 0 or not args.caps or min(args.caps) < 1 \
            or len(args.queue_range) != 2 or len(args.run_range) != 2:
        parser.error("--count and --inflight caps must be at least 1, --scale above 0,"
                     " --queue/--run two numbers")
    return args


def run(args: argparse.Namespace, work: Path) -> list[str]:
    latencies = draw_latencies(args.count, args.seed, args.queue_range, args.run_range)
    totals = [q + r for q, r in latencies.values()]
    model = sum(model_polls(t, args.poll_seconds, args.poll_max) for t in totals) / len(totals)
    results = [run_config(args, work, i, cap, latencies) for i, cap in enumerate(args.caps)]
    mean_q = sum(q for q, _ in latencies.values()) / args.count
    mean_r = sum(r for _, r in latencies.values()) / args.count
    lines = [
        "",
        f"lorad generations benchmark: {args.count} x {ENDPOINT} (num_frames 17) through the daemon"
        f" against the loopback fal double",
        *machine_info(),
        f"fal latency (unscaled): queue U({args.queue}) s, run U({args.run}) s, means {mean_q:.0f} +"
        f" {mean_r:.0f} s, seed {args.seed}; scale {args.scale:g} -> mean"
        f" {(mean_q + mean_r) * args.scale:.2f} s per generation;"
        f" poll {args.poll_seconds:g} s x{gen_job.POLL_GROWTH:g} to"
        f" {args.poll_max:g} s (scaled {args.poll_seconds * args.scale:g} to"
        f" {args.poll_max * args.scale:g} s)",
        f"unscaled equivalent of the bound: {results[0].bound / args.scale / 60:.0f} min at"
        f" {results[0].label}; bound = max(sum of latencies / cap, longest latency)",
        "",
        *table(results),
        "",
    ]
    if len(results) > 1:
        lines += [*ratios(results), ""]
    for r in results:
        lines += details(r, model)
    problems = [p for r in results for p in r.problems]
    lines += problem_lines(problems, 40)
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_in_tempdir(run, parse_args(argv), "lorad-bench-gen-")


if __name__ == "__main__":
    sys.exit(main())
