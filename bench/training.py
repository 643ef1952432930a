"""Benchmark: lorad's dataset upload against scp, and how soon a training step's loss reaches the store.

Run by hand (not part of the tests):
    .venv/bin/python bench/training.py [--mb 200] [--files 20] [--steps 200] [--repeat 2] [--keep]

Both parts run against a real OpenSSH server on loopback (tests/support/sshd.py) playing the pod, with
the musubi-tuner double as its trainer. Client and server share this machine's CPUs, so every byte is
encrypted and decrypted here, and the pod-side checksums run here too.

1. Upload. N files of random data totalling M MB (made first, not timed; warm page cache) go to a fresh
   remote folder each time, by:
   - `scp -r` of the folder: the baseline (OpenSSH client, the server's host key pinned, the options
     `SshServer.ssh_command` uses, which are also lorad's sftp options); `scp -O` (legacy protocol) too;
   - lorad `Shell.upload_tree`, what the train job calls (connecting included): the OpenSSH `sftp` batch
     into `.part` files, SHA-256 of every file here (in a thread, during the transfer) and on the pod
     (`sha256sum`, one command), then one rename command. Its parts are timed alone below it;
   - lorad `Shell.upload` file by file, paramiko's SFTP (upload_tree's fallback), and plain paramiko
     writes without any check, with lorad's window/packet settings, paramiko's defaults, AES-GCM
     instead of the AES-CTR + HMAC paramiko picks, and `putfo(confirm=False)`;
   - what lorad does not do: `upload_tree` with the pod-side check done by python3's hashlib (OpenSSL,
     one thread per core) instead of coreutils' sha256sum.
   "x scp" is scp's time over this one's (throughput relative to scp); the target for lorad's path is
   at least 0.7. Each way runs --repeat times (interleaved), the best is kept.
2. Progress latency. A real run through lorad (workspace, dataset export, pod, `runs.start`, the daemon's
   job loop in this process) trains --steps steps on the double in `slow` mode at --step-seconds per
   step, with lorad's default `training.poll_seconds`. A `sitecustomize.py` put in this benchmark's temp
   dir (on the trainer's PYTHONPATH through the run's `env`) notes the time and log offset of every
   write the trainer makes to its log, so each progress line has the time it was written. Per step:
   latency = `loss_points.at` (the daemon's time.time() when it stored the point; same clock) minus the
   time the line carrying that step's final loss was written. It is split into the wait for the line's
   end (tqdm ends a bar line only when it draws the next one) and lorad's part (poll, SSH read, parse,
   SQLite). A trigger in the temp workspace's database also keeps every insert, to time when a step
   first appears at all; a step's latency counts from its final line's writing to the first insert
   carrying that final value. The baseline, run the same way in the same run, is the parser as it was
   before it reported a finished bar at once (`line_end_parser`: each bar waits for the next to end it).
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

import paramiko  # noqa: E402
from benchrun import problem_lines, run_in_tempdir  # noqa: E402
from helpers import run_jobs  # noqa: E402
from sshd import SshServer, start_sshd  # noqa: E402

from lorad.captions import versions  # noqa: E402
from lorad.core import files, workspace  # noqa: E402
from lorad.datasets import export  # noqa: E402
from lorad.media import datasets, profiles  # noqa: E402
from lorad.training import logparse, pods, runs, ssh  # noqa: E402
from lorad.training.trainers import musubi  # noqa: E402

PROFILE = "wan21-t2v-480p-portrait"
CLIPS = 10  # clips in the latency run's dataset: one epoch is CLIPS steps
UPLOAD_TARGET = 0.7  # lorad/scp throughput
P95_TARGET = 2.0  # seconds
GCM_ONLY = {"ciphers": ["aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-cbc", "aes192-cbc",
                        "aes256-cbc", "3des-cbc"]}  # leaves paramiko aes128-gcm / aes256-gcm

# Loaded by the trainer's python (PYTHONPATH from the run's env): taps stdout/stderr of the processes
# whose stderr is the training log and notes "time offset" after every write. Temp dir only.
HOOK = '''\
"""bench/training.py: note when each write to the training log lands. Lives only in a temp dir."""
import os
import sys
import time


class _Tap:
    def __init__(self, stream, record):
        self._stream = stream
        self._record = record

    def write(self, text):
        n = self._stream.write(text)
        self._stream.flush()
        try:
            offset = os.lseek(self._stream.fileno(), 0, os.SEEK_CUR)
        except OSError:
            return n
        self._record.write(f"{time.time():.6f} {offset}\\n")
        return n

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _target():
    try:
        return os.readlink("/proc/self/fd/2")
    except OSError:
        return ""


_dir = os.environ.get("LORAD_BENCH_WRITES")
if _dir and _target().endswith("/train.log"):
    _record = open(os.path.join(_dir, f"{os.getpid()}.txt"), "a", buffering=1)
    sys.stdout = _Tap(sys.stdout, _record)
    sys.stderr = _Tap(sys.stderr, _record)
'''

# The pod-side check done by python3's hashlib (OpenSSL), one thread per core; prints what
# `sha256sum` prints so Shell.sha256_many's parsing stays the same.
PY_SHA256 = """\
import hashlib, os, sys
from concurrent.futures import ThreadPoolExecutor
def h(p):
    if not os.path.isfile(p):
        return None
    d = hashlib.sha256()
    with open(p, "rb") as f:
        while b := f.read(1 << 20):
            d.update(b)
    return d.hexdigest()
with ThreadPoolExecutor(os.cpu_count() or 1) as ex:
    for p, r in zip(sys.argv[1:], ex.map(h, sys.argv[1:])):
        if r:
            print(r + "  " + p)
"""


class PyHashShell(ssh.Shell):
    """lorad's Shell with the pod-side check done by python3 hashlib instead of sha256sum."""

    def sha256_many(self, paths: list[str]) -> dict[str, str]:
        if not paths:
            return {}
        _c, out, _e = self.run(f"python3 -c {shlex.quote(PY_SHA256)} "
                               + " ".join(shlex.quote(p) for p in paths))
        found = {}
        for line in out.splitlines():
            digest, _sep, name = line.partition("  ")
            found[name] = digest
        return found


# ---- 1. upload ------------------------------------------------------------------------------------

# The upload table's rows, in order: label, and whether the row moves the data (then compared with scp)
# or only hashes it (its MB/s is then a hashing speed). Indented rows are parts or variants of the
# row above them, timed alone. None starts what lorad does not do.
SCP, SCP_LEGACY = "scp -r (baseline)", "scp -O -r (legacy scp protocol)"
TREE, TREE_PUT = "lorad upload_tree (the train job)", "  its sftp batch alone (_openssh_put)"
TREE_CHECK, TREE_LOCAL = "  its pod-side check (sha256sum)", "  its local hashing (sha256_file)"
PER_FILE, WRITES = "lorad upload per file (paramiko)", "  paramiko writes only, lorad window"
WRITES_DEFAULT, WRITES_GCM = "  paramiko writes, default window", "  paramiko writes, aes128-gcm"
PUTFO = "  paramiko putfo(confirm=False)"
PY_TREE, PY_CHECK = "upload_tree, pod check by python3", "  its pod-side check: python3 hashlib"
ROWS: list[tuple[str, bool] | None] = [
    (SCP, True), (SCP_LEGACY, True), (TREE, True), (TREE_PUT, True), (TREE_CHECK, False),
    (TREE_LOCAL, False), (PER_FILE, True), (WRITES, True), (WRITES_DEFAULT, True), (WRITES_GCM, True),
    (PUTFO, True), None, (PY_TREE, True), (PY_CHECK, False)]


def make_files(folder: Path, total_mb: int, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    size = total_mb * 1_000_000 // count
    files = []
    for i in range(count):
        path = folder / f"clip_{i:03d}.mp4"
        path.write_bytes(os.urandom(size))
        files.append(path)
    return files


class Uploads:
    def __init__(self, server: SshServer, folder: Path, files: list[Path]) -> None:
        self.server = server
        self.folder = folder
        self.files = files
        self.endpoint = ssh.Endpoint(server.host, server.port, server.user, str(server.key_file))
        self.ssh_options = server.ssh_command("true")[3:-2]  # -i KEY -o ... (after `ssh -p PORT`)
        self.count = 0
        (server.root / "uploads").mkdir(exist_ok=True)  # each way sends to a new folder in it
        self.times: dict[str, list[float]] = {}

    # -- bookkeeping
    def dest(self) -> str:
        self.count += 1
        return str(self.server.root / "uploads" / f"u{self.count:03d}")

    def record(self, label: str, seconds: float) -> None:
        self.times.setdefault(label, []).append(seconds)

    def timed(self, label: str, fn: Callable[[str], None]) -> None:
        dest = self.dest()
        start = time.perf_counter()
        fn(dest)
        self.record(label, time.perf_counter() - start)
        self.check(dest)
        shutil.rmtree(dest)  # the pod is this machine

    def check(self, dest: str) -> None:
        for path in self.files:
            remote = Path(dest) / path.name
            if not remote.exists():
                remote = remote.with_name(remote.name + ".part")
            if not remote.exists() or remote.stat().st_size != path.stat().st_size:
                raise RuntimeError(f"{remote}: missing or of the wrong size after the upload")

    def pairs(self, dest: str) -> list[tuple[Path, str]]:
        return [(p, f"{dest}/{p.name}") for p in self.files]

    # -- the ways
    def scp(self, dest: str, legacy: bool = False) -> None:
        subprocess.run(["scp", "-q", "-r", *(["-O"] if legacy else []), "-P", str(self.server.port),
                        *self.ssh_options, str(self.folder), f"{self.server.user}@{self.server.host}:{dest}"],
                       check=True)

    def upload_tree(self, dest: str, shell_class: type[ssh.Shell] = ssh.Shell) -> None:
        with shell_class(self.endpoint, self.server.host_key_line) as shell:
            if shell.upload_tree(self.pairs(dest)) != len(self.files):
                raise RuntimeError("upload_tree skipped files it should have sent")

    def upload_tree_parts(self) -> None:
        """upload_tree's pieces alone: the sftp batch, the pod-side check (lorad's and python3's),
        the local hashing."""
        dest = self.dest()
        with ssh.Shell(self.endpoint, self.server.host_key_line) as shell:
            start = time.perf_counter()
            shell._openssh_put(self.pairs(dest), None)
            self.record(TREE_PUT, time.perf_counter() - start)
            parts = [r + ".part" for _p, r in self.pairs(dest)]
            for label, shell_class in ((TREE_CHECK, ssh.Shell), (PY_CHECK, PyHashShell)):
                start = time.perf_counter()
                found = shell_class.sha256_many(shell, parts)
                self.record(label, time.perf_counter() - start)
                if len(found) != len(parts):
                    raise RuntimeError(f"{label.strip()}: {len(found)} of {len(parts)} files hashed")
        start = time.perf_counter()
        for path in self.files:
            files.sha256_file(path)
        self.record(TREE_LOCAL, time.perf_counter() - start)
        self.check(dest)
        shutil.rmtree(dest)

    def upload_per_file(self, dest: str) -> None:
        with ssh.Shell(self.endpoint, self.server.host_key_line) as shell:
            shell.mkdirs(dest)
            for path, remote in self.pairs(dest):
                shell.upload(path, remote)

    def paramiko_writes(self, dest: str, *, lorad_window: bool = True, gcm: bool = False,
                        putfo: bool = False) -> None:
        client = self.server.client(disabled_algorithms=GCM_ONLY if gcm else None)
        try:
            transport = client.get_transport()
            if lorad_window:
                sftp = paramiko.SFTPClient.from_transport(transport, window_size=ssh.WINDOW,
                                                          max_packet_size=ssh.PACKET)
            else:
                sftp = paramiko.SFTPClient.from_transport(transport)
            sftp.mkdir(dest)
            for path, remote in self.pairs(dest):
                with path.open("rb") as src:
                    if putfo:
                        sftp.putfo(src, remote, confirm=False)
                        continue
                    with sftp.open(remote, "wb") as dst:  # as Shell.upload writes, minus hashing
                        dst.set_pipelined(True)
                        while chunk := src.read(ssh.CHUNK):
                            dst.write(chunk)
            sftp.close()
        finally:
            client.close()

    def run_once(self) -> None:
        self.timed(SCP, self.scp)
        self.timed(SCP_LEGACY, lambda dest: self.scp(dest, legacy=True))
        self.timed(TREE, self.upload_tree)
        self.upload_tree_parts()
        self.timed(PER_FILE, self.upload_per_file)
        self.timed(WRITES, self.paramiko_writes)
        self.timed(WRITES_DEFAULT, lambda dest: self.paramiko_writes(dest, lorad_window=False))
        self.timed(WRITES_GCM, lambda dest: self.paramiko_writes(dest, gcm=True))
        self.timed(PUTFO, lambda dest: self.paramiko_writes(dest, putfo=True))
        self.timed(PY_TREE, lambda dest: self.upload_tree(dest, PyHashShell))


def upload_table(times: dict[str, list[float]], mb: int, files: int, repeat: int) -> list[str]:
    best = {label: min(values) for label, values in times.items()}
    scp, tree = best[SCP], best[TREE]
    width = max(len(label) for label in best) + 2
    lines = [f"{f'upload: {files} files, {mb} MB':{width}}{'seconds':>9}{'MB/s':>9}{'x scp':>8}"
             f"   (best of {repeat})"]
    for row in ROWS:
        if row is None:
            lines.append("not in lorad, to see what would help:")
            continue
        label, transfer = row
        seconds = best[label]
        ratio = f"{scp / seconds:8.2f}" if transfer else f"{'-':>8}"
        note = ""
        if label == TREE:
            note = f"   target >= {UPLOAD_TARGET:g}: {'met' if scp / seconds >= UPLOAD_TARGET else 'NOT met'}"
        lines.append(f"{label:{width}}{seconds:9.2f}{mb / seconds:9.1f}{ratio}{note}")
    put, check = best[TREE_PUT], best[TREE_CHECK]
    lines += [f"upload_tree {tree:.2f} s ~ sftp batch {put:.2f} + pod-side sha256sum {check:.2f} + the rest "
              f"{tree - put - check:.2f} (connecting, its other",
              "  remote commands, the local hashing's share of the CPUs). \"-\": a part that only hashes; "
              "its MB/s is a hashing speed."]
    return lines


# ---- 2. progress latency --------------------------------------------------------------------------

def line_end_parser(self, offset: int = 0) -> logparse.LineParser:
    """The baseline: lorad's parser as it was, reporting a bar only once tqdm ends its line (when
    it draws the next bar, a step later)."""
    return musubi.log.parser(offset, report_finished_tail=False)


@dataclass
class Latency:
    label: str
    tail: bool
    steps: int
    step_seconds: float
    poll_seconds: float
    final: list[float]  # loss_points.at - time the line with the step's final loss was written
    line_end: list[float]  # that line written -> its end written (the next bar's \r)
    lorad_part: list[float]  # its end written -> stored
    shown: list[float]  # first line of the step written -> first insert of the step
    wall: float
    problems: list[str]


def make_run(server: SshServer, work: Path, steps: int, name: str) -> tuple[workspace.Workspace, int, Path]:
    """A workspace with an exported CLIPS-clip dataset whose remote root is in the pod, the pod, and
    a queued run of `steps` steps. Returns (ws, run id, where the hook writes)."""
    ws = workspace.init(work / "workspace")
    conn = ws.connect()
    conn.executescript("""
        CREATE TABLE bench_points (run_id INTEGER, step INTEGER, avr_loss REAL, at REAL);
        CREATE TRIGGER bench_point AFTER INSERT ON loss_points BEGIN
            INSERT INTO bench_points VALUES (NEW.run_id, NEW.step, NEW.avr_loss, NEW.at);
        END;""")
    profile = profiles.get(PROFILE)
    dataset = datasets.create(conn, "bench", PROFILE, trigger="TRK")
    now = time.time()
    for n in range(CLIPS):
        media = work / "media" / f"clip{n}.mp4"
        media.parent.mkdir(exist_ok=True)
        media.write_bytes(b"fake video %d" % n * 100)
        cur = conn.execute(
            "INSERT INTO clips (dataset_id, source_path, name, state, width, height, fps, frames,"
            " media_path, source_hash, profile_fingerprint, flags, created_at, updated_at) VALUES"
            " (?,?,?,'approved',480,848,16,41,?,?,?,'[]',?,?)",
            (dataset.id, f"/src/clip{n}.mp4", f"clip{n}", str(media), f"hash-{n}", profile.fingerprint(),
             now, now))
        versions.set_caption(conn, cur.lastrowid, f"TRK, truck number {n} parked in a field")
    dataset = datasets.get(conn, "bench")
    plan = export.plan(conn, dataset, profile,
                       export.Options(remote_root=str(server.root / "datasets" / f"{name}-bench")))
    version = export.record(conn, plan, export.write(plan, export.export_dir(ws.root, plan)))
    models = server.root / "models"
    models.mkdir(exist_ok=True)
    for model in ("dit.safetensors", "vae.pth", "t5.pth"):
        (models / model).write_bytes(b"weights")
    hook, writes = work / "hook", work / "writes"
    hook.mkdir()
    writes.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    pod = pods.add(conn, "local", host=server.host, port=server.port, user=server.user,
                   key_file=str(server.key_file), remote_dir=str(server.root / f"lorad-{name}"))
    run = runs.create(conn, name, version, pod.id, {
        "dit": str(models / "dit.safetensors"), "vae": str(models / "vae.pth"), "t5": str(models / "t5.pth"),
        "musubi_dir": str(server.musubi_dir), "max_train_epochs": None, "max_train_steps": steps,
        "save_every_n_epochs": None, "env": {"PYTHONPATH": str(hook), "LORAD_BENCH_WRITES": str(writes)}})
    runs.start(conn, run.id)
    conn.close()
    return ws, run.id, writes


def write_times(writes: Path) -> tuple[list[int], list[float]]:
    """(end offsets, times) of the trainer's writes to its log, in order."""
    records = []
    for path in writes.glob("*.txt"):
        for line in path.read_text().splitlines():
            at, offset = line.split()
            records.append((float(at), int(offset)))
    records.sort()
    ends, times, top = [], [], 0
    for at, offset in records:
        top = max(top, offset)
        ends.append(top)
        times.append(at)
    return ends, times


def progress_lines(log: bytes) -> dict[int, list[tuple[int, float | None]]]:
    """Per step, its bar lines in order as (position of the line's end, avr_loss), split as
    lorad's parser splits them."""
    found: dict[int, list[tuple[int, float | None]]] = {}
    start = 0
    for m in re.finditer(rb"[\r\n]", log):
        line = log[start:m.start()].decode("utf-8", errors="replace")
        start = m.end()
        for event in musubi.log.events_in(line) if line else []:
            if isinstance(event, logparse.Progress) and event.step > 0:
                found.setdefault(event.step, []).append((m.start(), event.avr_loss))
    return found


def measure_latency(server: SshServer, work: Path, steps: int, step_seconds: float,
                    tail: bool = False) -> Latency:
    name = "tail" if tail else "default"
    ws, run_id, writes = make_run(server, work, steps, name)
    poll = ws.config()["training"]["poll_seconds"]
    server.configure_double(mode="slow", step_seconds=step_seconds)
    original = musubi.Musubi.parser
    if tail:
        musubi.Musubi.parser = line_end_parser  # the train job asks the trainer for its parser
    start = time.perf_counter()
    try:
        run_jobs(ws, timeout=120 + 3 * steps * step_seconds)
    finally:
        musubi.Musubi.parser = original
        server.configure_double()
    wall = time.perf_counter() - start
    conn = ws.connect()
    run = runs.get_by_id(conn, run_id)
    final_loss = dict(conn.execute("SELECT step, avr_loss FROM loss_points WHERE run_id = ?",
                                   (run_id,)).fetchall())
    inserts: dict[int, list[tuple[float, float | None]]] = {}
    for step, loss, at in conn.execute("SELECT step, avr_loss, at FROM bench_points WHERE run_id = ?"
                                       " ORDER BY rowid", (run_id,)):
        inserts.setdefault(step, []).append((at, loss))
    # when the step's final value was first stored (a finished bar may be stored before its line
    # ends, and stored again when it does)
    stored = {step: next(at for at, loss in inserts[step] if repr(loss) == repr(final_loss[step]))
              for step in final_loss if step in inserts}
    conn.close()
    problems = []
    if run.state != "succeeded":
        problems.append(f"run {run.name} {run.state}: {run.error}")
    if sorted(stored) != list(range(1, steps + 1)):
        problems.append(f"loss points: {len(stored)} stored, expected steps 1-{steps}")
    ends, times = write_times(writes)
    log_path = server.root / f"lorad-{name}" / "runs" / name / "logs" / "train.log"
    lines = progress_lines(log_path.read_bytes()) if log_path.exists() else {}
    if not ends:
        problems.append(f"no write times recorded (the sitecustomize hook did not load?) in {writes}")
    elif log_path.exists() and ends[-1] != log_path.stat().st_size:
        problems.append(f"the write times cover {ends[-1]} bytes of the {log_path.stat().st_size}-byte log")

    def written(position: int) -> float:  # time of the write that put byte `position - 1` there
        return times[min(bisect.bisect_left(ends, position), len(times) - 1)]

    final, line_end, lorad_part, shown = [], [], [], []
    for step, bars in sorted(lines.items()):
        if step not in stored or not ends:
            continue
        last = bars[-1][0]
        final.append(stored[step] - written(last))
        line_end.append(written(last + 1) - written(last))
        lorad_part.append(stored[step] - written(last + 1))
        shown.append(inserts[step][0][0] - written(bars[0][0]))
    if len(final) != steps:
        problems.append(f"latency measured for {len(final)} of {steps} steps")
    label = "lorad" if not tail else "baseline: bars read at their line's end"
    return Latency(label, tail, steps, step_seconds, poll, final, line_end, lorad_part, shown, wall, problems)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_table(results: list[Latency]) -> list[str]:
    first = results[0]
    width = 66
    lines = [f"{'progress latency, seconds':{width}}{'median':>8}{'p95':>8}{'max':>8}",
             f"({first.steps} steps at {first.step_seconds:g} s/step, training.poll_seconds "
             f"{first.poll_seconds:g} (lorad's default); one run each)"]
    for result in results:
        rows = [(f"{result.label}: point stored - its line written", result.final)]
        if result.tail:  # the baseline waits for the line's end; lorad often stores before it
            rows += [("  = the line's end (the next bar) written - the line written", result.line_end),
                     ("  + lorad: the line's end written - point stored", result.lorad_part)]
        rows.append(("  step first stored (any loss) - its first line written", result.shown))
        for label, values in rows:
            note = ""
            if values is result.final:
                verdict = "met" if pct(values, 95) < P95_TARGET else "NOT met"
                note = f"   target p95 < {P95_TARGET:g} s: {verdict}"
            lines.append(f"{label:{width}}{statistics.median(values) if values else math.nan:8.3f}"
                         f"{pct(values, 95):8.3f}{max(values, default=math.nan):8.3f}{note}")
        lines.append(f"  (run wall time {result.wall:.1f} s, uploading and caching stages included)")
    base = next((r for r in results if r.tail), None)
    if base is not None and base.final and first.final:
        median = statistics.median(first.final) / statistics.median(base.final)
        lines.append(f"lorad / baseline: median {median:.2f}, "
                     f"p95 {pct(first.final, 95) / pct(base.final, 95):.2f}")
    return lines


# ---- running and reporting ------------------------------------------------------------------------

def command_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "unknown"


def ciphers(server: SshServer) -> tuple[str, str]:
    """The cipher OpenSSH's client and paramiko (as lorad connects) pick with this server."""
    argv = server.ssh_command("true")
    quiet = argv.index("LogLevel=ERROR")
    del argv[quiet - 1:quiet + 1]  # `-o LogLevel=ERROR` would hide -v's lines
    out = subprocess.run([argv[0], "-v", *argv[1:]], capture_output=True, text=True).stderr
    m = re.search(r"client->server cipher: (\S+) MAC: (\S+)", out)
    openssh = f"{m.group(1)} {m.group(2)}" if m else "unknown"
    with ssh.Shell(ssh.Endpoint(server.host, server.port, server.user, str(server.key_file))) as shell:
        transport = shell.client.get_transport()
        py = f"{transport.local_cipher} {transport.local_mac}"
    return openssh, py


def machine_info(server: SshServer) -> list[str]:
    import cryptography

    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    openssh, py = ciphers(server)
    return [f"machine: {cpus} CPUs ({usable} usable), {platform.machine()}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()} ({sys.executable})",
            f"ssh:     {command_version(['ssh', '-V'])} ({openssh}); paramiko {paramiko.__version__} "
            f"({py}), cryptography {cryptography.__version__}",
            f"pod:     loopback sshd (tests/support/sshd.py), {command_version(['sha256sum', '--version'])}"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="MB to upload (default 200)")
    parser.add_argument("--files", type=int, default=20, help="files they are split into (default 20)")
    parser.add_argument("--steps", type=int, default=200, help="training steps of the latency run (200)")
    parser.add_argument("--step-seconds", type=float, default=0.1, help="the double's step time (0.1)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each upload; best kept (2)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the latency baseline run (the parser as it was)")
    parser.add_argument("--skip-upload", action="store_true", help="only measure the latency")
    parser.add_argument("--skip-latency", action="store_true", help="only measure the upload")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = parser.parse_args(argv)
    if min(args.mb, args.files, args.steps, args.repeat) < 1 or args.step_seconds <= 0:
        parser.error("--mb, --files, --steps and --repeat must be at least 1, --step-seconds above 0")
    return args


def run(args: argparse.Namespace, work: Path) -> list[str]:
    with start_sshd(work / "pod") as server:
        lines = ["", f"lorad training benchmark: upload {args.mb} MB in {args.files} files; progress "
                 f"latency over {args.steps} steps", *machine_info(server)]
        if not args.skip_upload:
            print(f"making {args.files} files of random data, {args.mb} MB in all (not timed)", flush=True)
            folder = work / "dataset"
            uploads = Uploads(server, folder, make_files(folder, args.mb, args.files))
            for r in range(args.repeat):
                print(f"timing uploads, round {r + 1} of {args.repeat}", flush=True)
                uploads.run_once()
            lines += ["", *upload_table(uploads.times, args.mb, args.files, args.repeat)]
        if not args.skip_latency:
            results = []
            for tail in (False,) if args.no_baseline else (False, True):
                print(f"timing progress latency ({'baseline' if tail else 'lorad'}): a {args.steps}-step "
                      f"run at {args.step_seconds:g} s/step", flush=True)
                results.append(measure_latency(server, work / ("latency-tail" if tail else "latency"),
                                               args.steps, args.step_seconds, tail))
            lines += ["", *latency_table(results)]
            problems = [p for result in results for p in result.problems]
            lines += problem_lines(problems)
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_in_tempdir(run, parse_args(argv), "lorad-bench-training-")


if __name__ == "__main__":
    sys.exit(main())
