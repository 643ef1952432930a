"""The daemon's word: `start` says so when the daemon dies at start, `stop` returns once the
process has ended (and only then can another start)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import daemon_env
from helpers import wait_for

from lorad.core import daemon, jobs, store


@pytest.mark.parametrize("breakage,reason", [
    ("key", "unknown key 'daemon.max_concurent'"),
    ("toml", "not valid TOML"),
    ("newer", "this database is at schema version 999"),
    ("damaged", "is damaged (file is not a database)"),
])
def test_start_says_why_a_daemon_died_at_start(ws, breakage, reason, fault_report):
    """It said "daemon started" and exited 0 when the daemon died a second later."""
    if breakage == "key":
        ws.config_path.write_text(ws.config_path.read_text() + "max_concurent = 4\n")
    elif breakage == "toml":
        ws.config_path.write_text("[daemon\n")
    elif breakage == "damaged":
        with open(ws.db_path, "r+b") as fh:
            fh.write(b"\xff" * 100)  # the header gone
    else:
        conn = store.connect(ws.db_path)
        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES"
                     " (999, '999_future.sql', 0)")
        conn.close()
    cli = subprocess.run([sys.executable, "-m", "lorad", "-w", str(ws.root), "daemon", "start"],
                         capture_output=True, text=True, env=daemon_env(), timeout=60)
    assert cli.returncode == 1, cli.stdout
    assert "the daemon did not start: " in cli.stderr and reason in cli.stderr
    assert not daemon.status(ws).running
    what = {"key": "a misspelt config key", "toml": "broken TOML", "newer": "a newer database",
            "damaged": "a damaged database"}[breakage]
    fault_report(f"daemon start with {what}", counted="exit code of start",
                 expected=1, observed=cli.returncode, note="silent deaths: 0")


def test_stop_returns_when_the_process_has_ended(ws, conn, fault_report):
    """`stop` said "stopped" while the old process was still finishing a call, and a second
    daemon could start beside it."""
    ws.config_path.write_text(ws.config_path.read_text().replace(
        "[daemon]\n", "[daemon]\nshutdown_grace_seconds = 0.2\n", 1))
    first = daemon.start(ws, env=daemon_env())
    job_id = jobs.enqueue(conn, "test.hang", {"seconds": 120})
    daemon.nudge(ws)
    wait_for(lambda: jobs.get(conn, job_id).state == "running", message="the hung call")
    assert daemon.stop(ws) is True
    assert not daemon._alive(first.pid)  # gone, not finishing in the background
    assert jobs.get(conn, job_id).state == "queued"  # handed back to the next daemon
    second = daemon.start(ws, env=daemon_env())
    assert second.pid != first.pid and second.ready
    fault_report("stop during a hung 120 s call", counted="daemons alive after stop returned",
                 expected=0, observed=int(daemon._alive(first.pid)))
    daemon.stop(ws)


def test_an_unknown_notification_event_is_refused_at_start(ws):
    ws.config_path.write_text(ws.config_path.read_text() + '\n[notify]\nevents = ["run_done"]\n')
    cli = subprocess.run([sys.executable, "-m", "lorad", "-w", str(ws.root), "daemon", "start"],
                         capture_output=True, text=True, env=daemon_env(), timeout=60)
    assert cli.returncode == 1
    assert "notify.events: unknown run_done (known: run_finished" in cli.stderr


def test_a_daemon_stopped_by_an_unexpected_error_says_so(ws, notices):
    """The daemon's loop raising (a bug, not a job's failure: those are recorded on the job)
    ends the process with an error, and the notice says why and where its log is."""
    code = ("from lorad.core import daemon, workspace\n"
            "async def broken(self):\n"
            "    raise RuntimeError('the loop broke')\n"
            "daemon.Daemon.serve = broken\n"
            f"daemon.run_foreground(workspace.find({str(ws.root)!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=daemon_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert notices.titles() == [f"lorad: the daemon of {ws.name} stopped"]
    body = notices.received[0]["message"]
    assert "RuntimeError: the loop broke" in body and str(ws.log_path) in body


def test_a_notification_that_cannot_be_delivered_stops_nothing(ws, monkeypatch, caplog):
    from lorad.core import notify

    monkeypatch.setenv("LORAD_NOTIFY_URLS", "json://127.0.0.1:9/nowhere not-a-url://x")
    assert notify.send(ws.config(), "run_finished", "t", "b") is False
    assert "127.0.0.1:9" not in caplog.text  # URLs carry tokens: never logged
    assert notify.send(ws.config(), "pod_weather", "t", "b") is False  # not an event asked for
