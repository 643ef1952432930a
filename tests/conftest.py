from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "support"))

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


def daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LORAD_HANDLER_MODULES"] = "test_handlers"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE / "support"), str(HERE.parent), env.get("PYTHONPATH", "")])
    return env


class DaemonProcess:
    def __init__(self, ws):
        self.ws = ws
        self.proc: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        from lorad.core import daemon

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lorad", "-w", str(self.ws.root), "daemon", "run"],
            env=daemon_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for(lambda: daemon.status(self.ws).pid == self.proc.pid or self.proc.poll() is not None,
                 message="daemon to take the lock")
        assert self.proc.poll() is None, self.proc.stdout.read().decode()
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
