"""The endpoints of pod commands, made from the declarations:

- `pod/NAME` for every declared trainer with an inference command (`[trainers.NAME.inference]`):
  a checkpoint through it. Its requests carry `checkpoint` (the file here; sent to the pod
  unless `checkpoint_remote` still holds the same bytes there, `checkpoint_sha256`);
- `pod/caption/NAME` for every `[captioners.NAME]`: one clip (`clip`) and the instructions
  (`prompt`) to a caption (lorad.evaluation.captioners).

Every request also carries `pod` (where it runs) and `pod_cost_per_hour` (its price before it
runs: the declared `seconds_estimate` at that rate; what it cost is the pod time it took).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lorad.core import plugins
from lorad.core.errors import LoradError
from lorad.generation.endpoints import POD_CAPTION_PREFIX, Endpoint, Param
from lorad.training import trainers
from lorad.training.trainers.command import CommandTrainer
from lorad.training.trainers.command.declaration import DeclarationError, InferenceSpec

PREFIX = "pod/"
CAPTION_PREFIX = POD_CAPTION_PREFIX
REQUEST_PARAMS = {"pod": Param(str, required=True), "checkpoint": Param(str),
                  "checkpoint_remote": Param(str), "checkpoint_sha256": Param(str),
                  "pod_cost_per_hour": Param((int, float), 0, None)}


class PodCommandError(LoradError):
    """An endpoint that names no usable pod command."""


@dataclass(frozen=True)
class PodCommand:
    """What the pod service needs of a declared command, whoever declared it."""

    endpoint: str
    title: str
    workdir: str
    options: dict[str, Any]  # the trainer's (model paths...), usable in the command
    env: dict[str, str]
    spec: InferenceSpec
    file_params: tuple[str, ...]  # parameters that are local files, sent to the pod
    needs_checkpoint: bool
    failure_reason: Callable[[str], str | None]
    reads: str | None = None  # a captioner: the media of the clips it reads


def endpoint_id(trainer: str) -> str:
    return PREFIX + trainer


def caption_endpoint_id(name: str) -> str:
    return CAPTION_PREFIX + name


def trainer_of(endpoint: str) -> CommandTrainer:
    impl = trainers.get(endpoint.removeprefix(PREFIX))
    if not isinstance(impl, CommandTrainer) or impl.declaration.inference is None:
        raise PodCommandError(f"{endpoint}: trainer {impl.name} declares no inference command "
                              "([trainers.NAME.inference])")
    return impl


def _declared_key(kinds: tuple[str, ...]) -> str:
    """What the workspace config last read declares of these kinds (changes when they do)."""
    config = plugins.current_config()
    return json.dumps({kind: {n: [str(s.path), s.text] for n, s in
                              (getattr(config, kind, None) or {}).items()} for kind in kinds},
                      sort_keys=True)


_parsed: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}


def _captioners() -> tuple[dict[str, Any], dict[str, str]]:
    """The declared captioners, and the broken ones with why (parsed once per config)."""
    from lorad.evaluation.captioners import parse

    key = _declared_key(("captioners",))
    if key not in _parsed:
        made, broken = {}, {}
        for name, source in (getattr(plugins.current_config(), "captioners", None)
                             or {}).items():
            try:
                made[name] = parse(source)
            except DeclarationError as exc:
                broken[name] = str(exc)
        _parsed.clear()
        _parsed[key] = (made, broken)
    return _parsed[key]


def problems() -> dict[str, str]:
    """Endpoints whose declaration is broken: why, by endpoint id."""
    broken = {caption_endpoint_id(n): why for n, why in _captioners()[1].items()}
    broken.update({endpoint_id(n): why for n, why in trainers.TRAINERS.problems().items()})
    return broken


def command_of(endpoint: str) -> PodCommand:
    """The pod command an endpoint names."""
    from lorad.training.logparse import common_failure

    if endpoint.startswith(CAPTION_PREFIX):
        name = endpoint.removeprefix(CAPTION_PREFIX)
        made, broken = _captioners()
        if name in broken:
            raise PodCommandError(broken[name])
        if name not in made:
            raise PodCommandError(f"no captioner {name!r} is declared ([captioners.NAME] in "
                                  f"lorad.toml; declared: {', '.join(made) or 'none'})")
        c = made[name]
        return PodCommand(endpoint, c.title, c.workdir, {}, {}, c.spec,
                          ("clip", *c.spec.files), False, common_failure, c.reads)
    impl = trainer_of(endpoint)
    d = impl.declaration
    return PodCommand(endpoint, d.title, d.workdir, dict(d.options), dict(d.env), d.inference,
                      d.inference.files, True, impl.failure_reason)


def _kind(default: Any) -> type | tuple:
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return (int, float) if isinstance(default, float) else int
    return str


def _endpoint(eid: str, spec: InferenceSpec, core: dict[str, Param], reads: str | None
              ) -> Endpoint:
    seconds = spec.seconds_estimate
    params = {"prompt": Param(str), "seed": Param(int), **REQUEST_PARAMS, **core,
              **{key: Param(_kind(default), required=key in spec.required)
                 for key, default in spec.params.items()}}
    return Endpoint(
        eid, spec.media, params, price_per_output=1.0,
        billing_units=lambda p, s=seconds: s / 3600 * float(p.get("pod_cost_per_hour", 0)),
        price_verified=False, service="pod", reads=reads,
        price_note=f"an estimate: {seconds:g} s (the declared seconds_estimate) of the pod's "
                   "time; what it cost is the pod time it took",
        defaults={k: v for k, v in spec.params.items() if k not in spec.required})


_cache: dict[str, dict[str, Endpoint]] = {}


def declared() -> dict[str, Endpoint]:
    """Every pod command's endpoint (built again only when the declarations change)."""
    key = _declared_key(("trainers", "captioners"))
    if key in _cache:
        return _cache[key]
    out = {}
    for name, impl in trainers.TRAINERS.items():
        spec = getattr(impl, "declaration", None)
        spec = spec.inference if spec is not None else None
        if spec is not None:
            out[endpoint_id(name)] = _endpoint(endpoint_id(name), spec,
                                               {"checkpoint": Param(str, required=True)}, None)
    for name, c in _captioners()[0].items():
        eid = caption_endpoint_id(name)
        out[eid] = _endpoint(eid, c.spec, {"clip": Param(str, required=True),
                                           "prompt": Param(str, required=True)}, c.reads)
    _cache.clear()
    _cache[key] = out
    return out
