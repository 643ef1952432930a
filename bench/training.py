"""Training transport benchmarks on a loopback OpenSSH server (tests/support/sshd.py).

1. Upload throughput: lorad's `Shell.upload_tree` (what a run uses: OpenSSH `sftp` with `reput`
   into `.part` files, the pinned host key, SHA-256 checked on both sides, one rename) against
   `scp` of the same files in the same run; also the paramiko path (its fallback) with and
   without verification, to show what Python SFTP and the checksums cost.
2. Progress latency: a real run through the in-process daemon loop against the musubi-tuner
   double; for each step, the time from the trainer writing its progress line (the double's
   log file watched on this machine every 5 ms: the pod is loopback) to the loss
   point landing in SQLite (`loss_points.at`). Default settings (`training.poll_seconds`).

    .venv/bin/python bench/training.py [--mb 200] [--files 20] [--steps 120] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from sshd import start_sshd  # noqa: E402

from lorad import ssh  # noqa: E402


def make_files(folder: Path, total_mb: int, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    size = total_mb * (1 << 20) // count
    files = []
    for i in range(count):
        path = folder / f"clip_{i:03d}.mp4"
        path.write_bytes(os.urandom(size))
        files.append(path)
    return files


def time_lorad(server, files: list[Path], dest: str, verify: bool = True,
               tree: bool = False) -> float:
    endpoint = ssh.Endpoint(server.host, server.port, server.user, str(server.key_file))
    start = time.perf_counter()
    with ssh.Shell(endpoint) as shell:
        shell.mkdirs(dest)
        if tree:
            shell.upload_tree([(p, f"{dest}/{p.name}") for p in files])
            return time.perf_counter() - start
        for path in files:
            remote = f"{dest}/{path.name}"
            if verify:
                shell.upload(path, remote)
            else:
                with path.open("rb") as src, shell.sftp.open(remote, "wb") as dst:
                    dst.set_pipelined(True)
                    while chunk := src.read(ssh.CHUNK):
                        dst.write(chunk)
    return time.perf_counter() - start


def time_scp(server, files: list[Path], dest: str) -> float:
    known = server.dir / "known_hosts"
    known.write_text(server.known_hosts_line + "\n")
    Path(dest).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run(["scp", "-q", "-P", str(server.port), "-i", str(server.key_file), "-o",
                    "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known}", "-o",
                    "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                    *map(str, files), f"{server.user}@{server.host}:{dest}/"], check=True)
    return time.perf_counter() - start


class LineClock(threading.Thread):
    """Watches the log file on this machine (the pod is loopback) every 5 ms and notes when
    each step's progress line first appears complete: the 'written' time of the step."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        from lorad.trainlog import LogParser, Progress

        parser = LogParser()
        offset = 0
        while not self.stop.is_set():
            try:
                with self.path.open("rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
            except FileNotFoundError:
                data = b""
            if data:
                offset += len(data)
                now = time.time()
                for event in parser.feed(data):
                    if isinstance(event, Progress) and event.step > 0:
                        self.seen.setdefault(event.step, now)
            self.stop.wait(0.005)


def latency(server, tmp: Path, steps: int, step_seconds: float) -> list[float]:
    """Run a real training through lorad and measure line-written -> point-stored per step."""
    from helpers import run_jobs

    from lorad import captions, datasets, export, pods, profiles, runs, workspace

    ws = workspace.init(tmp / "ws")
    conn = ws.connect()
    profile = profiles.get("wan21-t2v-480p-portrait")
    d = datasets.create(conn, "bench", profile.name, trigger="TRK")
    now = time.time()
    for n in range(steps):  # one clip per step: one epoch of `steps` steps
        media = tmp / "media" / f"c{n}.mp4"
        media.parent.mkdir(exist_ok=True)
        media.write_bytes(b"x")
        cur = conn.execute(
            "INSERT INTO clips (dataset_id, source_path, name, state, frames, fps, media_path,"
            " source_hash, profile_fingerprint, flags, created_at, updated_at) VALUES"
            " (?,?,?,'approved',41,16,?,?,?,'[]',?,?)",
            (d.id, f"/src/{n}.mp4", f"c{n:04d}", str(media), f"h{n}", profile.fingerprint(),
             now, now))
        captions.set_caption(conn, cur.lastrowid, f"TRK, truck {n}")
    d = datasets.get(conn, "bench")
    plan = export.plan(conn, d, profile, export.Options(remote_root=str(server.root / "ds")))
    version = export.record(conn, plan, export.write(plan, export.export_dir(ws.root, plan)))
    models = server.root / "models"
    models.mkdir(exist_ok=True)
    for name in ("dit.safetensors", "vae.pth", "t5.pth"):
        (models / name).write_bytes(b"w")
    pod = pods.add(conn, "local", host=server.host, port=server.port, user=server.user,
                   key_file=str(server.key_file), remote_dir=str(server.root / "lorad"))
    server.configure_double(mode="slow", step_seconds=step_seconds)
    run = runs.create(conn, "bench", version, pod.id, {
        "dit": str(models / "dit.safetensors"), "vae": str(models / "vae.pth"),
        "t5": str(models / "t5.pth"), "musubi_dir": str(server.musubi_dir),
        "max_train_epochs": 1, "save_every_n_epochs": None})
    runs.start(conn, run.id)
    clock = LineClock(server.root / "lorad" / "runs" / "bench" / "logs" / "train.log")
    clock.start()
    worker = threading.Thread(target=run_jobs, args=(ws, 600))
    worker.start()
    worker.join()
    clock.stop.set()
    clock.join()
    points = dict(conn.execute("SELECT step, at FROM loss_points WHERE run_id = ?", (run.id,)))
    server.configure_double()
    return [points[s] - t for s, t in clock.seen.items() if s in points]


def main() -> None:
    parser = argparse.ArgumentParser(description="SFTP upload vs scp; progress latency")
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--step-seconds", type=float, default=0.25)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lorad-bench-training-"))
    try:
        with start_sshd(tmp / "pod") as server:
            files = make_files(tmp / "data", args.mb, args.files)
            best = {"lorad upload_tree": [], "paramiko, verified": [],
                    "paramiko, no checksum": [], "scp": []}
            for i in range(args.repeat):
                best["scp"].append(time_scp(server, files, str(server.root / f"scp{i}")))
                best["lorad upload_tree"].append(
                    time_lorad(server, files, str(server.root / f"tree{i}"), tree=True))
                best["paramiko, verified"].append(
                    time_lorad(server, files, str(server.root / f"sftp{i}")))
                best["paramiko, no checksum"].append(
                    time_lorad(server, files, str(server.root / f"raw{i}"), verify=False))
            lat = latency(server, tmp, args.steps, args.step_seconds)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Python "
          f"{platform.python_version()}; loopback sshd; {args.files} files, {args.mb} MB; best "
          f"of {args.repeat}")
    scp = min(best["scp"])
    print(f"{'upload':24} {'seconds':>8} {'MB/s':>8} {'vs scp':>7}")
    for name, times in best.items():
        t = min(times)
        print(f"{name:24} {t:8.2f} {args.mb / t:8.1f} {scp / t:7.2f}")
    lat_sorted = sorted(lat)
    p95 = lat_sorted[int(len(lat_sorted) * 0.95) - 1] if lat_sorted else float("nan")
    print(f"progress latency over {len(lat)} steps ({args.step_seconds} s/step, default "
          f"poll): median {statistics.median(lat):.2f} s, p95 {p95:.2f} s, max "
          f"{max(lat):.2f} s")


if __name__ == "__main__":
    main()
