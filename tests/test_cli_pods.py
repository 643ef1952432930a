"""`lorad pod ...` from the command line: what a person reads when a pod cannot be reached."""

from __future__ import annotations

import socket

from lorad.cli import main


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host_is_one_sentence(ws, capsys):
    port = closed_port()
    assert main(["-w", str(ws.root), "pod", "add", "box", "--host", "127.0.0.1", "--port",
                 str(port)]) == 0
    capsys.readouterr()
    code = main(["-w", str(ws.root), "pod", "check", "box"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (f"lorad: error: cannot reach root@127.0.0.1:{port}: the connection was "
                   "refused; is the pod running, and are the host and port right?\n")
