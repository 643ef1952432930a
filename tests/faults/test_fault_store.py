"""The store that cannot be written for a while: a full disk (a real tmpfs), another program
holding the write lock past the busy timeout. The daemon stays up, claims nothing new, loses no
request fal accepted and sends none twice, and goes on when the store can be written again."""

from __future__ import annotations

import contextlib
import errno
import subprocess

import pytest
from fal_double import Latency
from helpers import WAN22, queue_generation, wait_for

from lorad.core import daemon, jobs, store, workspace
from lorad.generation import generations, loras

GENERATIONS = 40


@contextlib.contextmanager
def small_disk(path, size: str = "24m"):
    """A tmpfs of its own: a disk that really fills up (root only; skipped elsewhere)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path) -> int:
    """Write until the disk is full; returns the bytes written."""
    written = 0
    block = b"\0" * (1 << 16)
    # unbuffered: nothing is left to flush at close, where a full disk would raise again
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                written += fh.write(block) or 0
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return written


def quiet(fal, seconds: float):
    """A condition: fal has had no request for `seconds` (the daemon waits on the store)."""
    import time

    def check() -> bool:
        with fal.lock:
            last = fal.requests[-1].t if fal.requests else 0.0
        return time.monotonic() - last > seconds

    return check


def test_a_full_disk_neither_loses_nor_repeats_a_paid_request(tmp_path, fal, monkeypatch,
                                                              fault_report):
    from conftest import FAST_CONFIG, GEN_CONFIG, DaemonProcess

    with small_disk(tmp_path / "disk") as disk:
        ws = workspace.init(disk / "ws")
        ws.config_path.write_text(FAST_CONFIG + GEN_CONFIG)
        conn = ws.connect()
        loras.add(conn, "truck-e8", "https://hf.example/o/truck/resolve/main/e8.safetensors",
                  trigger="TRK", expert="both")
        fal.latency = Latency(queue_polls=3, run_polls=3)
        ids = [queue_generation(conn, seed=n) for n in range(GENERATIONS)]
        proc = DaemonProcess(ws, output=tmp_path / "daemon.out")  # off the small disk
        proc.start()
        try:
            wait_for(lambda: fal.submits[WAN22] >= 8, timeout=60, message="requests in flight")
            fill(disk / "filler")
            wait_for(quiet(fal, seconds=3), timeout=90,
                     message="the daemon to meet the full disk (fal hears nothing more)")
            assert proc.proc.poll() is None, "the daemon died of the full disk"
            assert daemon.status(ws).running
            (disk / "filler").unlink()  # space comes back
            wait_for(lambda: all(generations.get(conn, i).status == "completed" for i in ids),
                     timeout=180, message="every generation to complete")
            assert proc.proc.poll() is None
            assert fal.submits[WAN22] == GENERATIONS  # none lost, none paid twice
            assert jobs.counts_by_state(conn)["failed"] == 0
            fault_report(f"disk full during {GENERATIONS} generations",
                         counted="paid requests vs generations", expected=GENERATIONS,
                         observed=fal.submits[WAN22], daemon_alive=proc.proc.poll() is None)
        finally:
            proc.stop()
            conn.close()


def log_text(ws) -> str:
    return ws.log_path.read_text() if ws.log_path.exists() else ""


def test_a_write_lock_held_past_the_busy_timeout_does_not_kill_the_daemon(ws, conn,
                                                                        daemon_proc,
                                                                        fault_report):
    """Another program holding the database's write lock for more than the busy timeout (a
    bulk edit suspended with Ctrl+Z) killed the daemon with 'database is locked'."""
    proc = daemon_proc.start()
    other = store.connect(ws.db_path)
    other.execute("BEGIN IMMEDIATE")  # held past BUSY_TIMEOUT_MS
    try:
        wait_for(lambda: "database is locked" in log_text(ws), timeout=60,
                 message="the daemon to meet the lock")
        assert proc.poll() is None, "the daemon died of the lock"
        assert "no new work is claimed until it can" in ws.log_path.read_text()
    finally:
        other.execute("ROLLBACK")
        other.close()
    job_id = jobs.enqueue(conn, "test.effect", {"seconds": 0.05})
    daemon.nudge(ws)
    wait_for(lambda: jobs.get(conn, job_id).state == "succeeded", timeout=60,
             message="work to go on once the lock is gone")
    assert proc.poll() is None and "can be written again" in ws.log_path.read_text()
    fault_report("write lock held past the busy timeout", counted="jobs done after it",
                 expected=1, observed=jobs.counts_by_state(conn)["succeeded"],
                 daemon_alive=proc.poll() is None)
