"""The daemon as a real subprocess: locking, crash recovery, signals, cancel and retry."""

import json
import signal
import subprocess
import sys

import pytest
from conftest import daemon_env
from helpers import wait_for

from lorad.core import daemon, jobs


def states(conn, ids):
    return [jobs.get(conn, i).state for i in ids]


def effects(conn):
    try:
        return dict(conn.execute("SELECT job_id, COUNT(*) FROM test_effects GROUP BY job_id"))
    except Exception:
        return {}


def test_sigkill_mid_run_then_restart_runs_every_job_exactly_once(ws, conn, daemon_proc,
                                                                 fault_report):
    ids = [jobs.enqueue(conn, "test.effect", {"seconds": 0.1}) for _ in range(50)]
    proc = daemon_proc.start()
    wait_for(lambda: 10 <= jobs.counts_by_state(conn)["succeeded"] < 50, timeout=60,
             message="some jobs to finish")
    running_before_kill = jobs.counts_by_state(conn)["running"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    counts = jobs.counts_by_state(conn)
    assert counts["succeeded"] < 50, "killed too late to test anything"
    assert running_before_kill + counts["running"] > 0 or counts["queued"] > 0
    daemon_proc.start()
    wait_for(lambda: jobs.counts_by_state(conn)["succeeded"] == 50, timeout=60,
             message="all jobs to succeed after restart")
    assert set(states(conn, ids)) == {"succeeded"}
    fault_report("kill -9 of the daemon during 50 jobs", counted="side effects (once each)",
                 expected=50, observed=sum(effects(conn).values()),
                 daemon_alive=daemon_proc.proc.poll() is None)
    assert effects(conn) == {i: 1 for i in ids}


def test_second_daemon_refuses(ws, daemon_proc):
    daemon_proc.start()
    with pytest.raises(daemon.DaemonError, match="already running"):
        daemon.start(ws)
    second = subprocess.run(
        [sys.executable, "-m", "lorad", "-w", str(ws.root), "daemon", "run"],
        capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert f"pid {daemon_proc.proc.pid}" in second.stderr


def test_sigterm_exits_cleanly_and_releases_unfinished_work(ws, conn, daemon_proc):
    done = jobs.enqueue(conn, "test.effect", {"seconds": 0.5})
    proc = daemon_proc.start()
    wait_for(lambda: jobs.get(conn, done).state == "running", message="job to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert jobs.get(conn, done).state == "succeeded"  # allowed to finish
    assert not daemon.status(ws).running
    assert "daemon stopped" in ws.log_path.read_text()


def test_cancel_running_job_stops_cleanly(ws, conn, daemon_proc):
    job_id = jobs.enqueue(conn, "test.wait_cancel")
    daemon_proc.start()
    wait_for(lambda: jobs.get(conn, job_id).progress_msg == "waiting to be cancelled")
    assert jobs.request_cancel(conn, job_id) == "cancelling"
    wait_for(lambda: jobs.get(conn, job_id).state == "cancelled", message="cancel")


def test_transient_errors_retry_and_permanent_errors_fail(ws, conn, daemon_proc):
    flaky = jobs.enqueue(conn, "test.flaky", {"failures": 2})
    broken = jobs.enqueue(conn, "test.broken")
    crash = jobs.enqueue(conn, "test.crash")
    refused = jobs.enqueue(conn, "test.refused")
    daemon_proc.start()
    wait_for(lambda: jobs.get(conn, flaky).state == "succeeded", message="flaky job")
    assert jobs.get(conn, flaky).result == {"attempts": 3}
    wait_for(lambda: jobs.get(conn, crash).state == "failed")
    job = jobs.get(conn, broken)
    assert (job.state, job.attempts) == ("failed", 1)
    assert job.error == "caption file missing: add clip_001.txt"
    assert "ValueError: unexpected" in jobs.get(conn, crash).error
    # any LoradError is a clean failure: its message as is, no retry, no traceback
    wait_for(lambda: jobs.get(conn, refused).state == "failed")
    log = ws.log_path.read_text()
    assert "Traceback" in log and f"job {crash} (test.crash) raised" in log
    job = jobs.get(conn, refused)
    assert job.error == "the pod refused the key: check the pod's user and key file"
    assert job.attempts == 1 and f"job {refused} (test.refused) raised" not in log


def test_retry_after_failure_runs_again(ws, conn, daemon_proc):
    job_id = jobs.enqueue(conn, "test.flaky", {"failures": 1}, max_attempts=1)
    daemon_proc.start()
    wait_for(lambda: jobs.get(conn, job_id).state == "failed")
    jobs.retry(conn, job_id)
    # attempts restart from 0, so attempt 1 fails again; allow two this time
    conn.execute("UPDATE jobs SET max_attempts = 2 WHERE id = ?", (job_id,))
    wait_for(lambda: jobs.get(conn, job_id).state == "succeeded")


def test_cli_start_status_stop(ws):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "lorad", "-w", str(ws.root), *args],
                              capture_output=True, text=True, env=daemon_env(), timeout=60)

    assert run("daemon", "start").returncode == 0
    try:
        data = json.loads(run("daemon", "status", "--json").stdout)
        assert data["running"] and data["pid"] and data["jobs"]["queued"] == 0
        again = run("daemon", "start")
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        assert run("daemon", "stop").stdout.strip() == "daemon stopped"
    assert not daemon.status(ws).running


def test_nudge_wakes_an_idle_daemon_before_its_next_poll(ws, conn, daemon_proc):
    ws.config_path.write_text("[daemon]\npoll_interval = 60\nlease_seconds = 6\n")
    daemon_proc.start()
    # one job run first: afterwards the daemon looks at the empty queue and waits its 60 s
    first = jobs.enqueue(conn, "test.effect", {"seconds": 0.01})
    assert daemon.nudge(ws)
    wait_for(lambda: jobs.get(conn, first).state == "succeeded", timeout=20, message="first")
    job = jobs.enqueue(conn, "test.effect", {"seconds": 0.01})
    assert daemon.nudge(ws)
    wait_for(lambda: jobs.get(conn, job).state == "succeeded", timeout=20,
             message="job run long before the 60 s poll")
