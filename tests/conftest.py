from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "support"))
sys.path.insert(0, str(HERE))  # tests/faults/ reuses the tests' helpers

from helpers import wait_for  # noqa: E402

FAST_CONFIG = """
[daemon]
poll_interval = 0.05
retry_base_seconds = 0.05
retry_max_seconds = 0.2
lease_seconds = 6
"""


@pytest.fixture
def ws(tmp_path):
    from lorad.core import workspace

    w = workspace.init(tmp_path / "ws")
    w.config_path.write_text(FAST_CONFIG)
    return w


@pytest.fixture
def conn(ws):
    c = ws.connect()
    yield c
    c.close()


GEN_CONFIG = """
[generations]
poll_seconds = 0.02
poll_max_seconds = 0.1
"""


@pytest.fixture
def fal(ws, monkeypatch):
    """The fal queue double, with the workspace and the environment pointed at it."""
    from fal_double import fal_double

    ws.config_path.write_text(ws.config_path.read_text() + GEN_CONFIG)
    with fal_double() as double:
        monkeypatch.setenv("FAL_KEY", double.key)
        monkeypatch.setenv("FAL_QUEUE_URL", double.url)
        yield double


@pytest.fixture
def truck(conn):
    """Two LoRAs to generate with (Wan 2.2, high-noise and both experts)."""
    from lorad.generation import loras

    loras.add(conn, "truck-e4", "https://hf.example/o/truck/resolve/main/e4.safetensors",
              trigger="TRK", base_model="wan2.2-t2v-a14b", expert="high")
    return loras.add(conn, "truck-e8", "https://hf.example/o/truck/resolve/main/e8.safetensors",
                     trigger="TRK", base_model="wan2.2-t2v-a14b", expert="both")


def daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LORAD_HANDLER_MODULES"] = "test_handlers"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE / "support"), str(HERE.parent), env.get("PYTHONPATH", "")])
    return env


class DaemonProcess:
    def __init__(self, ws, output: Path | None = None):
        self.ws = ws
        self.proc: subprocess.Popen | None = None
        # a file, not a pipe nobody reads: a daemon writing a lot to it must never block
        self.output = output or ws.root.parent / "daemon.out"

    def start(self) -> subprocess.Popen:
        from lorad.core import daemon

        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lorad", "-w", str(self.ws.root), "daemon", "run"],
                env=daemon_env(), stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: daemon.status(self.ws).pid == self.proc.pid or self.proc.poll() is not None,
                 message="daemon to take the lock")
        assert self.proc.poll() is None, self.output.read_text(errors="replace")
        return self.proc

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def daemon_proc(ws):
    d = DaemonProcess(ws)
    yield d
    d.stop()


# ---- the fault table: each fault test records the counts that matter -----------------------

FAULT_ROWS_ENV = "LORAD_FAULT_ROWS"  # a JSON-lines file every test process appends to


def pytest_configure(config):
    """The run's fault rows file, made once by the controlling process (xdist workers inherit
    it through the environment, and the summary reads it at the end)."""
    if not hasattr(config, "workerinput") and not os.environ.get(FAULT_ROWS_ENV):
        import tempfile

        handle, path = tempfile.mkstemp(prefix="lorad-faults-", suffix=".jsonl")
        os.close(handle)
        os.environ[FAULT_ROWS_ENV] = path
        config._lorad_fault_rows = path


@pytest.fixture
def fault_report(request):
    """`fault_report("disk full, 40 generations", expected=40, observed=40, ...)`: one row of
    the table printed at the end of the run (and by `bench/faults.py`). `expected`/`observed`
    are the counts that must match (requests accepted vs generations, points printed vs
    stored, rows before vs after); `daemon_alive` is None where no daemon is involved."""

    def record(fault: str, *, counted: str, expected, observed, daemon_alive: bool | None = None,
               note: str = "") -> None:
        import json

        row = {"fault": fault, "counted": counted, "expected": expected,
               "observed": observed, "daemon_alive": daemon_alive, "note": note,
               "ok": expected == observed and daemon_alive is not False,
               "test": request.node.nodeid}
        path = os.environ.get(FAULT_ROWS_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")

    return record


def pytest_terminal_summary(terminalreporter, config):
    import json

    path = getattr(config, "_lorad_fault_rows", None)
    if not path or not Path(path).exists():
        return
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    Path(path).unlink(missing_ok=True)
    if not rows:
        return
    from fault_table import render

    rows.sort(key=lambda r: r["test"])
    terminalreporter.write_sep("-", f"faults: {len(rows)} scripted")
    terminalreporter.write_line(render(rows))
    out = os.environ.get("LORAD_FAULT_TABLE")
    if out:
        Path(out).write_text(json.dumps(rows, indent=1))


@pytest.fixture
def notices(monkeypatch):
    """A loopback receiver the daemon's notifications go to ($LORAD_NOTIFY_URLS)."""
    from loopback import running
    from notify_receiver import Receiver

    with running(Receiver()) as receiver:
        monkeypatch.setenv("LORAD_NOTIFY_URLS", receiver.url)
        yield receiver
