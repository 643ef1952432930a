"""A real OpenSSH server on loopback, playing a GPU pod for the tests.

`start_sshd(tmp_dir)` runs the system `sshd -D -e -f <config>` on 127.0.0.1 at a free port with a
fresh ed25519 host key and client key, public-key auth only, SFTP (`internal-sftp`), and its pid
file, logs and authorized_keys inside `tmp_dir`. It works as root (creating /run/sshd if it is
missing) and as a normal user (who can then only log in as themself).

The remote environment is set by sshd itself with `SetEnv` (OpenSSH >= 7.8; these override the
defaults sshd gives a session, including PATH and HOME), so commands that lorad sends need no
prefix:

* `PATH` starts with `<root>/musubi-tuner/bin` (`python`, `accelerate`, `nvidia-smi` of the
  musubi-tuner double, copied to `root/musubi-tuner` as the pod's checkout), then the directory
  of the python running the tests (for `python3`), then the system dirs;
* `HOME` is `<tmp_dir>/home`, so the real home directory's shell rc files (which may put pyenv
  shims in front of PATH) are not read and nothing is written there;
* `MUSUBI_DOUBLE_STATE` is the double's state dir (mode file, invocation log, pids),
  `MUSUBI_DOUBLE_PYTHON` the interpreter the double's `python` runs, `PYTHONDONTWRITEBYTECODE=1`.

The session's working directory is still the user's real home (sshd chdirs there before the
shell starts): commands should `cd` to absolute paths, as lorad does with `musubi_dir`.

`server.env_prefix` is the same setting as a shell prefix, for running the double without ssh.
`AcceptEnv MUSUBI_DOUBLE_*` lets a client pass the double's switches per command (paramiko:
`exec_command(cmd, environment={"MUSUBI_DOUBLE_MODE": "oom"})`); `server.configure_double()`
sets them for every command instead (env vars win over it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    from helpers import wait_for
except ImportError:  # imported as a package module
    from .helpers import wait_for

DOUBLE_DIR = Path(__file__).resolve().parent / "musubi_double"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SshdError(RuntimeError):
    pass


def _sshd_binary() -> str:
    found = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:" + os.environ.get("PATH", ""))
    if not found:
        raise SshdError("OpenSSH server not installed (no sshd): apt-get install openssh-server")
    return os.path.abspath(found)  # sshd refuses to re-exec itself from a relative path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _ppid(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SshServer:
    """One loopback sshd. Attributes: host, port, user, key_file (client private key),
    host_key_line ("ssh-ed25519 AAAA..."), root (the pod's /workspace), musubi_dir (root/musubi-tuner,
    a copy of the double: a musubi-tuner checkout), bin_dir (its bin/, first on the remote PATH),
    state_dir (the double's switches and logs), home (the remote HOME)."""

    host = "127.0.0.1"

    def __init__(self, tmp_dir: Path):
        self.dir = Path(tmp_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sshd = _sshd_binary()
        self.port = _free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.key_file = self.dir / "client_ed25519"
        self.host_key_file = self.dir / "ssh_host_ed25519_key"
        self.authorized_keys = self.dir / "authorized_keys"
        self.config_file = self.dir / "sshd_config"
        self.pid_file = self.dir / "sshd.pid"
        self.log_file = self.dir / "sshd.log"
        self.home = self.dir / "home"
        self.root = self.dir / "workspace"
        self.state_dir = self.dir / "musubi_double_state"
        self.double_dir = DOUBLE_DIR
        self.musubi_dir = self.root / "musubi-tuner"
        self.bin_dir = self.musubi_dir / "bin"
        for d in (self.home, self.root, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not self.musubi_dir.exists():  # the pod's own copy: whatever is written there stays in tmp_dir
            shutil.copytree(DOUBLE_DIR, self.musubi_dir, ignore=shutil.ignore_patterns("__pycache__"))
        for tool in self.bin_dir.iterdir():  # in case a checkout lost the executable bits
            tool.chmod(0o755)
        self.python = sys.executable
        self.remote_env = {
            "PATH": f"{self.bin_dir}:{os.path.dirname(sys.executable)}:{SYSTEM_PATH}",
            "HOME": str(self.home),
            "MUSUBI_DOUBLE_STATE": str(self.state_dir),
            "MUSUBI_DOUBLE_PYTHON": self.python,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.proc: subprocess.Popen | None = None
        self._log = None
        _keygen(self.key_file, "lorad-test-client")
        self.authorized_keys.write_text(self.key_file.with_name(self.key_file.name + ".pub").read_text())
        self._new_host_key()

    # ----------------------------------------------------------------- properties
    @property
    def env_prefix(self) -> str:
        """`export PATH=... HOME=...;` - the remote environment as a shell prefix."""
        return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in self.remote_env.items()) + ";"

    @property
    def known_hosts_line(self) -> str:
        """The known_hosts entry for this server (non-22 ports are written `[host]:port`)."""
        return f"[{self.host}]:{self.port} {self.host_key_line}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    # ------------------------------------------------------------------ lifecycle
    def _new_host_key(self) -> None:
        _keygen(self.host_key_file, "lorad-test-host")
        pub = self.host_key_file.with_name(self.host_key_file.name + ".pub").read_text().split()
        self.host_key_line = f"{pub[0]} {pub[1]}"

    def _write_config(self) -> None:
        setenv = " ".join(f'"{k}={v}"' for k, v in self.remote_env.items())
        root_login = "yes" if os.getuid() == 0 else "no"
        self.config_file.write_text("\n".join([
            f"ListenAddress {self.host}",
            f"Port {self.port}",
            f"HostKey {self.host_key_file}",
            f"PidFile {self.pid_file}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"AllowUsers {self.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            f"PermitRootLogin {root_login}",
            "StrictModes no",
            "UsePAM no",
            "PermitUserEnvironment no",
            "AcceptEnv MUSUBI_DOUBLE_*",
            f"SetEnv {setenv}",
            "Subsystem sftp internal-sftp",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "LogLevel INFO",
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "LoginGraceTime 30",
            "",
        ]))

    def _privsep_dir(self) -> None:
        if os.getuid() == 0 and not os.path.isdir("/run/sshd"):
            with contextlib.suppress(OSError):
                os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    def start(self, timeout: float = 15.0) -> SshServer:
        if self.proc and self.proc.poll() is None:
            return self
        self._privsep_dir()
        self._write_config()
        self.pid_file.unlink(missing_ok=True)
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([self.sshd, "-D", "-e", "-f", str(self.config_file)],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True)

        def accepting() -> bool:
            if self.proc.poll() is not None:
                return True
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                try:
                    s.connect((self.host, self.port))
                except OSError:
                    return False
                return True

        try:
            wait_for(accepting, timeout=timeout, message=f"sshd to accept on port {self.port}")
        except AssertionError as e:
            self.stop()
            raise SshdError(f"{e}\n{self.log_text()}") from None
        if self.proc.poll() is not None:
            log = self.log_text()
            hint = ""
            if "privilege separation directory" in log:
                hint = ("\nsshd needs its privilege separation directory /run/sshd: create it as root "
                        "(mkdir -p /run/sshd) or run the tests as a normal user")
            self._close_log()
            raise SshdError(f"sshd exited with code {self.proc.returncode}:\n{log}{hint}")
        return self

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def connection_pids(self) -> list[int]:
        """The per-connection sshd processes (children of the listener and their sshd children)."""
        if not self.proc or self.proc.poll() is not None:
            return []
        # sshd itself, or sshd-session / sshd-auth (OpenSSH >= 9.8), never the commands they run
        return [p for p in _descendants(self.proc.pid)
                if os.path.basename(_exe(p) or "").startswith("sshd")]

    def drop_connections(self, timeout: float = 10.0) -> int:
        """Kill every per-connection sshd (SIGKILL, no goodbye): live sessions break the way a
        network drop breaks them, commands they started keep running, and the listener keeps
        accepting new connections. Returns how many processes were killed."""
        pids = self.connection_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(_alive(p) for p in pids), timeout=timeout,
                 message="per-connection sshd processes to die")
        return len(pids)

    def _stop_listener(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close_log()

    def rotate_host_key(self) -> str:
        """A new pod at the same address: drop every session, generate a new host key and restart
        sshd on the same port. Returns the new host_key_line."""
        self.drop_connections()
        self._stop_listener()
        self._new_host_key()
        self.start()
        return self.host_key_line

    def stop(self) -> None:
        """Stop sshd (listener and sessions) and any musubi double processes still running."""
        with contextlib.suppress(AssertionError):
            self.drop_connections()
        self._stop_listener()
        self.kill_double_processes()

    # --------------------------------------------------------- the musubi double
    def configure_double(self, mode: str = "normal", step_seconds: float | None = None,
                         fail_at: int | None = None, **extra) -> None:
        """Switches for every double run through this server (MUSUBI_DOUBLE_* env vars set on the
        command win). Call with no arguments to reset."""
        config = {"mode": mode, "step_seconds": step_seconds, "fail_at": fail_at, **extra}
        path = self.state_dir / "config.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
        tmp.replace(path)

    def invocations(self) -> list[dict]:
        """Every double script run so far: {"script", "argv", "cwd", "pid", "time"}."""
        path = self.state_dir / "invocations.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def double_pids(self) -> list[int]:
        """Live double processes (each script registers itself in state_dir/pids)."""
        pids_dir = self.state_dir / "pids"
        found = []
        for entry in pids_dir.glob("*") if pids_dir.is_dir() else []:
            pid = int(entry.name)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                entry.unlink(missing_ok=True)
                continue
            if _alive(pid) and (b"musubi_tuner" in cmdline or str(self.bin_dir).encode() in cmdline):
                found.append(pid)
            else:
                entry.unlink(missing_ok=True)
        return found

    def kill_double_processes(self) -> None:
        for pid in self.double_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # ---------------------------------------------------------------- client side
    def client(self, timeout: float = 10.0, **kwargs):
        """A connected paramiko SSHClient that pins this server's host key."""
        import paramiko

        client = paramiko.SSHClient()
        keytype, b64 = self.host_key_line.split()
        key = paramiko.PKey.from_type_string(keytype, base64.b64decode(b64))
        client.get_host_keys().add(f"[{self.host}]:{self.port}", keytype, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(self.host, port=self.port, username=self.user, key_filename=str(self.key_file),
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       allow_agent=False, look_for_keys=False, **kwargs)
        return client

    def ssh_command(self, command: str) -> list[str]:
        """argv for the OpenSSH client running `command` on this server (host key pinned)."""
        known = self.dir / "known_hosts"
        known.write_text(self.known_hosts_line + "\n")
        return ["ssh", "-p", str(self.port), "-i", str(self.key_file), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"{self.user}@{self.host}", command]


@contextlib.contextmanager
def start_sshd(tmp_dir: Path) -> Iterator[SshServer]:
    """Start a loopback sshd in `tmp_dir`; stop it (and the double's processes) on exit."""
    server = SshServer(tmp_dir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory) -> Iterator[SshServer]:
    """A started loopback sshd shared by one test module."""
    with start_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def sshd_pod(sshd_server) -> Iterator[SshServer]:
    """`sshd_server` with the double reset to normal mode before and after the test."""
    sshd_server.configure_double()
    yield sshd_server
    sshd_server.configure_double()
    sshd_server.kill_double_processes()

