"""The `pod` generation service: a request is a declared inference command run detached on one
of the user's pods (lorad.evaluation.endpoints); its outputs come down like fal's, pass the
same checks, and are rated and ranked alike.

A request's life on the pod: its inputs go to `REMOTE/eval/inputs/` (by content: a file sent
once is not sent again; a checkpoint still on the pod where its run left it, with the same
SHA-256, is used where it is), the command starts detached in `REMOTE/eval/REQUEST/` with its
log and exit code there (so a dropped connection or a daemon restart loses nothing and the
request is never started twice: its handle is stored the moment it started), and the pod is
held (its idle stop waits) until the result is read. The cost is the pod time it took at the
pod's rate; on a pod lorad powers (RunPod) that time is already in the pod's booked uptime, so
only the generation shows it. The command may print one JSON object of numbers on a line of
its own: the generation's metrics.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import threading
import uuid
from pathlib import Path
from typing import Any

from lorad.core.errors import LoradError, TransientError
from lorad.core.files import sha256_file
from lorad.evaluation import endpoints as pod_endpoints
from lorad.generation import endpoints
from lorad.generation.services import (
    SERVICES,
    Request,
    RequestStatus,
    ServiceError,
    SubmitUnknown,
)
from lorad.training import pods
from lorad.training.ssh import RemoteError, SshUnavailable
from lorad.training.trainers.command import templates

LOCAL = "file://"
_SENDING: dict[tuple[int, str], threading.Lock] = {}  # one upload of a file to a pod at a time
POD_URL = "pod://"  # pod://POD_ID/path: an output on a pod
TAIL_BYTES = 64 * 1024


def metrics_in(log: str) -> dict[str, float]:
    """The last line of the log that is a JSON object of numbers (or {})."""
    for line in reversed(log.splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        numbers = {k: float(v) for k, v in data.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:
            return numbers
    return {}


class PodSession:
    def __init__(self, workspace: Any):
        self.ws = workspace
        self.conn = workspace.connect()
        self.shells: dict[int, Any] = {}

    # -- the pod ----------------------------------------------------------------------------
    def pod(self, name: str) -> pods.Pod:
        return pods.get(self.conn, name)

    def shell(self, pod: pods.Pod):
        if pod.id not in self.shells:
            try:
                self.shells[pod.id] = pods.open_shell(self.conn, pod)
            except (SshUnavailable, OSError) as exc:
                raise TransientError(f"pod {pod.name} cannot be reached: {exc}") from None
        return self.shells[pod.id]

    def send(self, shell, pod: pods.Pod, local: str, digest: str | None = None) -> str:
        """A local input on the pod, by content: sent once, a copy already there with the same
        SHA-256 (known, or hashed here) is used as it is."""
        path = Path(local.removeprefix(LOCAL))
        if not path.is_file():
            raise ServiceError(f"{path} is not there any more")
        digest = digest or sha256_file(path)
        remote = posixpath.join(pod.remote_dir, "eval", "inputs", f"{digest[:16]}-{path.name}")
        with _SENDING.setdefault((pod.id, remote), threading.Lock()):  # a sweep's requests at once
            if not self.same_bytes(shell, remote, digest):
                shell.upload_tree([(path, remote)])
        return remote

    @staticmethod
    def same_bytes(shell, remote: str, digest: str | None) -> bool:
        """The pod has `remote` with exactly these bytes."""
        if not remote or not digest:
            return False
        try:
            return bool(shell.size(remote)) and shell.sha256(remote) == digest
        except RemoteError:
            return False

    # -- the service's calls ------------------------------------------------------------------
    def submit(self, endpoint: str, arguments: dict[str, Any]) -> Request:
        try:
            command_of = pod_endpoints.command_of(endpoint)
        except LoradError as exc:
            raise ServiceError(str(exc)) from None
        spec = command_of.spec
        pod = pods.bring_up(self.ws, self.pod(arguments["pod"]).id,
                            timeout=self.ws.config()["training"]["runpod_start_timeout_seconds"])
        shell = self.shell(pod)
        values: dict[str, Any] = {**command_of.options, **spec.params}  # declared defaults
        for key, value in arguments.items():
            if key in pod_endpoints.REQUEST_PARAMS:
                continue
            is_file = key in command_of.file_params and isinstance(value, str) \
                and value.startswith(LOCAL)
            values[key] = self.send(shell, pod, value) if is_file else value
        if command_of.needs_checkpoint:  # where its run left it, if the pod still has it
            remote, digest = arguments.get("checkpoint_remote"), arguments.get("checkpoint_sha256")
            values["checkpoint"] = (remote if self.same_bytes(shell, remote, digest) else
                                    self.send(shell, pod, arguments["checkpoint"], digest))
        request_id = uuid.uuid4().hex[:16]
        folder = posixpath.join(pod.remote_dir, "eval", request_id)
        out = posixpath.join(folder, "out")
        values.update(out=out, workdir=command_of.workdir, gpus=len(pod.gpus or []) or 1)
        try:
            command = templates.render(spec.command, values)
            cwd = command_of.workdir
            if spec.cwd:
                cwd = " ".join(shlex.split(templates.render(
                    spec.cwd, {**command_of.options, "workdir": command_of.workdir})))
        except templates.TemplateError as exc:
            raise ServiceError(f"{endpoint}: {exc}") from None
        shell.run(f"mkdir -p {shlex.quote(out)}")
        _c, now, _e = shell.run("date +%s.%N")
        # the command's own end, to the split second (its cost is the time it took)
        ended = shlex.quote(posixpath.join(folder, "ended"))
        command = f"{{ {command}\n}}; code=$?; date +%s.%N > {ended}; exit $code"
        handle = {"pod": pod.name, "pod_id": pod.id, "dir": folder, "out": out,
                  "started": float(now.strip() or 0), "rate": pod.cost_per_hour,
                  "booked_elsewhere": pods.powered_by_lorad(pod), "endpoint": endpoint}
        pods.hold(self.conn, pod.id, f"eval {request_id}")
        try:
            pid = shell.start_detached(cwd, command, log=posixpath.join(folder, "log"),
                                       exit_file=posixpath.join(folder, "exit"),
                                       env={**command_of.env, **spec.env})
        except (SshUnavailable, OSError) as exc:
            # it may have started: never start it again by itself
            raise SubmitUnknown(f"pod {pod.name}: the start of the command was cut off "
                                f"({exc}); look in {folder} on the pod") from None
        return Request(request_id, {**handle, "pid": pid})

    def _shell_for(self, handle: dict[str, Any]):
        return self.shell(pods.get_by_id(self.conn, handle["pod_id"]))

    def status(self, handle: dict[str, Any]) -> RequestStatus:
        shell = self._shell_for(handle)
        code = shell.exit_code(posixpath.join(handle["dir"], "exit"))
        if code is None and shell.alive(int(handle["pid"])):
            return RequestStatus("running")
        self.release(handle)  # ended, however: the pod's idle stop need not wait for it
        if code is None:
            code = shell.exit_code(posixpath.join(handle["dir"], "exit"))
            if code is None:
                return RequestStatus("done", error="the command on the pod is gone without an "
                                                   "exit code (killed?)", error_type="killed")
        if code == 0:
            return RequestStatus("done")
        tail = self.log(handle)
        last = "\n".join(tail.splitlines()[-10:])
        why = pod_endpoints.command_of(handle["endpoint"]).failure_reason(tail) \
            or f"exit code {code}"
        return RequestStatus("done", error=f"{why}. Last lines:\n{last}",
                             error_type="command_failed")

    def log(self, handle: dict[str, Any]) -> str:
        shell = self._shell_for(handle)
        path = posixpath.join(handle["dir"], "log")
        size = shell.size(path) or 0
        data = shell.read_from(path, max(0, size - TAIL_BYTES), TAIL_BYTES)
        return data.decode("utf-8", errors="replace")

    def result(self, handle: dict[str, Any]) -> dict[str, Any]:
        shell = self._shell_for(handle)
        spec = pod_endpoints.command_of(handle["endpoint"]).spec
        out = handle["out"]
        pattern = posixpath.join(out, spec.output)
        code, listed, _e = shell.run(f"for f in {shlex.quote(out)}/{spec.output}; do "
                                     "[ -f \"$f\" ] && echo \"$f\"; done", check=False)
        found = sorted(line for line in listed.splitlines() if line.strip())
        ended_file = shlex.quote(posixpath.join(handle["dir"], "ended"))
        exit_file = shlex.quote(posixpath.join(handle["dir"], "exit"))
        _c, ended, _e = shell.run(f"cat {ended_file} 2>/dev/null || stat -c %Y {exit_file} "
                                  "2>/dev/null || date +%s", check=False)
        seconds = round(max(0.0, float((ended.split() or ["0"])[0])
                            - float(handle.get("started") or 0)), 3)
        if code != 0 or not found:
            raise ServiceError(f"the command finished but wrote nothing matching {pattern} on "
                               f"pod {handle['pod']}")
        log = self.log(handle)
        result = {"output": found[0], "pod_id": handle["pod_id"], "metrics": metrics_in(log),
                  "seconds": seconds,
                  "cost": round(seconds / 3600 * float(handle.get("rate") or 0), 6),
                  "booked_elsewhere": handle.get("booked_elsewhere", False)}
        if spec.media == "text":
            result["text"] = shell.read_from(found[0], 0, 1 << 20).decode("utf-8", "replace")
        return result

    def release(self, handle: dict[str, Any]) -> None:
        pods.release(self.conn, handle["pod_id"], f"eval {posixpath.basename(handle['dir'])}")

    def cancel(self, handle: dict[str, Any]) -> str:
        shell = self._shell_for(handle)
        shell.kill_group(int(handle["pid"]))
        self.release(handle)
        return "KILLED"

    def upload(self, path: Path) -> str:
        """Inputs travel to the pod with the request (submit knows which pod)."""
        return LOCAL + str(Path(path).resolve())

    def download(self, url: str, dest_dir: Path, *, max_bytes: int, stem: str) -> Path:
        """`url`: pod://POD_ID/path/on/the/pod (PodService.output_url)."""
        pod_id, _, path = url.removeprefix(POD_URL).partition("/")
        shell = self.shell(pods.get_by_id(self.conn, int(pod_id)))
        remote = "/" + path
        size = shell.size(remote)
        if size is None:
            raise ServiceError(f"{remote} is not on the pod")
        if size > max_bytes:
            raise ServiceError(f"{remote} is {size / 1e6:.0f} MB, over max_output_mb")
        local = dest_dir / (stem + posixpath.splitext(remote)[1].lower())
        try:
            shell.download(remote, local)
        except (SshUnavailable, OSError) as exc:
            raise TransientError(f"download of {remote} broke: {exc}") from None
        return local

    def close(self) -> None:
        for shell in self.shells.values():
            shell.close()
        self.shells.clear()
        self.conn.close()


class PodService:
    name = "pod"
    title = "a command on your GPU pod (evaluation)"
    secrets: tuple[str, ...] = ()

    def open(self, settings: dict[str, Any], workspace: Any = None) -> PodSession:
        if workspace is None:
            raise ServiceError("the pod service needs the workspace its pods are in")
        return PodSession(workspace)

    def output_url(self, result: dict[str, Any]) -> str:
        return f"{POD_URL}{result['pod_id']}{result['output']}"

    def output_text(self, result: dict[str, Any]) -> tuple[str, float | None]:
        return result.get("text", ""), None  # its cost: `charge`

    def charge(self, result: dict[str, Any]) -> tuple[float, bool]:
        return float(result.get("cost") or 0.0), not result.get("booked_elsewhere", False)

    def metrics_of(self, result: dict[str, Any]) -> dict[str, float]:
        return dict(result.get("metrics") or {})


SERVICES.register(PodService.name, PodService())
endpoints.add_source(pod_endpoints.declared, pod_endpoints.problems)
