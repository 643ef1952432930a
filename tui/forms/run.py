"""Start a training run: a dataset version, a pod, a trainer and its options (TOML, checked by
the trainer as you type, before anything is uploaded), a budget."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

import tomli_w
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, Select, TextArea

from lorad.core import daemon, fmt
from lorad.datasets import export
from lorad.media import datasets
from lorad.training import pods, runs, trainers

from .base import FormError, FormScreen, chosen, labelled, number


@dataclass(frozen=True)
class Choices:
    versions: list[tuple[str, int, str]]  # (label, version id, dataset name), newest first
    pods: dict[int, pods.Pod]
    trainers: dict[str, str]  # name -> title
    last_options: dict[str, dict[str, Any]]  # trainer -> the newest run's options
    run_names: set[str]


def options_text(options: dict[str, Any]) -> str:
    """Options as TOML for the editor (None means "the trainer's default": left out)."""
    return tomli_w.dumps({k: v for k, v in options.items() if v is not None})


def starting_options(trainer: str, pod: pods.Pod | None, last: dict[str, Any] | None
                     ) -> dict[str, Any]:
    """The trainer's form defaults, what the pod's check found (paths), then the newest run's
    values of the same keys."""
    impl = trainers.get(trainer)
    options = dict(getattr(impl, "form_defaults", dict)())
    if pod is not None:
        options.update(pod.trainer_options(trainer))
    if last:
        options.update({k: v for k, v in last.items() if k in options})
    return options


class NewRunForm(FormScreen):
    TITLE = "Start a training run"
    HINT = ("The trainer checks the options as you type; the run is queued for the daemon, "
            "which brings the pod up and follows it on the Training screen.")
    SUBMIT = "start the run"

    def fields(self) -> ComposeResult:
        yield from labelled("dataset version", Select([], id="run-version"))
        yield from labelled("pod", Select([], id="run-pod"))
        yield from labelled("trainer", Select([], id="run-trainer"))
        yield from labelled("run name", Input(id="run-name"))
        yield from labelled("budget in $ (the run stops there; empty: none)",
                            Input(id="run-budget", type="number"))
        yield from labelled("trainer options (TOML)", TextArea(id="run-options",
                                                              language=None))

    def load(self, conn) -> Choices:
        names = {d.id: d.name for d in datasets.list_all(conn)}
        versions = []
        for v in export.list_versions(conn):
            name = names.get(v.dataset_id, "?")
            clips = f"{v.clip_count} clips, " if v.clip_count is not None else ""
            versions.append((f"{name} v-{v.content_hash[:8]} ({clips}{fmt.age(v.created_at)})",
                             v.id, name))
        last: dict[str, dict[str, Any]] = {}
        every = runs.list_all(conn)
        for r in sorted(every, key=lambda r: r.created_at):
            last[r.trainer] = r.config
        return Choices(versions, {p.id: p for p in pods.list_all(conn)},
                       {name: t.title for name, t in trainers.TRAINERS.items()}, last,
                       {r.name for r in every})

    def fill(self, c: Choices) -> None:
        missing = []
        if not c.versions:
            missing.append("no exported dataset version: export one first (N, Export)")
        if not c.pods:
            missing.append("no pod: add one with `lorad pod add` (or a RunPod pod)")
        if missing:
            self.query_one("#form-error").update("; ".join(missing))
        box = self.query_one("#run-version", Select)
        box.set_options((label, vid) for label, vid, _ in c.versions)
        mine = [vid for _, vid, name in c.versions if name == self.dataset]
        if c.versions:
            box.value = mine[0] if mine else c.versions[0][1]
        box = self.query_one("#run-pod", Select)
        box.set_options((f"{p.name} ({p.provider}, {p.state}, ${p.cost_per_hour:.2f}/h)", p.id)
                        for p in c.pods.values())
        if c.pods:
            box.value = next(iter(c.pods))
        box = self.query_one("#run-trainer", Select)
        box.set_options((f"{title} [{name}]", name) for name, title in c.trainers.items())
        box.value = trainers.DEFAULT if trainers.DEFAULT in c.trainers else next(iter(c.trainers))
        self.suggest_name()
        self.reset_options()

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.data is None:
            return
        if event.select.id in ("run-trainer", "run-pod"):
            self.reset_options()
        if event.select.id == "run-version":
            self.suggest_name()

    def suggest_name(self) -> None:
        c: Choices = self.data
        version = chosen(self.query_one("#run-version", Select))
        dataset = next((name for _, vid, name in c.versions if vid == version), "run")
        n = 1
        while f"{dataset}-{n}" in c.run_names:
            n += 1
        self.query_one("#run-name", Input).value = f"{dataset}-{n}"

    def reset_options(self) -> None:
        c: Choices = self.data
        trainer = chosen(self.query_one("#run-trainer", Select))
        pod = c.pods.get(chosen(self.query_one("#run-pod", Select)))
        if trainer is None:
            return
        self.query_one("#run-options", TextArea).text = options_text(
            starting_options(trainer, pod, c.last_options.get(trainer)))

    def values(self) -> dict[str, Any]:
        text = self.query_one("#run-options", TextArea).text
        try:
            options = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FormError(f"trainer options: {exc}") from None
        budget = number(self.query_one("#run-budget", Input).value, "budget")
        if budget is not None and budget <= 0:
            raise FormError("budget: a positive amount of dollars, or empty for none")
        return {"version": chosen(self.query_one("#run-version", Select)),
                "pod": chosen(self.query_one("#run-pod", Select)),
                "trainer": chosen(self.query_one("#run-trainer", Select)),
                "name": self.query_one("#run-name", Input).value.strip(),
                "budget": budget, "options": options}

    def check(self, conn, values) -> Text | str:
        if None in (values["version"], values["pod"], values["trainer"]):
            return ""
        pod = pods.get_by_id(conn, values["pod"])
        impl = trainers.get(values["trainer"])
        impl.load_config({**pod.trainer_options(values["trainer"]), **values["options"]})
        if values["name"] in self.data.run_names:
            raise FormError(f"a run named {values['name']!r} exists already")
        text = Text("the trainer accepts these options", style="green")
        text.append(f"; pod {pod.name} costs ${pod.cost_per_hour:.2f}/h", style="")
        if values["budget"]:
            hours = values["budget"] / pod.cost_per_hour if pod.cost_per_hour else None
            text.append(f", the budget stops the run at ${values['budget']:.2f}"
                        + (f" (about {fmt.duration(hours * 3600)} of pod time)" if hours
                           else ""))
        return text

    def submit(self, conn, values) -> str:
        if None in (values["version"], values["pod"], values["trainer"]):
            raise FormError("choose a dataset version, a pod and a trainer")
        r = runs.create(conn, values["name"], values["version"], values["pod"],
                        values["options"], trainer=values["trainer"], budget=values["budget"])
        runs.start(conn, r.id)
        daemon.nudge(self.app.ws)
        message = f"run {r.name} queued; the Training screen (3) follows it"
        if not daemon.status(self.app.ws).running:
            message += "; the daemon is stopped: D starts it"
        return message
