"""A loopback HTTP double of the RunPod REST API v2 pod endpoints (services.md §3.2 and §6).

    with runpod_double() as rp:
        pod = rp.add_pod("p1", status="EXITED")
        client = RunPod(rp.url)          # with RUNPOD_API_KEY=rp.api_key in the environment

Endpoints: GET /v2/pods, GET /v2/pods/{id}, POST /v2/pods/{id}/action {"action": ...},
DELETE /v2/pods/{id}. State machine: RUNNING -> stop/restart/terminate; EXITED, ERROR ->
start/terminate; PROVISIONING, STARTING -> stop/terminate; anything else is 409. A start goes to
STARTING and becomes RUNNING after `start_polls` GETs of that pod; each start gets a new public SSH
port. `runtime` and `ssh.direct` exist only while RUNNING; `cost` is 0.0 when EXITED or TERMINATED.
Errors are RFC 9457 problem+json; every answer carries RateLimit headers.

Switches: fail_next (429 + Retry-After, 5xx, any status; optionally after applying the request),
drop_next (close the connection without an answer), zero_gpus_next_start. `requests` logs every
request with its arrival time (time.monotonic) and answer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import loopback

TRANSITIONS = {
    "RUNNING": ("stop", "restart", "terminate"),
    "EXITED": ("start", "terminate"),
    "ERROR": ("start", "terminate"),
    "PROVISIONING": ("stop", "terminate"),
    "STARTING": ("stop", "terminate"),
    "TERMINATED": (),
}
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity",
          429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
          503: "Service Unavailable", 504: "Gateway Timeout"}
RATE_POLICY = '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'


@dataclass
class FakePod:
    id: str
    name: str = "lorad-train"
    status: str = "EXITED"
    gpu_type: str = "NVIDIA GeForce RTX 4090"
    gpu_count: int = 1  # GPUs the pod was created with
    gpus: int = 0  # GPUs it has right now (set on start; 0 after a zero-GPU resume)
    price_per_gpu: float = 0.69  # USD/hour per GPU while not EXITED/TERMINATED
    image: str = "runpod/pytorch:2.8.0-py3.11-cuda12.8.1"
    ports: list[str] = field(default_factory=lambda: ["8888/http", "22/tcp"])
    env: dict[str, str] = field(default_factory=dict)
    public_ip: str = "127.0.0.1"
    ssh_port: int | None = None  # public port of container port 22 while RUNNING
    start_polls: int = 2  # GETs answered STARTING after a start before the pod turns RUNNING
    polls_left: int = 0
    pending_gpus: int | None = None  # GPUs the pod gets when the current start completes
    running_since: float | None = None
    starts: int = 0
    created_at: str = "2026-09-01T12:00:00Z"
    started_at: str | None = None

    @property
    def cost(self) -> float:
        if self.status in ("EXITED", "TERMINATED"):
            return 0.0
        return round(self.price_per_gpu * self.gpus, 4)

    def to_json(self) -> dict[str, Any]:
        running = self.status == "RUNNING"
        runtime = None
        direct = None
        if running:
            runtime = {
                "uptime": int(time.monotonic() - (self.running_since or time.monotonic())),
                "gpus": [{"util": 0, "memoryUtil": 0} for _ in range(self.gpus)],
                "cpu": {"util": 3}, "memory": {"util": 10},
                "ports": [self._runtime_port(p) for p in self.ports],
            }
            if "22/tcp" in self.ports and self.ssh_port:
                direct = {"host": self.public_ip, "port": self.ssh_port, "username": "root",
                          "command": f"ssh root@{self.public_ip} -p {self.ssh_port}"}
        return {
            "id": self.id, "name": self.name, "status": self.status,
            "actions": list(TRANSITIONS.get(self.status, ())),
            "image": self.image, "args": "", "disk": 50,
            "mounts": {"persistent": {"size": 20, "path": "/workspace"}},
            "ports": list(self.ports), "env": dict(self.env), "registry": None,
            "gpu": {"id": self.gpu_type, "count": self.gpus if running else self.gpu_count},
            "cloud": "SECURE", "dataCenterId": "US-TX-3", "template": None,
            "cost": self.cost, "locked": False, "globalNetworking": {"enabled": False},
            "runtime": runtime,
            "ssh": {"proxy": {"host": "ssh.runpod.io", "port": 22, "username": f"{self.id}-64411eb2",
                              "command": f"ssh {self.id}-64411eb2@ssh.runpod.io"},
                    "direct": direct},
            "createdAt": self.created_at, "startedAt": self.started_at,
        }

    def _runtime_port(self, spec: str) -> dict[str, Any]:
        number, _, kind = spec.partition("/")
        if int(number) == 22 and kind == "tcp":
            return {"private": 22, "public": self.ssh_port, "type": "tcp", "ip": self.public_ip}
        return {"private": int(number), "public": None, "type": kind or "http", "ip": None}


@dataclass
class Recorded:
    t: float  # time.monotonic() on arrival
    method: str
    path: str
    body: Any
    authorized: bool
    status: int = 0  # 0: connection dropped


@dataclass
class _Fault:
    status: int
    retry_after: float | None
    detail: str | None
    applied: bool  # process the request first, then answer with the fault anyway


class RunPodDouble:
    def __init__(self, api_key: str = "rp_test_key_0123456789", start_polls: int = 2,
                 ssh_port: Callable[[FakePod], int] | None = None):
        self.api_key = api_key
        self.start_polls = start_polls  # default for pods added without their own value
        self.pods: dict[str, FakePod] = {}
        self.requests: list[Recorded] = []
        self.lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._drops = 0
        self._zero_gpus: set[str | None] = set()  # pod ids (None: any pod) whose next start gets 0 GPUs
        self._ports = itertools.count(34001)
        self._ssh_port = ssh_port or (lambda pod: next(self._ports))
        self._server = loopback.Server(_handler(self), "runpod-double")
        self.url = self._server.url + "/v2"

    # -- control --------------------------------------------------------------------------------

    def start_server(self) -> None:
        self._server.start()

    def stop_server(self) -> None:
        self._server.stop()

    def add_pod(self, pod_id: str | None = None, *, status: str = "EXITED", start_polls: int | None = None,
                **fields: Any) -> FakePod:
        """Add a pod; a RUNNING one gets GPUs and an SSH port at once."""
        with self.lock:
            pod = FakePod(id=pod_id or f"pod{len(self.pods) + 1:04d}", status=status,
                          start_polls=self.start_polls if start_polls is None else start_polls, **fields)
            if status == "RUNNING":
                self._come_up(pod)
            self.pods[pod.id] = pod
            return pod

    def fail_next(self, status: int, n: int = 1, retry_after: float | None = None,
                  detail: str | None = None, applied: bool = False) -> None:
        """Answer the next `n` requests with `status` (and Retry-After when given)."""
        with self.lock:
            self._faults += [_Fault(status, retry_after, detail, applied) for _ in range(n)]

    def drop_next(self, n: int = 1) -> None:
        """Close the connection without answering the next `n` requests."""
        with self.lock:
            self._drops += n

    def zero_gpus_next_start(self, pod_id: str | None = None) -> None:
        """The next start (of `pod_id`, or of any pod) comes up with 0 GPUs, as RunPod does when
        the machine's GPU was rented while the pod was stopped."""
        with self.lock:
            self._zero_gpus.add(pod_id)

    def set_status(self, pod_id: str, status: str) -> None:
        with self.lock:
            pod = self.pods[pod_id]
            pod.status = status
            if status == "RUNNING":
                self._come_up(pod)
            elif status != "STARTING":
                self._go_down(pod)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)]

    # -- state machine --------------------------------------------------------------------------

    def _come_up(self, pod: FakePod) -> None:
        pod.status = "RUNNING"
        pod.gpus = pod.gpu_count if pod.pending_gpus is None else pod.pending_gpus
        pod.pending_gpus = None
        pod.ssh_port = self._ssh_port(pod) if "22/tcp" in pod.ports else None
        pod.running_since = time.monotonic()
        pod.starts += 1
        pod.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def _go_down(self, pod: FakePod) -> None:
        pod.gpus = 0
        pod.ssh_port = None
        pod.running_since = None

    def _begin_start(self, pod: FakePod) -> None:
        for key in (pod.id, None):
            if key in self._zero_gpus:
                self._zero_gpus.discard(key)
                pod.pending_gpus = 0
                break
        pod.polls_left = pod.start_polls
        if pod.polls_left <= 0:
            self._come_up(pod)
        else:
            pod.status = "STARTING"
            pod.ssh_port = None

    def _on_get(self, pod: FakePod) -> None:
        if pod.status == "STARTING":
            if pod.polls_left <= 0:
                self._come_up(pod)
            else:
                pod.polls_left -= 1

    def _act(self, pod: FakePod, action: str) -> tuple[int, dict[str, Any] | None]:
        if action not in ("start", "stop", "restart", "terminate"):
            return 422, _problem(422, f"unknown action {action!r}: use start, stop, restart or terminate")
        if action not in TRANSITIONS.get(pod.status, ()):
            return 409, _problem(409, f"cannot {action} a Pod that is {pod.status}")
        if action in ("start", "restart"):
            self._go_down(pod)
            self._begin_start(pod)
        elif action == "stop":
            pod.status = "EXITED"
            self._go_down(pod)
        else:
            pod.status = "TERMINATED"
            self._go_down(pod)
            return 204, None
        return 200, pod.to_json()

    def _route(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any] | None]:
        parts = [p for p in path.split("?")[0].split("/") if p]
        if parts[:2] != ["v2", "pods"]:
            return 404, _problem(404, "no such route")
        if len(parts) == 2:
            if method != "GET":
                return 405, _problem(405, "The requested method is not allowed for this path.")
            return 200, {"pods": [p.to_json() for p in self.pods.values()]}
        pod = self.pods.get(parts[2])
        if pod is None:
            return 404, _problem(404, "The requested Pod does not exist.")
        if len(parts) == 3 and method == "GET":
            self._on_get(pod)
            return 200, pod.to_json()
        if len(parts) == 3 and method == "DELETE":
            if pod.status == "TERMINATED":
                return 404, _problem(404, "The requested Pod does not exist.")
            return self._act(pod, "terminate")
        if len(parts) == 4 and parts[3] == "action" and method == "POST":
            if not isinstance(body, dict) or set(body) != {"action"}:
                return 422, _problem(422, "Request validation failed.", ['body must be {"action": ...}'])
            return self._act(pod, str(body["action"]))
        return 405, _problem(405, "The requested method is not allowed for this path.")


def _problem(status: int, detail: str, errors: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def _handler(double: RunPodDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(loopback.Handler):
        def _serve(self) -> None:
            arrived = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            authorized = self.headers.get("Authorization") == f"Bearer {double.api_key}"
            record = Recorded(arrived, self.command, self.path, body, authorized)
            headers: dict[str, str] = {}
            with double.lock:
                double.requests.append(record)
                if double._drops:
                    double._drops -= 1
                    self.close_connection = True
                    return
                fault = double._faults.pop(0) if double._faults else None
                if fault is not None and fault.applied and authorized:
                    double._route(self.command, self.path, body)
                if fault is not None:
                    status = fault.status
                    payload: dict[str, Any] | None = _problem(status, fault.detail or (
                        "rate limit exceeded for the minute window" if status == 429 else "upstream error"))
                    if fault.retry_after is not None:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                elif not self.headers.get("Authorization", "").startswith("Bearer "):
                    status, payload = 401, _problem(401, "missing bearer token")
                elif not authorized:
                    status, payload = 401, _problem(401, "invalid API key")
                else:
                    status, payload = double._route(self.command, self.path, body)
                record.status = status
            remaining = max(0, 60 - len(double.requests) % 60)
            headers["RateLimit"] = f'"minute";r={remaining};t=60'
            headers["RateLimit-Policy"] = RATE_POLICY
            self._send(status, payload, headers)

        def _send(self, status: int, payload: dict[str, Any] | None, headers: dict[str, str]) -> None:
            data = b"" if status == 204 or payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if data:
                kind = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if data:
                self.wfile.write(data)

    return Handler


def runpod_double(api_key: str = "rp_test_key_0123456789", start_polls: int = 2,
                  ssh_port: Callable[[FakePod], int] | None = None
                  ) -> contextlib.AbstractContextManager[RunPodDouble]:
    """A running double on 127.0.0.1; `start_polls`: GETs answered STARTING after each start;
    `ssh_port(pod)` picks the public SSH port on every start (default 34001, 34002, ...)."""
    return loopback.running(RunPodDouble(api_key, start_polls, ssh_port))
