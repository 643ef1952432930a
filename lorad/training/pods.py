"""Pods: the machines lorad trains on, reached over SSH and brought up by their provider
(lorad.training.providers: any SSH host, a RunPod pod, ...); their host-key pins, checks, idle
policy and time in the cost ledger."""

from __future__ import annotations

import json
import shlex
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from lorad.core import jobs, ledger, notify, store
from lorad.core.errors import LoradError
from lorad.media.datasets import NAME_RE
from lorad.training import gpus, providers, trainers
from lorad.training.ssh import Endpoint, Shell
from lorad.training.trainers import PodCheck


class PodError(LoradError):
    pass


@dataclass
class Pod:
    id: int
    name: str
    provider: str  # a registered pod provider: ssh, runpod, ...
    provider_id: str | None
    ssh_user: str | None
    ssh_host: str | None
    ssh_port: int | None
    key_file: str | None
    host_key: str | None
    state: str
    cost_per_hour: float
    policy: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    updated_at: float = 0.0
    remote_dir: str = "/workspace/lorad"
    info: dict[str, Any] = field(default_factory=dict)
    last_seen: float | None = None
    setup: dict[str, Any] = field(default_factory=dict)  # what checks found: see trainer_options

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Pod:
        data = dict(row)
        for key in ("policy", "info", "setup"):
            data[key] = json.loads(data.get(key) or "{}")
        return cls(**data)

    def trainer_options(self, trainer: str) -> dict[str, Any]:
        """The trainer options a check of this pod was given (where its checkout is...)."""
        return dict(self.setup.get("trainers", {}).get(trainer, {}))

    @property
    def models(self) -> list[str]:
        return list(self.setup.get("models", []))

    @property
    def gpus(self) -> list[gpus.Gpu] | None:
        """The GPUs the last check found (None: never checked)."""
        if "gpus" not in self.setup:
            return None
        return [gpus.Gpu(**g) for g in self.setup["gpus"]]

    @property
    def holds(self) -> dict[str, float]:
        """Work on the pod other than runs (an evaluation command), by what holds it, with
        when it started: an idle stop leaves the pod alone while any is younger than a day
        (a hold left by a crash does not keep a pod up for ever)."""
        now = time.time()
        return {who: at for who, at in self.setup.get("holds", {}).items()
                if now - at < HOLD_SECONDS}

    def endpoint(self) -> Endpoint:
        if not self.ssh_host or not self.ssh_port:
            raise PodError(f"pod {self.name} has no SSH endpoint yet (is it running?)")
        return Endpoint(self.ssh_host, self.ssh_port, self.ssh_user or "root", self.key_file)


def add(conn: sqlite3.Connection, name: str, *, provider: str = "ssh", host: str | None = None,
        port: int = 22, user: str = "root", key_file: str | None = None,
        provider_id: str | None = None, remote_dir: str = "/workspace/lorad",
        cost_per_hour: float = 0.0) -> Pod:
    if not NAME_RE.match(name):
        raise PodError(f"pod name {name!r}: letters, digits, '.', '_' or '-'")
    impl = providers.get(provider)
    row = {"name": name, "provider": provider, "provider_id": provider_id, "ssh_user": user,
           "ssh_host": host, "ssh_port": port if host else None, "key_file": key_file,
           "state": "unknown", "cost_per_hour": cost_per_hour,
           "policy": json.dumps(impl.default_policy), "remote_dir": remote_dir,
           "updated_at": time.time()}
    impl.validate(Pod.from_row({**row, "id": 0, "host_key": None, "info": "{}"}))
    if conn.execute("SELECT 1 FROM pods WHERE name = ?", (name,)).fetchone():
        raise PodError(f"a pod named {name!r} exists already")
    store.table(conn, "pods").insert(row)
    return get(conn, name)


def get(conn: sqlite3.Connection, name: str) -> Pod:
    row = conn.execute("SELECT * FROM pods WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = [r[0] for r in conn.execute("SELECT name FROM pods ORDER BY name")]
        raise PodError(f"no pod named {name!r}" + (f" (known: {', '.join(known)})" if known
                                                    else "; add one with `lorad pod add`"))
    return Pod.from_row(row)


def get_by_id(conn: sqlite3.Connection, pod_id: int) -> Pod:
    row = conn.execute("SELECT * FROM pods WHERE id = ?", (pod_id,)).fetchone()
    if row is None:
        raise PodError(f"no pod with id {pod_id}")
    return Pod.from_row(row)


def list_all(conn: sqlite3.Connection) -> list[Pod]:
    return [Pod.from_row(r) for r in conn.execute("SELECT * FROM pods ORDER BY name")]


def update(conn: sqlite3.Connection, pod_id: int, **values: Any) -> None:
    store.table(conn, "pods").update(pod_id, {**values, "updated_at": time.time()})


def open_shell(conn: sqlite3.Connection, pod: Pod) -> Shell:
    """Connect, pinning the host key on the first connection after a (re)start.
    Runs in a worker thread; `conn` must be usable from it (a fresh connection)."""
    shell = Shell(pod.endpoint(), pod.host_key)
    seen = shell.connect()
    if pod.host_key is None:
        update(conn, pod.id, host_key=seen)
        pod.host_key = seen
    update(conn, pod.id, last_seen=time.time())
    return shell


def trust(conn: sqlite3.Connection, name: str) -> None:
    """Forget the pinned host key (after the user checked the pod was re-created)."""
    update(conn, get(conn, name).id, host_key=None)


# What every trainer needs; each trainer adds its own (Trainer.pod_checks: the interpreters and
# launchers its stages call, its checkout, ...).
BASE_CHECKS = [
    PodCheck("gpu", gpus.QUERY,
             "no NVIDIA GPU visible: pick a GPU pod, or check the driver (nvidia-smi)"),
    PodCheck("disk", "df -Pk {dir} | tail -1", "cannot read free disk space for {dir}"),
]
MIN_FREE_GB = 20


def checks_for(trainer: str = trainers.DEFAULT, options: dict[str, Any] | None = None
               ) -> list[PodCheck]:
    """The checks a pod must pass to run this trainer with these options."""
    return BASE_CHECKS + trainers.get(trainer).pod_checks(options or {})


def run_checks(conn: sqlite3.Connection, pod: Pod, *, trainer: str = trainers.DEFAULT,
               options: dict[str, Any] | None = None, models: list[str] | None = None
               ) -> list[dict]:
    """Connect, check the pod for the trainer, and remember what it has (blocking: call it in
    a thread from the daemon; `conn` must be usable there). Options and model files given
    before are the defaults: a check needs them once."""
    options = {**pod.trainer_options(trainer), **(options or {})}
    models = list(models or pod.models)
    with open_shell(conn, pod) as shell:
        results = check(shell, pod.remote_dir, checks_for(trainer, options), models)
    found = {r["check"]: r for r in results}
    setup = dict(pod.setup)
    setup["trainers"] = {**setup.get("trainers", {}), trainer: options}
    setup["models"] = [m for m in models if found.get(f"model {m.rsplit('/', 1)[-1]}", {})
                       .get("ok")]
    setup["gpus"] = found.get("gpu", {}).get("gpus", [])
    setup["checked_at"] = time.time()
    update(conn, pod.id, info={r["check"]: r["detail"] for r in results}, setup=setup)
    return results


HOLD_SECONDS = 24 * 3600


def hold(conn: sqlite3.Connection, pod_id: int, who: str) -> None:
    """Something other than a run works on the pod (its idle stop waits)."""
    with store.transaction(conn):
        pod = get_by_id(conn, pod_id)
        update(conn, pod_id, setup={**pod.setup, "holds": {**pod.setup.get("holds", {}),
                                                           who: time.time()}})


def release(conn: sqlite3.Connection, pod_id: int, who: str) -> None:
    with store.transaction(conn):
        pod = get_by_id(conn, pod_id)
        holds = {k: v for k, v in pod.setup.get("holds", {}).items() if k != who}
        update(conn, pod_id, setup={**pod.setup, "holds": holds})


def record_gpus(conn: sqlite3.Connection, pod_id: int, found: list[gpus.Gpu]) -> None:
    """The pod's GPUs as nvidia-smi just listed them (a run's start checks them again)."""
    pod = get_by_id(conn, pod_id)
    update(conn, pod_id, setup={**pod.setup, "gpus": [g.as_dict() for g in found]})


def check(shell: Shell, remote_dir: str, checks: list[PodCheck], model_files: list[str]
          ) -> list[dict]:
    """What the pod has, each with a fix when missing."""
    parent = shlex.quote(remote_dir.rsplit("/", 1)[0] or "/")
    results = []
    for c in checks:
        code, out, err = shell.run(c.command.replace("{dir}", parent), check=False)
        ok = code == 0 and bool(out.strip())
        detail = out.strip().splitlines()[0] if out.strip() else err.strip()[:200]
        fix = c.fix.replace("{dir}", remote_dir)
        if c.name == "gpu" and ok:
            found = gpus.parse(out)
            detail = gpus.describe(found)
            results.append({"check": c.name, "ok": bool(found), "detail": detail,
                            "fix": None if found else fix,
                            "gpus": [g.as_dict() for g in found]})
            continue
        if c.name == "disk" and ok:
            free_gb = int(detail.split()[3]) / 1024 / 1024
            detail = f"{free_gb:.1f} GB free"
            ok = free_gb >= MIN_FREE_GB
            fix = f"less than {MIN_FREE_GB} GB free: models and caches need room; grow the volume"
        results.append({"check": c.name, "ok": ok, "detail": detail, "fix": None if ok else fix})
    for path in model_files:
        size = shell.size(path)
        results.append({"check": f"model {path.rsplit('/', 1)[-1]}", "ok": bool(size),
                        "detail": f"{(size or 0) / 1e9:.2f} GB" if size else "missing",
                        "fix": None if size else f"download it to {path} (see docs/training.md)"})
    return results


# ---- bring a pod up, stop it by policy ------------------------------------------------------

START_KIND, STOP_KIND, CHECK_KIND = "pod.start", "pod.stop", "pod.check"


def queue(conn: sqlite3.Connection, kind: str, pod_name: str, **extra: Any) -> int:
    """Queue a start, stop or check of the pod (START_KIND, STOP_KIND, CHECK_KIND)."""
    return jobs.enqueue(conn, kind, {"pod_id": get(conn, pod_name).id, **extra})


def bring_up(ws, pod_id: int, *, timeout: float = 900.0, poll: float = 5.0) -> Pod:
    """Make sure the pod runs and its SSH endpoint is current (blocking: call in a thread).
    The provider starts it if needed; after a start the host-key pin is cleared (a new
    container, a new key)."""
    conn = ws.connect()
    try:
        pod = get_by_id(conn, pod_id)
        up = providers.get(pod.provider).ensure_running(pod, timeout=timeout, poll=poll)
        values: dict[str, Any] = {"state": "running", "ssh_host": up.host, "ssh_port": up.port,
                                  "ssh_user": up.user, "cost_per_hour": up.cost_per_hour}
        if up.info:
            values["info"] = {**pod.info, **up.info}
        if up.restarted:
            values.update(host_key=None, started_at=time.time())
        elif pod.started_at is None and providers.get(pod.provider).can_power_off:
            values["started_at"] = time.time()
        update(conn, pod.id, **values)
        return get_by_id(conn, pod_id)
    finally:
        conn.close()


def stop_after_run(ws, pod_id: int, outcome: str) -> str:
    """After a run ends (`finish` or `failure`): queue the pod's stop (or termination) after
    its idle time, if its policy says so. The stop job checks again when it runs and leaves the
    pod alone if another run has started or been queued meanwhile. Returns what was decided."""
    conn = ws.connect()
    try:
        pod = get_by_id(conn, pod_id)
        action = pod.policy.get(f"on_{outcome}", "none")
        if action == "none" or not providers.get(pod.provider).can_power_off:
            return "none"
        delay = float(pod.policy.get("idle_minutes", 10)) * 60
        jobs.enqueue(conn, STOP_KIND, {"pod_id": pod.id, "if_idle": True,
                                       "terminate": action == "terminate",
                                       "reason": f"policy on_{outcome}"}, delay=delay)
        said = f"{action} queued in {delay / 60:.0f} min unless another run starts"
        notify.send(ws.config(), "pod_idle", f"lorad: pod {pod.name} is idle",
                    f"pod {pod.name} has no run; its policy will {action} it in "
                    f"{delay / 60:.0f} min unless another run starts on it (${pod.cost_per_hour:.2f}"
                    "/h until then)")
        return said
    finally:
        conn.close()


def power_off(conn: sqlite3.Connection, pod: Pod, *, terminate: bool, reason: str) -> str:
    """Record a pod its provider stopped or terminated: its time booked, its endpoint and pin
    forgotten, the event noted. Returns the new state."""
    book_time(conn, pod, time.time())
    state = "terminated" if terminate else "stopped"
    update(conn, pod.id, state=state, ssh_host=None, ssh_port=None, host_key=None,
           started_at=None)
    ledger.note(conn, "pod.stop", pod.name, f"{state}: {reason}")
    return state


def unbooked(conn: sqlite3.Connection, pod: Pod, until: float) -> tuple[float, float]:
    """The pod's time not booked yet, up to `until`: (since, amount). It runs from its start,
    or from the last booking if that is later; a pod lorad did not start has none."""
    if pod.started_at is None:
        return until, 0.0
    last = ledger.last_booked(conn, ledger.POD_TIME, pod.id)
    since = max(pod.started_at, last or pod.started_at)
    if until <= since or not pod.cost_per_hour:
        return since, 0.0
    return since, (until - since) / 3600 * pod.cost_per_hour


def powered_by_lorad(pod: Pod) -> bool:
    """Whether lorad starts and stops the pod, and so knows how long it was billed (a RunPod
    pod); a plain SSH host is billed by whoever runs it."""
    try:
        return providers.get(pod.provider).can_power_off
    except LoradError:  # its plugin did not load: what lorad recorded says
        return pod.started_at is not None


def book_time(conn: sqlite3.Connection, pod: Pod, until: float, run_id: int | None = None
              ) -> float:
    """Book the pod's time since it started (or since the last booking) into the ledger."""
    since, amount = unbooked(conn, pod, until)
    if not amount:
        return 0.0
    ledger.book(conn, ledger.POD_TIME, amount, f"{(until - since) / 60:.1f} min at "
                f"${pod.cost_per_hour:.2f}/h", pod_id=pod.id, run_id=run_id, at=until)
    return amount
