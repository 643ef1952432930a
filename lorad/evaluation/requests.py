"""What a request to a pod command carries, from a checkpoint and the user's parameters: the
pod (the checkpoint's run's, unless named), its rate (for the price shown before it runs), the
checkpoint's file here and where its run left it on the pod, and the declared file parameters
as local files the request sends."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from lorad.core.errors import LoradError
from lorad.evaluation import endpoints as pod_endpoints
from lorad.evaluation.pod_service import LOCAL
from lorad.training import checkpoints, gpus, pods, runs


class EvaluationError(LoradError):
    """A pod request that cannot be made; the message says what to do."""


def endpoint_for(conn: sqlite3.Connection, checkpoint: checkpoints.Checkpoint) -> str:
    """`pod/TRAINER` of the run that saved the checkpoint."""
    if checkpoint.run_id is None:
        raise EvaluationError(f"{checkpoint.label} has no run: name the endpoint (--endpoint "
                              "pod/TRAINER)")
    return pod_endpoints.endpoint_id(runs.get_by_id(conn, checkpoint.run_id).trainer)


def find_checkpoint(conn: sqlite3.Connection, ref: str) -> checkpoints.Checkpoint:
    """By id, file name, or RUN:stepN / RUN:epochN."""
    run_name, _, mark = ref.partition(":")
    if mark and (mark.startswith("step") or mark.startswith("epoch")):
        kind, number = ("step", mark[4:]) if mark.startswith("step") else ("epoch", mark[5:])
        run = runs.get(conn, run_name)
        for c in checkpoints.for_run(conn, run.id):
            if number.isdigit() and getattr(c, kind) == int(number):
                return c
        raise EvaluationError(f"run {run_name} has no checkpoint at {kind} {number}")
    found = checkpoints.find(conn, ref)
    if found is None:
        raise EvaluationError(f"no checkpoint {ref!r}: `lorad train status RUN --json` lists "
                              "them (an id, a file name, or RUN:stepN)")
    return found


def pod_request(conn: sqlite3.Connection, endpoint_id: str, checkpoint: checkpoints.Checkpoint,
                *, pod_name: str | None = None, params: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """The request's parameters (beside prompt and seed), checked before anything is queued."""
    try:
        impl = pod_endpoints.trainer_of(endpoint_id)
    except LoradError as exc:
        raise EvaluationError(str(exc)) from None
    spec = impl.declaration.inference
    if checkpoint.state != "local" or not checkpoint.local_path \
            or not Path(checkpoint.local_path).is_file():
        raise EvaluationError(f"{checkpoint.label} is not here yet (state {checkpoint.state}): "
                              "its pull must finish first (`lorad jobs --kind checkpoint.pull`)")
    run = runs.get_by_id(conn, checkpoint.run_id) if checkpoint.run_id else None
    if pod_name:
        pod = pods.get(conn, pod_name)
    elif run is not None and run.pod_id:
        pod = pods.get_by_id(conn, run.pod_id)
    else:
        raise EvaluationError("name the pod to run it on (--pod NAME)")
    if spec.gpu_memory_gb and pod.gpus is not None:
        short = gpus.shortfall(pod.gpus, spec.gpu_memory_gb, f"{impl.title} inference")
        if short:
            raise EvaluationError(f"pod {pod.name}: {short}")
    out: dict[str, Any] = dict(params or {})
    unknown = sorted(set(out) - set(spec.params))
    if unknown:
        raise EvaluationError(f"{endpoint_id} has no parameter {unknown[0]!r} (it has: "
                              f"{', '.join(sorted(spec.params))})")
    for name in spec.files:
        value = out.get(name)
        if isinstance(value, str) and value and not value.startswith(LOCAL):
            path = Path(value).expanduser().resolve()
            if not path.is_file():
                raise EvaluationError(f"--param {name}={value}: no such file")
            out[name] = LOCAL + str(path)
    missing = [name for name in spec.required if not out.get(name)]
    if missing:
        raise EvaluationError(f"{endpoint_id} needs " + ", ".join(
            f"--param {name}=..." for name in missing))
    out.update(pod=pod.name, pod_cost_per_hour=pod.cost_per_hour,
               # a plain path, not a file:// input: its SHA-256 is known (a checkpoint is GBs;
               # the generation job would hash it again for nothing)
               checkpoint=str(checkpoint.local_path), checkpoint_sha256=checkpoint.sha256)
    if run is not None and run.pod_id == pod.id and checkpoint.remote_path:
        out["checkpoint_remote"] = checkpoint.remote_path
    return out


def caption_request(conn: sqlite3.Connection, endpoint_id: str, pod_name: str | None
                    ) -> dict[str, Any]:
    """What every draft request to a captioner on a pod carries besides its clip and prompt."""
    try:
        command = pod_endpoints.command_of(endpoint_id)
    except LoradError as exc:
        raise EvaluationError(str(exc)) from None
    if not pod_name:
        names = [p.name for p in pods.list_all(conn)]
        if len(names) != 1:
            raise EvaluationError("name the pod the captioner runs on (--pod NAME; pods: "
                                  f"{', '.join(names) or 'none: lorad pod add'})")
        pod_name = names[0]
    pod = pods.get(conn, pod_name)
    if command.spec.gpu_memory_gb and pod.gpus is not None:
        short = gpus.shortfall(pod.gpus, command.spec.gpu_memory_gb, command.title)
        if short:
            raise EvaluationError(f"pod {pod.name}: {short}")
    return {"pod": pod.name, "pod_cost_per_hour": pod.cost_per_hour}
