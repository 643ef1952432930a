"""The SSH client for pods (paramiko): pinned host keys, commands, resumable verified transfers,
detached processes and reading a remote log from a byte offset.

Host keys: the first connection after a pod (re)start records the key; every later connection
must present the same one, otherwise it is refused. Remote commands are built with shlex.quote.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from lorad.core.errors import LoradError, TransientError
from lorad.core.files import sha256_file

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # what `export NAME=value` accepts
CHUNK = 1 << 20
WINDOW = 64 << 20
PACKET = 256 << 10


class HostKeyMismatch(LoradError):
    pass


class SshUnavailable(TransientError):
    """The pod cannot be reached right now; retried with backoff."""


class RemoteError(LoradError):
    pass


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    key_file: str | None = None

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


class _Accept(paramiko.MissingHostKeyPolicy):
    """Accept any key during the handshake; `Shell.connect` compares it with the pin after."""

    def missing_host_key(self, client, hostname, key) -> None:
        return None


Progress = Callable[[int, int], None]


# what a broken connection looks like from paramiko's SFTP client
SFTP_ERRORS = (OSError, paramiko.SSHException, EOFError)


def unreachable_reason(exc: BaseException, timeout: float) -> str:
    """Why a connection failed, as words a person can act on (not an exception's class)."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) or isinstance(
            exc, ConnectionRefusedError):
        return "the connection was refused; is the pod running, and are the host and port right?"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:.0f} s; is the pod running and reachable from here?"
    if isinstance(exc, socket.gaierror):
        return "the host name is unknown; check the pod's host"
    if isinstance(exc, (EOFError, ConnectionResetError)) or "Error reading SSH protocol banner" \
            in str(exc):
        return "the connection closed before SSH answered; the pod may still be starting"
    text = str(exc).strip() or "the connection failed"
    return text[0].lower() + text[1:]


def unescape_sum_name(name: str) -> str:
    """A file name as sha256sum prints it when it holds a backslash or a newline."""
    out, chars = [], iter(name)
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            out.append({"\\": "\\", "n": "\n", "r": "\r"}.get(nxt, "\\" + nxt))
        else:
            out.append(c)
    return "".join(out)


def _missing(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == 2  # FileNotFoundError included


class Shell:
    def __init__(self, endpoint: Endpoint, pinned_host_key: str | None = None,
                 timeout: float = 15.0, read_timeout: float = 60.0) -> None:
        self.endpoint = endpoint
        self.pinned = pinned_host_key
        self.timeout = timeout
        self.read_timeout = read_timeout
        self.client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self.host_key: str | None = None

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> str:
        """Connect and check the host key; returns the key line seen (to pin)."""
        ep = self.endpoint
        if ep.key_file and not Path(ep.key_file).expanduser().is_file():
            # not a dropped connection: no reconnect will make the file appear
            raise RemoteError(f"the key file {ep.key_file} of {ep} is not there: put it back, "
                              "or give the pod another key (lorad pod add ... --key FILE)")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_Accept())
        try:
            client.connect(ep.host, port=ep.port, username=ep.user, key_filename=ep.key_file,
                           timeout=self.timeout, banner_timeout=self.timeout,
                           auth_timeout=self.timeout, look_for_keys=ep.key_file is None,
                           allow_agent=ep.key_file is None)
        except paramiko.AuthenticationException as exc:
            client.close()
            raise RemoteError(f"{ep}: the key was refused ({exc}); check the pod's user and "
                              "key file") from None
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            raise SshUnavailable(f"cannot reach {ep}: {unreachable_reason(exc, self.timeout)}") \
                from None
        seen = key_line(client.get_transport().get_remote_server_key())
        if self.pinned and seen != self.pinned:
            client.close()
            raise HostKeyMismatch(
                f"{ep}: host key changed since it was pinned ({self.pinned[:40]}... now "
                f"{seen[:40]}...). Refusing to connect: someone may be in between. If the pod "
                "was re-created, clear the pin with `lorad pod trust NAME`")
        self.client = client
        self.host_key = seen
        return seen

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def __enter__(self) -> Shell:
        if self.client is None:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                # a wide window keeps pipelined writes flowing on fast links
                self._sftp = paramiko.SFTPClient.from_transport(
                    self.client.get_transport(), window_size=WINDOW, max_packet_size=PACKET)
                # a frozen host must not hang a read forever: it times out, and the caller
                # reconnects (and says since when the pod is unreachable)
                self._sftp.get_channel().settimeout(self.read_timeout)
            except SFTP_ERRORS as exc:
                raise SshUnavailable(f"{self.endpoint}: SFTP failed ({exc})") from None
        return self._sftp

    # -- commands ---------------------------------------------------------------------------
    def run(self, command: str, *, timeout: float = 120.0, check: bool = True
            ) -> tuple[int, str, str]:
        try:
            _in, out, err = self.client.exec_command(command, timeout=timeout)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
            code = out.channel.recv_exit_status()
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
            raise SshUnavailable(f"{self.endpoint}: connection lost ({exc})") from None
        if check and code != 0:
            raise RemoteError(f"`{command[:120]}` failed on the pod (exit {code}): "
                              f"{(stderr or stdout).strip()[-300:]}")
        return code, stdout, stderr

    def size(self, path: str) -> int | None:
        try:
            return self.sftp.stat(path).st_size
        except SFTP_ERRORS as exc:
            if _missing(exc):
                return None
            raise SshUnavailable(f"{self.endpoint}: {exc}") from None

    def exists(self, path: str) -> bool:
        return self.size(path) is not None

    def sha256(self, path: str) -> str:
        q = shlex.quote(path)
        _c, out, _e = self.run(f"sha256sum -- {q} 2>/dev/null || python3 -c "
                               f"\"import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],'rb')"
                               f".read()).hexdigest())\" {q}")
        return out.split()[0]

    def read_from(self, path: str, offset: int, limit: int = 4 * CHUNK) -> bytes:
        """Bytes of a remote file from `offset` (at most `limit`); empty if not there yet."""
        try:
            with self.sftp.open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except SFTP_ERRORS as exc:
            if _missing(exc):
                return b""
            raise SshUnavailable(f"{self.endpoint}: reading {path} failed ({exc})") from None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(self.sftp.listdir(path))
        except SFTP_ERRORS as exc:
            if _missing(exc):
                return []
            raise SshUnavailable(f"{self.endpoint}: listing {path} failed ({exc})") from None

    def mkdirs(self, path: str) -> None:
        self.run(f"mkdir -p -- {shlex.quote(path)}")

    # -- transfers --------------------------------------------------------------------------
    def upload(self, local: Path, remote: str, progress: Progress | None = None) -> bool:
        """Copy a file to the pod, resuming a `.part` left by a break and verifying size and
        SHA-256 there. Returns False when an identical file was already there."""
        local_size = local.stat().st_size
        if self.size(remote) == local_size and self.sha256(remote) == sha256_file(local):
            return False
        part = remote + ".part"
        done = self.size(part) or 0
        if done > local_size:
            done = 0
        digest = hashlib.sha256()
        try:
            with local.open("rb") as src, self.sftp.open(part, "ab" if done else "wb") as dst:
                dst.set_pipelined(True)
                if done:
                    while src.tell() < done:  # hash what the pod already has, locally
                        digest.update(src.read(min(CHUNK, done - src.tell())))
                while chunk := src.read(CHUNK):
                    digest.update(chunk)  # one read of the file: hashing rides on the upload
                    dst.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, local_size)
        except SFTP_ERRORS as exc:
            raise SshUnavailable(f"{self.endpoint}: upload of {local.name} broke at {done} "
                                 f"bytes ({exc}); it resumes from there") from None
        local_hash = digest.hexdigest()
        if self.size(part) != local_size or self.sha256(part) != local_hash:
            self.run(f"rm -f -- {shlex.quote(part)}", check=False)
            raise SshUnavailable(f"{local.name}: the copy on the pod does not match (size or "
                                 "SHA-256); it will be sent again")
        self.sftp.posix_rename(part, remote)
        return True

    def upload_tree(self, files: list[tuple[Path, str]],
                    progress: Progress | None = None) -> int:
        """Upload many files, fastest way available: the OpenSSH `sftp` client (`reput`
        resumes a `.part`) with this shell's pinned host key, falling back to paramiko. Each
        file is verified by size and SHA-256 on the pod before its `.part` is renamed; files
        already there and identical are skipped. Returns the number of files sent."""
        if not files:
            return 0
        import concurrent.futures

        remote_hashes = self.sha256_many([r for _p, r in files])
        local_hashes = {str(p): sha256_file(p) for p, r in files if r in remote_hashes}
        todo = [(p, r) for p, r in files
                if r not in remote_hashes or remote_hashes[r] != local_hashes[str(p)]]
        if not todo:
            return 0
        dirs = sorted({posixpath_dirname(r) for _p, r in todo})
        self.run("mkdir -p -- " + " ".join(shlex.quote(d) for d in dirs))  # either way in
        # hash the new files while they travel: the checksum costs no extra wall time
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(lambda: {str(p): sha256_file(p) for p, _r in todo
                                           if str(p) not in local_hashes})
            sent = self._openssh_put(todo, progress)
            local_hashes.update(pending.result())
        if not sent:
            for path, remote in todo:
                self.upload(path, remote, progress)
            return len(todo)
        parts = self.sha256_many([r + ".part" for _p, r in todo])
        bad = [r for p, r in todo if parts.get(r + ".part") != local_hashes[str(p)]]
        if bad:
            self.run("rm -f -- " + " ".join(shlex.quote(r + ".part") for r in bad), check=False)
            raise SshUnavailable(f"{len(bad)} uploaded file(s) do not match on the pod (size or "
                                 "SHA-256); they will be sent again")
        self.run("\n".join(f"mv -f -- {shlex.quote(r + '.part')} {shlex.quote(r)}"
                           for _p, r in todo))
        return len(todo)

    def sha256_many(self, paths: list[str]) -> dict[str, str]:
        """SHA-256 of remote files that exist (one command for all of them)."""
        if not paths:
            return {}
        quoted = " ".join(shlex.quote(p) for p in paths)
        _c, out, _e = self.run(f"for f in {quoted}; do [ -f \"$f\" ] && sha256sum -- \"$f\"; "
                               "done; true", check=False)
        found = {}
        for line in out.splitlines():
            digest, _sep, name = line.partition("  ")
            if digest.startswith("\\"):  # GNU's mark of a name with \\ or \n escaped in it
                digest, name = digest[1:], unescape_sum_name(name)
            found[name] = digest
        return found

    def _openssh_put(self, files: list[tuple[Path, str]], progress: Progress | None) -> bool:
        import os
        import shutil
        import subprocess
        import tempfile

        ep = self.endpoint
        if not shutil.which("sftp") or not ep.key_file or not self.host_key:
            return False
        with tempfile.TemporaryDirectory(prefix="lorad-sftp-") as tmp:
            known = Path(tmp) / "known_hosts"
            host = ep.host if ep.port == 22 else f"[{ep.host}]:{ep.port}"
            known.write_text(f"{host} {self.host_key}\n")
            quoted = " ".join(shlex.quote(r + ".part") for _p, r in files)
            _c, out, _e = self.run(f"for f in {quoted}; do [ -f \"$f\" ] && echo \"$f\"; done; "
                                   "true", check=False)
            partial = set(out.splitlines())  # a broken upload left these: resume them
            batch = Path(tmp) / "batch"
            batch.write_text("".join(
                f'{"reput" if r + ".part" in partial else "put"} {_sftp_quote(str(p))} '
                f'{_sftp_quote(r + ".part")}\n' for p, r in files))
            total = sum(p.stat().st_size for p, _r in files)
            proc = subprocess.run(
                ["sftp", "-q", "-b", str(batch), "-P", str(ep.port), "-i", ep.key_file,
                 "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known}",
                 "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                 "-o", "LogLevel=ERROR", f"{ep.user}@{ep.host}"],
                capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, check=False)
            if proc.returncode != 0:
                raise SshUnavailable(f"{ep}: sftp upload broke ({proc.stderr.strip()[-200:]}); it "
                                     "resumes from the .part files")
            if progress:
                progress(total, total)
        return True

    def download(self, remote: str, local: Path, progress: Progress | None = None) -> str:
        """Fetch a file, resuming `local.part`; returns its SHA-256, checked against the pod's."""
        total = self.size(remote)
        if total is None:
            raise RemoteError(f"{remote} is not on the pod")
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(local.name + ".part")
        done = part.stat().st_size if part.exists() else 0
        if done > total:
            part.unlink()
            done = 0
        try:
            with self.sftp.open(remote, "rb") as src, part.open("ab") as dst:
                if done == 0:
                    src.prefetch(total)  # pipelined reads: much faster than one at a time
                src.seek(done)
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except SFTP_ERRORS as exc:
            raise SshUnavailable(f"{self.endpoint}: download of {remote} broke at {done} bytes "
                                 f"({exc}); it resumes from there") from None
        digest = sha256_file(part)
        if part.stat().st_size != total or digest != self.sha256(remote):
            part.unlink()
            raise SshUnavailable(f"{remote}: the downloaded copy does not match the pod's "
                                 "(size or SHA-256); it will be fetched again")
        part.replace(local)
        return digest

    # -- detached processes -----------------------------------------------------------------
    def start_detached(self, cwd: str, command: str, *, log: str, exit_file: str,
                       env: dict[str, str] | None = None) -> int:
        """Start `command` in its own session on the pod, all streams redirected, so it lives on
        when SSH drops. Its exit code lands in `exit_file`. Returns its pid (= process group)."""
        env = {"PYTHONUNBUFFERED": "1", **(env or {})}
        bad = [k for k in env if not ENV_NAME.match(k)]
        if bad:  # a name is not quoted in `export NAME=...`: it must be a name
            raise RemoteError(f"environment variable name {bad[0]!r} is not a name "
                              "([A-Za-z_][A-Za-z0-9_]*): refusing to run it on the pod")
        exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
        q_exit = shlex.quote(exit_file)
        # the command may be a list (`a && b`): the subshell sends all of it to the log
        inner = (f"export {exports}; ( {command}\n) > {shlex.quote(log)} 2>&1 < /dev/null; "
                 f"echo $? > {q_exit}.tmp && mv {q_exit}.tmp {q_exit}")
        # One command per line: `a && b &` would background the whole list in a subshell that
        # holds the SSH channel open until training ends, and $! would name that subshell.
        script = "\n".join([
            f"cd {shlex.quote(cwd)} || exit 1",
            f"rm -f {q_exit}",
            f"setsid nohup bash -c {shlex.quote(inner)} > /dev/null 2>&1 < /dev/null &",
            "echo $!"])
        _c, out, _e = self.run(script)
        return int(out.strip().splitlines()[-1])

    def alive(self, pid: int) -> bool:
        code, _o, _e = self.run(f"kill -0 {int(pid)}", check=False)
        return code == 0

    def exit_code(self, exit_file: str) -> int | None:
        data = self.read_from(exit_file, 0, 64).strip()
        return int(data) if data else None

    def kill_group(self, pid: int, sig: str = "TERM") -> None:
        """Stop a detached process and its children by process group: by pid, never by name."""
        self.run(f"kill -{sig} -- -{int(pid)} 2>/dev/null || kill -{sig} {int(pid)}",
                 check=False)


def is_dir(attr) -> bool:
    return stat.S_ISDIR(attr.st_mode)


def posixpath_dirname(path: str) -> str:
    import posixpath

    return posixpath.dirname(path)


def _sftp_quote(text: str) -> str:
    """A path quoted for an sftp batch file (double quotes, backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
