"""Evaluate on the pod: a run's checkpoint through its trainer's declared inference command
(StableAvatar's inference.py...), with the command's parameters, priced before it is sent (the
declared seconds at the pod's rate). The outputs land on the Generations screen (4), where they
are rated; the scores the command prints sit beside the ratings on the Training screen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, Select

from lorad.core.store import transaction
from lorad.evaluation import endpoints as pod_endpoints
from lorad.evaluation import requests
from lorad.generation import endpoints, generations
from lorad.training import checkpoints, pods, runs

from .base import FormError, FormScreen, chosen, labelled, queued
from .clips import PathSuggester
from .generate import parse_seeds

CORE = ("prompt", "seed")  # fields of their own (every generation records them)


@dataclass(frozen=True)
class Choices:
    checkpoints: list[tuple[str, int]]  # (label, id), newest first
    pods: list[str]
    pod: str | None  # the run's


class EvaluateForm(FormScreen):
    TITLE = "Evaluate on the pod"
    HINT = "The run's trainer's inference command, on a pod: priced before anything runs."
    SUBMIT = "run on the pod (paid: pod time)"

    def __init__(self, run_name: str, endpoint_id: str) -> None:
        super().__init__()
        self.run_name = run_name
        self.endpoint_id = endpoint_id
        self.spec = pod_endpoints.trainer_of(endpoint_id).declaration.inference
        self.random_seeds: list[int] = []

    def fields(self) -> ComposeResult:
        yield from labelled(f"checkpoint of {self.run_name}", Select([], id="ev-checkpoint"))
        yield from labelled("pod", Select([], id="ev-pod"))
        yield from labelled("prompt", Input(str(self.spec.params.get("prompt", "")),
                                            id="ev-prompt"))
        yield from labelled("seeds: a count of new random ones, or a list like 7, 8",
                            Input("1", id="ev-seeds"))
        for name, default in self.spec.params.items():
            if name in CORE:
                continue
            is_file = name in self.spec.files
            need = " (required)" if name in self.spec.required else ""
            label = f"{name}: a file here{need}" if is_file else f"{name}{need}"
            yield from labelled(label, Input(
                "" if is_file else str(default), id=f"ev-param-{name}",
                suggester=PathSuggester() if is_file else None))

    def load(self, conn) -> Choices:
        run = runs.get(conn, self.run_name)
        local = [c for c in checkpoints.for_run(conn, run.id) if c.state == "local"]
        labels = [(f"{c.label}  (step {c.step})" if c.step is not None else c.label, c.id)
                  for c in reversed(local)]
        pod = pods.get_by_id(conn, run.pod_id).name if run.pod_id else None
        return Choices(labels, [p.name for p in pods.list_all(conn)], pod)

    def fill(self, c: Choices) -> None:
        box = self.query_one("#ev-checkpoint", Select)
        box.set_options(c.checkpoints)
        if c.checkpoints:
            box.value = c.checkpoints[0][1]
        box = self.query_one("#ev-pod", Select)
        box.set_options((p, p) for p in c.pods)
        if c.pod in c.pods:
            box.value = c.pod

    def values(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, default in self.spec.params.items():
            if name in CORE:
                continue
            text = self.query_one(f"#ev-param-{name}", Input).value.strip()
            if not text:
                continue
            params[name] = _typed(text, default, name)
        return {"checkpoint": chosen(self.query_one("#ev-checkpoint", Select)),
                "pod": chosen(self.query_one("#ev-pod", Select)),
                "prompt": self.query_one("#ev-prompt", Input).value.strip(),
                "seeds": parse_seeds(self.query_one("#ev-seeds", Input).value,
                                     self.random_seeds),
                "params": params}

    def request(self, conn, values) -> dict[str, Any]:
        if values["checkpoint"] is None:
            raise FormError(f"no checkpoint of {self.run_name} is here yet: p (Pull) on the "
                            "Training screen brings them")
        checkpoint = checkpoints.get(conn, values["checkpoint"])
        return requests.pod_request(conn, self.endpoint_id, checkpoint,
                                    pod_name=values["pod"], params=values["params"])

    def check(self, conn, values) -> Text:
        extra = self.request(conn, values)
        endpoint = endpoints.get(self.endpoint_id)
        each = endpoint.price({**extra, "prompt": values["prompt"]})
        count = len(values["seeds"])
        text = Text(f"{count} evaluation(s) on pod {extra['pod']}, about ${each * count:.2f}",
                    style="bold")
        text.append(f" ({self.spec.seconds_estimate:g} s each at "
                    f"${extra['pod_cost_per_hour']:.2f}/h; the cost is the time it takes)",
                    style="yellow")
        return text

    def submit(self, conn, values) -> str:
        extra = self.request(conn, values)
        with transaction(conn):  # all of them or none
            ids = [generations.create(conn, self.endpoint_id, values["prompt"], seed=seed,
                                      extra=extra, checkpoint_id=values["checkpoint"])
                   for seed in values["seeds"]]
        return queued(self.app, f"{len(ids)} evaluation(s) queued on pod {extra['pod']}; rate "
                                "them on the Generations screen (4)")


def _typed(text: str, default: Any, name: str) -> Any:
    """A field's text as its default's type."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise FormError(f"{name}: true or false")
        return text.lower() in ("true", "yes", "1")
    try:
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise FormError(f"{name}: {text!r} is not a number") from None
    return text
