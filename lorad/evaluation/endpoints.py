"""The endpoints of pod commands: `pod/NAME` for every declared trainer with an inference
command, its parameters from the declaration. Besides them every request carries `pod` (where
it runs), `checkpoint` (the LoRA or weights file, a local path sent to the pod unless
`checkpoint_remote` already holds the same bytes there: `checkpoint_sha256`) and
`pod_cost_per_hour` (the price before it runs: the declared `seconds_estimate` at that rate;
what it cost is the pod time it took)."""

from __future__ import annotations

from typing import Any

from lorad.generation.endpoints import Endpoint, Param
from lorad.training import trainers
from lorad.training.trainers.command import CommandTrainer

PREFIX = "pod/"
REQUEST_PARAMS = {"pod": Param(str, required=True), "checkpoint": Param(str, required=True),
                  "checkpoint_remote": Param(str), "checkpoint_sha256": Param(str),
                  "pod_cost_per_hour": Param((int, float), 0, None)}


def _kind(default: Any) -> type | tuple:
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return (int, float) if isinstance(default, float) else int
    return str


def endpoint_id(trainer: str) -> str:
    return PREFIX + trainer


def trainer_of(endpoint: str) -> CommandTrainer:
    impl = trainers.get(endpoint.removeprefix(PREFIX))
    if not isinstance(impl, CommandTrainer) or impl.declaration.inference is None:
        raise trainers.TrainConfigError(f"{endpoint}: trainer {impl.name} declares no inference "
                                        "command ([trainers.NAME.inference])")
    return impl


def declared() -> dict[str, Endpoint]:
    out = {}
    for name, impl in trainers.TRAINERS.items():
        spec = getattr(impl, "declaration", None)
        spec = spec.inference if spec is not None else None
        if spec is None:
            continue
        seconds = spec.seconds_estimate
        params = {"prompt": Param(str), "seed": Param(int), **REQUEST_PARAMS,
                  **{key: Param(_kind(default), required=key in spec.required)
                     for key, default in spec.params.items()}}
        out[endpoint_id(name)] = Endpoint(
            endpoint_id(name), spec.media, params, price_per_output=1.0,
            billing_units=lambda p, s=seconds: s / 3600 * float(p.get("pod_cost_per_hour", 0)),
            price_verified=False, service="pod",
            price_note=f"an estimate: {seconds:g} s (the declared seconds_estimate) of the "
                       "pod's time; what it cost is the pod time it took",
            defaults={k: v for k, v in spec.params.items() if k not in spec.required})
    return out
