"""RunPod pods over the REST API v2 (`https://api.runpod.io/v2`), with a sync httpx client.

Why v2: REST v1 (`rest.runpod.io/v1`) is retired on 2026-11-15 and GraphQL in early 2027. In v2
every lifecycle change is `POST /pods/{id}/action` with `{"action": "start"|"stop"|"terminate"}`;
an action not valid for the pod's current status is a 409.

The public SSH endpoint changes on every start, so it is never cached: :meth:`RunPod.wait_running`
reads it fresh once the pod is RUNNING. A stopped pod may come back with zero GPUs when its
machine's GPU was rented meanwhile; :meth:`RunPod.wait_running` checks the count.

The API key comes only from RUNPOD_API_KEY and never appears in a message, a repr or the log.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from lorad.core import http, secrets
from lorad.core.errors import PermanentError, TransientError
from lorad.training.providers import PROVIDERS, PodUp

API_URL = "https://api.runpod.io/v2"
URL_ENV = "RUNPOD_API_URL"  # points the client at a test double
KEY_ENV = "RUNPOD_API_KEY"

RUNNING = "RUNNING"
STARTING_STATES = ("PROVISIONING", "STARTING")
# What the pod's status may be once an action went through (used when a retried action gets a 409).
_AFTER = {"start": (*STARTING_STATES, RUNNING), "stop": ("EXITED",), "terminate": ("TERMINATED",)}

log = logging.getLogger("lorad.training.providers.runpod")


class RunPodError(PermanentError):
    """RunPod said no in a way retrying will not fix; the message says what to do."""


class RunPodAuthError(RunPodError):
    pass


class RunPodNotFound(RunPodError):
    pass


class RunPodConflict(RunPodError):
    """The action is not valid for the pod's current status (HTTP 409)."""

    def __init__(self, message: str, status: str | None = None, actions: tuple[str, ...] = ()):
        super().__init__(message)
        self.status = status
        self.actions = actions


class RunPodNoGpu(RunPodError):
    """The pod is running with fewer GPUs than expected (usually zero after a resume)."""


class RunPodTransient(TransientError):
    """Rate limited, RunPod failing or unreachable: the daemon retries the job later."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Pod:
    id: str
    name: str
    status: str  # PROVISIONING, STARTING, RUNNING, EXITED, ERROR, TERMINATED
    gpu_count: int  # 0 for CPU pods, and for a GPU pod resumed without a free GPU
    gpu_type: str | None  # e.g. "NVIDIA GeForce RTX 4090"; None for CPU pods
    cost_per_hr: float  # USD per hour right now; 0.0 when EXITED or TERMINATED
    ssh: tuple[str, int] | None  # public (host, port) of container port 22; only while RUNNING
    image: str | None = None
    uptime: int | None = None  # seconds since the container started; only while RUNNING
    ssh_user: str = "root"
    actions: tuple[str, ...] = ()  # actions valid for the current status
    ports: tuple[str, ...] = ()  # exposed ports, e.g. ("8888/http", "22/tcp")
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # holds the pod's env

    @property
    def desired_status(self) -> str:
        """v1 called it desiredStatus; v2 reports the actual status."""
        return self.status

    @property
    def running(self) -> bool:
        return self.status == RUNNING


def parse_pod(data: dict[str, Any]) -> Pod:
    """A v2 `Pod` object as returned by GET /pods/{id} and by actions."""
    status = str(data.get("status") or "UNKNOWN").upper()
    gpu = data.get("gpu") or {}
    runtime = data.get("runtime") or {}
    ssh, user = _ssh_endpoint(data) if status == RUNNING else (None, "root")
    uptime = runtime.get("uptime")
    return Pod(
        id=str(data.get("id", "")),
        name=str(data.get("name") or ""),
        status=status,
        gpu_count=int(gpu.get("count") or 0) if gpu else 0,
        gpu_type=gpu.get("id") if gpu else None,
        cost_per_hr=float(data.get("cost") or 0.0),
        ssh=ssh,
        image=data.get("image"),
        uptime=int(uptime) if uptime is not None else None,
        ssh_user=user,
        actions=tuple(data.get("actions") or ()),
        ports=tuple(data.get("ports") or ()),
        raw=data,
    )


def _ssh_endpoint(data: dict[str, Any]) -> tuple[tuple[str, int] | None, str]:
    """`ssh.direct` when present, else the public tcp mapping of port 22 in `runtime.ports`.

    The proxy (`ssh.proxy`) carries an interactive shell only, no SFTP, so it is never used.
    """
    direct = (data.get("ssh") or {}).get("direct") or {}
    if direct.get("host") and direct.get("port"):
        return (str(direct["host"]), int(direct["port"])), str(direct.get("username") or "root")
    for port in (data.get("runtime") or {}).get("ports") or ():
        if (port.get("private") == 22 and port.get("type", "tcp") == "tcp" and port.get("public")
                and port.get("ip") and port.get("isIpPublic", True)):
            return (str(port["ip"]), int(port["public"])), "root"
    return None, "root"


def _problem(response: httpx.Response) -> str:
    """The human part of an RFC 9457 problem (or v1 `message`) body, kept short."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if not isinstance(body, dict):
        return str(body)[:200]
    text = str(body.get("detail") or body.get("title") or body.get("message") or "")
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        text = f"{text} ({'; '.join(str(e) for e in errors[:5])})" if text else "; ".join(map(str, errors))
    return text[:300]


class RunPod:
    """A RunPod REST v2 client for one API key. Use as a context manager or call :meth:`close`.

    429 and 5xx answers and network errors are retried up to `max_attempts` requests, waiting as
    long as Retry-After says (or `backoff` doubling up to `max_wait`); after that, or when RunPod
    asks for a wait longer than `max_wait`, :class:`RunPodTransient` is raised.
    """

    def __init__(self, base_url: str | None = None, *, timeout: float = 30.0, max_attempts: int = 4,
                 backoff: float = 1.0, max_wait: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None):
        key = secrets.get(KEY_ENV)
        if key is None:
            raise RunPodAuthError(
                f"{KEY_ENV} is not set: create an API key in the RunPod console (Settings → API Keys) "
                f"and export {KEY_ENV}")
        self._key = key
        self.base_url = (base_url or os.environ.get(URL_ENV) or API_URL).rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.base_url, transport=transport,
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                  headers={"Accept": "application/json", "User-Agent": "lorad"})

    def __repr__(self) -> str:
        return f"RunPod({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RunPod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pods ---------------------------------------------------------------------------------

    def get_pod(self, pod_id: str) -> Pod:
        response, _ = self._call("GET", _pod_path(pod_id), pod_id=pod_id)
        return parse_pod(_json(response))

    def list_pods(self) -> list[Pod]:
        response, _ = self._call("GET", "/pods")
        return [parse_pod(p) for p in _json(response).get("pods", [])]

    def start(self, pod_id: str) -> Pod:
        """Ask RunPod to start (resume) a stopped pod; returns it, usually STARTING."""
        pod = self._action(pod_id, "start")
        return pod if pod is not None else self.get_pod(pod_id)

    def stop(self, pod_id: str) -> Pod:
        """Stop a pod: its GPU is released, /workspace is kept, the container disk is wiped."""
        pod = self._action(pod_id, "stop")
        return pod if pod is not None else self.get_pod(pod_id)

    def terminate(self, pod_id: str) -> None:
        """Delete a pod for good, with its volume disk."""
        self._action(pod_id, "terminate")

    def wait_running(self, pod_id: str, timeout: float = 600.0, poll: float = 5.0, *,
                     gpu_count: int | None = None) -> Pod:
        """Poll until the pod is RUNNING with a public SSH endpoint, then check its GPUs.

        `gpu_count`: the GPUs the pod must have; None only refuses a GPU pod with zero. Raises
        :class:`RunPodNoGpu` on a mismatch (the pod is left running), :class:`RunPodError` when
        the pod stopped, failed or does not expose 22/tcp, :class:`RunPodTransient` on timeout.
        """
        deadline = time.monotonic() + timeout
        pod: Pod | None = None
        problem = ""
        while True:
            try:
                pod = self.get_pod(pod_id)
            except RunPodTransient as exc:  # keep polling until the deadline
                problem = str(exc)
            else:
                problem = ""
                if pod.running and pod.ssh is not None:
                    _check_gpus(pod, gpu_count)
                    return pod
                if pod.running and pod.ports and "22/tcp" not in pod.ports:
                    raise RunPodError(f"pod {pod_id} is running but does not expose 22/tcp, so lorad "
                                      f"cannot reach it over SSH: add 22/tcp to the pod's ports")
                if pod.status in ("EXITED", "ERROR", "TERMINATED"):
                    raise RunPodError(f"pod {pod_id} is {pod.status} instead of starting"
                                      + ("; start it first" if pod.status == "EXITED" else ""))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = problem or (f"still {pod.status}" if pod and not pod.running
                                    else "running, no public SSH port yet")
                raise RunPodTransient(f"pod {pod_id} not reachable over SSH after {timeout:g} s ({state})")
            self._sleep(min(poll, remaining))

    def ensure_running(self, pod_id: str, timeout: float = 600.0, poll: float = 5.0, *,
                       gpu_count: int | None = None) -> Pod:
        """Start the pod unless it is already running or starting, then :meth:`wait_running`.

        Safe to repeat after a failure. `gpu_count` defaults to the pod's GPU count before start.
        """
        pod = self.get_pod(pod_id)
        if gpu_count is None and pod.gpu_count > 0:
            gpu_count = pod.gpu_count
        if pod.status == "TERMINATED":
            raise RunPodError(f"pod {pod_id} is terminated; create a new pod")
        if pod.status not in (RUNNING, *STARTING_STATES):
            self.start(pod_id)
        return self.wait_running(pod_id, timeout, poll, gpu_count=gpu_count)

    # -- HTTP ---------------------------------------------------------------------------------

    def _action(self, pod_id: str, action: str) -> Pod | None:
        path = f"{_pod_path(pod_id)}/action"
        response, attempts = self._call("POST", path, json={"action": action}, pod_id=pod_id,
                                        accept=(404, 409))
        if response.status_code == 404:
            if action == "terminate" and attempts > 1:
                return None  # an earlier try of this terminate went through
            raise self._error(response, "POST", path, pod_id)
        if response.status_code == 409:
            current = self._status_after_conflict(pod_id)
            if attempts > 1 and current is not None and current.status in _AFTER[action]:
                return current  # an earlier try of this request went through
            raise _conflict(pod_id, action, current, _problem(response))
        if response.status_code == 204 or not response.content:
            return None
        return parse_pod(_json(response))

    def _status_after_conflict(self, pod_id: str) -> Pod | None:
        try:
            return self.get_pod(pod_id)
        except (RunPodError, RunPodTransient):
            return None

    def _call(self, method: str, path: str, *, json: Any = None, pod_id: str | None = None,
              accept: tuple[int, ...] = ()) -> tuple[httpx.Response, int]:
        """One request with bounded retries; returns the response (2xx/3xx or a status in `accept`)
        and how many tries it took."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, json=json,
                                              headers={"Authorization": f"Bearer {self._key}"})
            except httpx.TransportError as exc:
                reason = self._scrub(f"{exc.__class__.__name__}: {exc}" if str(exc) else
                                     exc.__class__.__name__)
                if attempt >= self.max_attempts:
                    raise RunPodTransient(f"RunPod unreachable at {self.base_url} after {attempt} "
                                          f"tries ({reason})") from None
                self._wait(method, path, reason, self._backoff(attempt), attempt)
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                retry_after = http.retry_after(response.headers)
                what = "rate limited (429)" if status == 429 else f"server error ({status})"
                if attempt >= self.max_attempts or (retry_after is not None and retry_after > self.max_wait):
                    hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
                    raise RunPodTransient(f"RunPod {what} on {method} {path} after {attempt} "
                                          f"tries{hint}", retry_after=retry_after)
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                self._wait(method, path, what, delay, attempt)
                continue
            if status < 400 or status in accept:
                return response, attempt
            raise self._error(response, method, path, pod_id)

    def _backoff(self, attempt: int) -> float:
        return min(self.max_wait, self.backoff * 2 ** (attempt - 1))

    def _wait(self, method: str, path: str, reason: str, delay: float, attempt: int) -> None:
        log.warning("RunPod %s %s: %s; retrying in %.1f s (try %d of %d)",
                    method, path, reason, delay, attempt + 1, self.max_attempts)
        self._sleep(delay)

    def _error(self, response: httpx.Response, method: str, path: str, pod_id: str | None) -> RunPodError:
        status = response.status_code
        detail = self._scrub(_problem(response))
        said = f" (RunPod answered {status}: {detail})" if detail else f" (RunPod answered {status})"
        if status in (401, 403):
            extra = ", or lacks access to pods" if status == 403 else ""
            return RunPodAuthError(f"{KEY_ENV} is missing or invalid{extra}{said}; create a key in the "
                                   f"RunPod console (Settings → API Keys) and export {KEY_ENV}")
        if status == 404 and pod_id is not None:
            return RunPodNotFound(f"no pod {pod_id} on this RunPod account{said}")
        return RunPodError(f"RunPod {method} {path} failed{said}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text


def _json(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else (a proxy's HTML page) is worth a retry later."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RunPodTransient(f"RunPod answered {response.request.method} {response.request.url.path} "
                              f"with something that is not a JSON object "
                              f"({response.headers.get('content-type', 'no content type')})")
    return body


def _pod_path(pod_id: str) -> str:
    if not pod_id or not pod_id.strip():
        raise RunPodError("no pod id given")
    return f"/pods/{quote(pod_id, safe='')}"


def _conflict(pod_id: str, action: str, pod: Pod | None, detail: str) -> RunPodConflict:
    if pod is None:
        return RunPodConflict(f"cannot {action} pod {pod_id} in its current state"
                              + (f": {detail}" if detail else ""))
    allowed = ", ".join(pod.actions) or "none"
    return RunPodConflict(f"cannot {action} pod {pod_id}: it is {pod.status} (allowed now: {allowed})",
                          pod.status, pod.actions)


def _check_gpus(pod: Pod, expected: int | None) -> None:
    if expected is None:
        if pod.gpu_type is None or pod.gpu_count > 0:
            return
        expected = 1
    if pod.gpu_count == expected:
        return
    if pod.gpu_count == 0:
        raise RunPodNoGpu(
            f"pod {pod.id} started with 0 GPUs (expected {expected}): the GPU on its machine was rented "
            f"while it was stopped. The pod is running without a GPU: stop it and start it later, or "
            f"terminate it and create a new one (a network volume keeps /workspace across pods)")
    raise RunPodNoGpu(f"pod {pod.id} started with {pod.gpu_count} GPUs, expected {expected}; stop it and "
                      f"start it later, or create a pod with {expected}")


class RunPodProvider:
    """A RunPod pod, started and stopped through the API; its SSH endpoint is read fresh after
    every start (it changes), and a start means a new host key."""

    name = "runpod"
    title = "a RunPod pod"
    secrets = (KEY_ENV,)
    can_power_off = True
    default_policy = {"on_finish": "stop", "on_failure": "stop", "idle_minutes": 10}

    def validate(self, pod) -> None:
        if not pod.provider_id:
            raise RunPodError("a RunPod pod needs --runpod-id (the pod's id in RunPod)")

    def ensure_running(self, pod, *, timeout: float, poll: float) -> PodUp:
        with RunPod() as api:
            before = api.get_pod(pod.provider_id)
            up = api.ensure_running(pod.provider_id, timeout=timeout, poll=poll)
        host, port = up.ssh
        return PodUp(host, port, up.ssh_user, up.cost_per_hr, restarted=not before.running,
                     info={"gpu": f"{up.gpu_count}x {up.gpu_type}"})

    def stop(self, pod) -> None:
        with RunPod() as api:
            api.stop(pod.provider_id)

    def terminate(self, pod) -> None:
        with RunPod() as api:
            api.terminate(pod.provider_id)


PROVIDERS.register(RunPodProvider.name, RunPodProvider())
