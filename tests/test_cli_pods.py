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


def test_a_missing_key_file_is_a_clear_error_not_a_retry(ws, capsys, tmp_path):
    """It was taken for a dropped connection and retried for 15 minutes."""
    port = closed_port()
    key = tmp_path / "gone_ed25519"
    assert main(["-w", str(ws.root), "pod", "add", "box", "--host", "127.0.0.1", "--port",
                 str(port), "--key", str(key)]) == 0
    capsys.readouterr()
    assert main(["-w", str(ws.root), "pod", "check", "box"]) == 1
    err = capsys.readouterr().err
    assert f"the key file {key} of root@127.0.0.1:{port} is not there" in err


def test_the_key_file_error_is_permanent_for_jobs():
    from lorad.core.errors import is_transient
    from lorad.training.ssh import Endpoint, RemoteError, Shell

    try:
        Shell(Endpoint("127.0.0.1", closed_port(), "root", "/nowhere/key")).connect()
    except RemoteError as exc:
        assert not is_transient(exc)
    else:
        raise AssertionError("connected without a key file")
