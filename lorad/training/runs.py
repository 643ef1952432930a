"""Runs: a dataset version trained on a pod by a trainer with its config; what the pod reported,
and what the run cost."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from lorad.core import jobs, ledger, logs, store
from lorad.core.errors import LoradError
from lorad.core.store import transaction
from lorad.datasets import export
from lorad.media.datasets import NAME_RE
from lorad.training import checkpoints, gpus, pods, trainers

ACTIVE = ("queued", "running")
ENDED = ("succeeded", "failed", "stopped")
JOB_KIND = "train.run"
PULLING = "pulling"  # the stage of a run whose training ended and whose checkpoints come down


class RunError(LoradError):
    pass


@dataclass
class Run:
    id: int
    name: str
    dataset_version_id: int | None
    pod_id: int | None
    parent_run_id: int | None
    config: dict[str, Any]
    state: str
    stage: str | None
    step: int | None
    total_steps: int | None
    epoch: int | None
    step_offset: int
    log_offset: int
    remote_pid: int | None
    error: str | None
    budget: float | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    remote_dir: str | None = None
    output_name: str | None = None
    job_id: int | None = None
    avr_loss: float | None = None
    rate: float | None = None
    remaining: float | None = None
    log_tail: str = ""
    trainer: str = trainers.DEFAULT
    resume_from: str | None = None  # the saved state a resumed run continues from
    manifest: dict[str, Any] = field(default_factory=dict)  # how it was made (run_manifest)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        data = dict(row)
        data["config"] = json.loads(data["config"] or "{}")
        data["manifest"] = json.loads(data.get("manifest") or "{}")
        return cls(**data)

    @property
    def trainer_impl(self) -> trainers.Trainer:
        return trainers.get(self.trainer)

    @property
    def train_config(self) -> Any:
        """The trainer's own config object for this run."""
        return self.trainer_impl.load_config(self.config)


def create(conn: sqlite3.Connection, name: str, dataset_version_id: int, pod_id: int,
           config: dict[str, Any], *, trainer: str = trainers.DEFAULT,
           budget: float | None = None, parent_run_id: int | None = None,
           step_offset: int = 0) -> Run:
    if not NAME_RE.match(name):
        raise RunError(f"run name {name!r}: letters, digits, '.', '_' or '-'")
    impl = trainers.get(trainer)
    pod = pods.get_by_id(conn, pod_id)
    # where things are on the pod, as its last check found them, unless the config says
    config = {**pod.trainer_options(trainer), **config}
    cfg = impl.load_config(config)  # refuse before anything is uploaded
    need = trainers.gpu_memory_gb(impl, config)
    found = pod.gpus
    if need and found is not None:  # a pod never checked is checked when the run starts
        short = gpus.shortfall(found, need, impl.title)
        if short:
            raise RunError(f"pod {pod.name}: {short}")
    made_for = export.get_version(conn, dataset_version_id).format
    if impl.dataset_format not in (None, made_for):
        raise RunError(f"this dataset version was written for {made_for}, but {impl.title} "
                       f"reads {impl.dataset_format}: export the dataset with a profile whose "
                       f"format is {impl.dataset_format}")
    if conn.execute("SELECT 1 FROM runs WHERE name = ?", (name,)).fetchone():
        raise RunError(f"a run named {name!r} exists already")
    row = {"dataset_version_id": dataset_version_id, "pod_id": pod_id,
           "parent_run_id": parent_run_id, "name": name, "trainer": trainer,
           "config": json.dumps(impl.config_dict(cfg)), "state": "created", "budget": budget,
           "step_offset": step_offset, "output_name": name.replace(".", "_"),
           "created_at": time.time()}
    return get_by_id(conn, store.table(conn, "runs").insert(row).last_pk)


def get(conn: sqlite3.Connection, name: str) -> Run:
    row = conn.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise RunError(f"no run named {name!r}; `lorad train status` lists them")
    return Run.from_row(row)


def get_by_id(conn: sqlite3.Connection, run_id: int) -> Run:
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunError(f"no run with id {run_id}")
    return Run.from_row(row)


def list_all(conn: sqlite3.Connection) -> list[Run]:
    return [Run.from_row(r) for r in conn.execute("SELECT * FROM runs ORDER BY id DESC")]


def on_pod(conn: sqlite3.Connection, pod_id: int, *, active: bool = False) -> list[Run]:
    """The pod's runs (only those queued or running, with `active`)."""
    sql, args = "SELECT * FROM runs WHERE pod_id = ?", [pod_id]
    if active:
        sql += f" AND state IN ({','.join('?' * len(ACTIVE))})"
        args += ACTIVE
    return [Run.from_row(r) for r in conn.execute(sql + " ORDER BY id", args)]


def update(conn: sqlite3.Connection, run_id: int, **values: Any) -> None:
    for key in ("error", "log_tail"):  # the trainer's own words: keep secrets out of the store
        if values.get(key):
            values[key] = logs.redact(values[key])
    store.table(conn, "runs").update(run_id, values)


def start(conn: sqlite3.Connection, run_id: int) -> int:
    """Queue the run's job (idempotent while one is active)."""
    with transaction(conn):
        run = get_by_id(conn, run_id)
        if run.job_id:
            job = jobs.get(conn, run.job_id)
            if job.state in jobs.ACTIVE:
                return job.id
        if run.state in ("succeeded",):
            raise RunError(f"run {run.name} has finished; start a new run or resume it")
        job_id = jobs.enqueue(conn, JOB_KIND, {"run_id": run_id}, max_attempts=50)
        update(conn, run_id, job_id=job_id, state="queued", error=None, ended_at=None)
        return job_id


def unfollowed(conn: sqlite3.Connection) -> list[Run]:
    """Runs shown queued or running whose job is not (it failed while the pod was unreachable,
    or was cancelled behind the run's back)."""
    marks = ",".join("?" * len(ACTIVE))
    return [Run.from_row(r) for r in conn.execute(
        "SELECT r.* FROM runs r LEFT JOIN jobs j ON j.id = r.job_id"
        f" WHERE r.state IN ({marks}) AND (j.state IS NULL OR j.state NOT IN ({marks}))",
        (*ACTIVE, *jobs.ACTIVE))]


def request_stop(conn: sqlite3.Connection, run_id: int) -> str:
    """Stop a run: 'stopped' when nothing of it runs anywhere; 'stopping' when its job must
    first stop what runs on the pod (when the daemon runs it, if it does not run now)."""
    run = get_by_id(conn, run_id)
    if not run.job_id or run.state not in ACTIVE:
        raise RunError(f"run {run.name} is {run.state}: there is nothing to stop")
    job = jobs.get(conn, run.job_id)
    if job.state == "queued":
        if run.remote_pid or run.stage not in (None, "upload"):
            # a process of it may run on the pod: the job must stop it there, so it runs now,
            # cancelled (cancelling the queued job alone would leave that process running,
            # and the periodic check would start the run again)
            jobs.run_cancelled(conn, job.id)
            return "stopping"
        jobs.request_cancel(conn, job.id)
        update(conn, run.id, state="stopped", ended_at=time.time(),
               error="stopped by request before it started")
        return "stopped"
    jobs.request_cancel(conn, job.id)
    return "stopping"


def add_losses(conn: sqlite3.Connection, run: Run, points: list[tuple[int, float | None]],
               at: float) -> None:
    """One point per step (at the run's step offset): a progress bar prints a step more than
    once, and the last value wins."""
    store.table(conn, "loss_points").insert_all(
        ({"run_id": run.id, "step": step + run.step_offset, "avr_loss": loss, "at": at}
         for step, loss in points), replace=True, batch_size=500)


def add_eval_losses(conn: sqlite3.Connection, run: Run, points: list[tuple[int, float | None]],
                    at: float) -> None:
    """Held-out loss per evaluation pass, at the step it ran (the run's offset applied)."""
    store.table(conn, "eval_points").insert_all(
        ({"run_id": run.id, "step": step + run.step_offset, "loss": loss, "at": at}
         for step, loss in points), replace=True)


def eval_points(conn: sqlite3.Connection, run_id: int) -> list[tuple[int, float | None]]:
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT step, loss FROM eval_points WHERE run_id = ? ORDER BY step", (run_id,))]


def chain_eval_points(conn: sqlite3.Connection, run_id: int) -> list[tuple[int, float | None]]:
    """The eval curve of a run and its ancestors, each cut where its child took over."""
    runs = chain(conn, run_id)
    owned = [eval_points(conn, r.id) for r in runs]
    train = [loss_points(conn, r.id) for r in runs]
    points: list[tuple[int, float | None]] = []
    for n in range(len(runs)):
        cut = None
        if n + 1 < len(runs):
            cut = train[n + 1][0][0] - 1 if train[n + 1] else runs[n + 1].step_offset
        points += [(s, v) for s, v in owned[n] if cut is None or s <= cut]
    return points


def last_progress_at(conn: sqlite3.Connection, run_id: int) -> float | None:
    """When the run's log last brought a step (the newest loss point)."""
    return conn.execute("SELECT MAX(at) FROM loss_points WHERE run_id = ?",
                        (run_id,)).fetchone()[0]


def watch_note(conn: sqlite3.Connection, run: Run) -> str | None:
    """What its job says while it cannot follow the run ("pod unreachable since ...")."""
    if run.state != "running" or not run.job_id:
        return None
    message = jobs.get(conn, run.job_id).progress_msg or ""
    return message if "unreachable" in message else None


def loss_points(conn: sqlite3.Connection, run_id: int) -> list[tuple[int, float | None]]:
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT step, avr_loss FROM loss_points WHERE run_id = ? ORDER BY step", (run_id,))]


@dataclass(frozen=True)
class RunCost:
    spent: float  # the pod's time since the run started, at its rate
    projected: float | None  # at the end, from the trainer's ETA, while it runs
    per_hour: float


def cost(conn: sqlite3.Connection, run: Run, now: float | None = None) -> RunCost:
    """What the run cost on its pod: the one rule the budget, the Training screen and the CLI
    use."""
    pod = pods.get_by_id(conn, run.pod_id) if run.pod_id else None
    rate = pod.cost_per_hour if pod else 0.0
    if not run.started_at or not rate:
        return RunCost(0.0, None, rate)
    end = run.ended_at or (now or time.time())
    spent = max(0.0, end - run.started_at) / 3600 * rate
    projected = None
    if run.state == "running" and run.remaining:
        projected = spent + run.remaining / 3600 * rate
    return RunCost(spent, projected, rate)


@dataclass(frozen=True)
class PodCost:
    booked: float  # in the cost ledger: its time up to its last booking
    accruing: float  # since: its time up to now (a pod lorad powers), or its runs' (SSH host)

    @property
    def total(self) -> float:
        return self.booked + self.accruing


def pod_cost(conn: sqlite3.Connection, pod: pods.Pod, now: float | None = None) -> PodCost:
    """What a pod cost so far: the one rule the Pods and Training screens use. A pod lorad
    starts and stops (RunPod) is billed while it is up: its time is booked in the ledger when
    it stops, and the time since its last booking is added while it runs. A host lorad does
    not power (plain SSH) has no uptime lorad knows of: what it cost is its runs' time at its
    rate (`cost`)."""
    now = now or time.time()
    booked = ledger.spent_on_pod(conn, pod.id)
    if pods.powered_by_lorad(pod):
        return PodCost(booked, pods.unbooked(conn, pod, now)[1])
    return PodCost(booked, sum(cost(conn, r, now).spent for r in on_pod(conn, pod.id)))


def resume(conn: sqlite3.Connection, name: str, changes: dict[str, Any] | None = None) -> Run:
    """A failed or stopped run continues as a new run from the parent's last saved state: a new
    output name (so no earlier checkpoint is overwritten) and a step offset (trainers restart
    their counters on resume), resolved on the pod when the job starts. `changes` are settings
    to change on the way (a lower learning rate after a NaN); a run that stopped before it
    saved anything is refused here, not after a pod was started."""
    parent = get(conn, name)
    if parent.state not in ("failed", "stopped"):
        raise RunError(f"run {parent.name} is {parent.state}; only a failed or stopped run "
                       "can be resumed")
    impl = parent.trainer_impl
    config = {**parent.config, **(changes or {})}
    if parent.stage not in (impl.train_stage, PULLING, "done"):
        # it never reached training: simply go on where it stopped
        update(conn, parent.id, config=impl.config_dict(impl.load_config(config)))
        start(conn, parent.id)
        return get_by_id(conn, parent.id)
    problem = impl.resume_problem(parent.config)
    if problem is None and not checkpoints.for_run(conn, parent.id):
        problem = ("it stopped before it saved a checkpoint (states are saved with them): "
                   "start a new run")
    if problem:
        raise RunError(f"run {parent.name} cannot be resumed: {problem}")
    n = conn.execute("SELECT COUNT(*) FROM runs WHERE parent_run_id = ?", (parent.id,)
                     ).fetchone()[0] + 1
    child = create(conn, f"{parent.name}-r{n}", parent.dataset_version_id, parent.pod_id,
                   config, trainer=parent.trainer, budget=parent.budget,
                   parent_run_id=parent.id)
    update(conn, child.id, stage=impl.train_stage)
    start(conn, child.id)
    return get_by_id(conn, child.id)


def chain_losses(conn: sqlite3.Connection, run_id: int) -> list[tuple[int, float | None]]:
    """The loss curve of a run and its ancestors: each resumed run continues its parent's at
    the step it resumed from, so a parent's points past that step (done again by the child)
    are left out."""
    runs = chain(conn, run_id)
    points: list[tuple[int, float | None]] = []
    owned = [loss_points(conn, run.id) for run in runs]
    for n in range(len(runs)):
        cut = None
        if n + 1 < len(runs):  # where the child took over: before its first point (a trainer
            # that counts on from the saved step has no offset), else at its offset
            cut = owned[n + 1][0][0] - 1 if owned[n + 1] else runs[n + 1].step_offset
        points += [(s, v) for s, v in owned[n] if cut is None or s <= cut]
    return points


def chain(conn: sqlite3.Connection, run_id: int) -> list[Run]:
    """The run and its ancestors, oldest first (a resumed run's loss continues its parent's)."""
    out = []
    current: int | None = run_id
    while current is not None:
        run = get_by_id(conn, current)
        out.append(run)
        current = run.parent_run_id
    return out[::-1]
