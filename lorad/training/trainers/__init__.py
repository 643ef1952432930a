"""The Trainer interface: what lorad needs to know about a trainer to run it on a pod.

A trainer validates its config, lists the stages a run goes through (each a shell command run
detached on the pod), reads its own log (steps, loss, epochs, checkpoints, failures), names its
checkpoints and saved states, says what a pod needs, and how a stopped run resumes. The
training job (``lorad.training.train_job``) loops over the stages and knows nothing else of
any trainer.

Adding one: a module that defines a class with these members and registers an instance with
``TRAINERS.register(name, instance)``; list the module in ``lorad.core.plugins.BUILTIN``
(or an entry point in the ``lorad.trainers`` group). ``musubi`` is the worked example;
``tests/support/echo_trainer.py`` the smallest one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lorad.core.errors import LoradError
from lorad.core.plugins import Registry
from lorad.training.logparse import LineParser


class TrainConfigError(LoradError):
    """A training config a trainer cannot run; the message names every problem."""


@dataclass(frozen=True)
class RunPaths:
    """Where a run's things are on the pod."""

    dataset: str  # the exported dataset version's folder
    run: str  # this run's folder
    output: str  # where checkpoints and saved states go
    logs: str  # one .log and one .exit file per stage
    output_name: str  # the stem of the run's checkpoint files
    gpus: int = 1  # the pod's GPUs, as its last check found them (a trainer may use them all)


@dataclass(frozen=True)
class Stage:
    """One step of a run: a shell command (every piece quoted) run detached in `cwd`."""

    name: str
    label: str  # what the progress line says while it runs: "caching latents"
    command: str
    cwd: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PodCheck:
    """A command that prints something when the pod has what the trainer needs."""

    name: str
    command: str
    fix: str  # what to do when it prints nothing or fails


@dataclass(frozen=True)
class ResumePlan:
    """How a new run continues a stopped one from a state the stopped one saved."""

    config: dict[str, Any]  # the new run's config: the rest of the schedule, the state to load
    done_steps: int  # steps the saved state had done (the new run's loss continues there)
    state: str  # the saved state, on the pod


@dataclass(frozen=True)
class ModelInfo:
    """What a trained LoRA is for, for model cards and generation services."""

    base_model: str | None  # the Hub id of the base model
    media: str = "video"  # video | image | audio
    expert: str | None = None  # Wan 2.2: high | low | both
    tags: tuple[str, ...] = ()


class Trainer(Protocol):
    name: str  # the registry key; runs record it
    title: str  # "musubi-tuner (Wan 2.1/2.2)"
    dataset_format: str | None  # the export format its stages read (None: any folder)
    train_stage: str  # the stage whose log carries steps, loss and checkpoints
    secrets: tuple[str, ...]  # environment variables it reads on this machine, if any

    def load_config(self, data: dict[str, Any]) -> Any:
        """The trainer's config from stored options; raises TrainConfigError naming every
        problem, before anything is uploaded."""
        ...

    def config_dict(self, config: Any) -> dict[str, Any]: ...

    def stages(self, config: Any, paths: RunPaths) -> list[Stage]:
        """The run's stages in order; the last one is usually `train_stage`."""
        ...

    def parser(self, offset: int = 0) -> LineParser:
        """A parser of `train_stage`'s log, starting at byte `offset`."""
        ...

    def failure_reason(self, log_tail: str) -> str | None:
        """Why a stage failed, in words, from its last lines (None: no idea)."""
        ...

    def checkpoint_mark(self, file_name: str, output_name: str) -> tuple[int | None, int | None]:
        """(step, epoch) a checkpoint's file name says, either may be None. `output_name` is
        the run's stem (a run called `truck-2` does not make `truck-2.safetensors` epoch 2)."""
        ...

    def metadata_mark(self, metadata: dict[str, str], step: int | None,
                      epoch: int | None) -> tuple[int | None, int | None]:
        """(step, epoch) completed from a pulled checkpoint's metadata, 1-based epochs."""
        ...

    def version_command(self, config: Any) -> str | None:
        """A shell command printing the trainer's version on the pod (musubi-tuner: its git
        commit), for the run's manifest; None when there is no way to tell."""
        ...

    def sample_dir(self, paths: RunPaths) -> str | None:
        """Where the trainer writes sample outputs during training, if it does."""
        ...

    def pod_checks(self, options: dict[str, Any]) -> list[PodCheck]:
        """What the pod needs for this trainer (besides a GPU, disk and Python), from its
        options as given (they need not be a complete config)."""
        ...

    def resume_problem(self, options: dict[str, Any]) -> str | None:
        """Why a run with these options left nothing to resume from (None: it may have)."""
        ...

    def resume(self, config: Any, parent_config: Any, output_dir: str, files: list[str],
               output_name: str, total_steps: int | None, *, log_head: str = ""
               ) -> ResumePlan | None:
        """How the new run (`config`, the parent's with any changed settings) continues the
        stopped one (`parent_config`, `total_steps`) from the states it saved (`files` are the
        names in its output folder); None when there is none to continue from."""
        ...

    # Optional globs of files in the run's output folder (`*` within one folder, `**` any
    # number of folders), listed every 10 s while the training stage runs and at its end:
    # - `checkpoint_glob`: checkpoints, for a trainer whose log does not name them;
    #   `checkpoint_mark` then gets their path relative to the output folder, and
    #   `checkpoint_name(rel, output_name) -> str | None` names them (default: the path with
    #   `-` for `/`);
    # - `state_glob`: saved states deeper than the output folder (`resume` gets their paths);
    # - `scalar_glob` with `read_scalars(path) -> events`: TensorBoard event files (eval loss);
    # - `sample_glob` with `sample_mark(rel) -> (step, prompt)`: what the trainer makes by
    #   itself at a step (ACE-Step's eval audio), pulled and made rateable generations of that
    #   step's checkpoint.
    # Optional: `stage_problem(stage, code, log_tail) -> str | None`: why a stage that ended is
    # not a success (default: any exit code but 0).
    # Optional: `form_defaults() -> dict` gives the options a new run's form in the TUI starts
    # from (the ones people change; paths come from the pod's check). Without it the form
    # starts empty. `gpu_memory_gb(options) -> float | None`: the free GPU memory a run needs;
    # a pod whose last check found less is refused before anything is uploaded.

    def model_info(self, options: dict[str, Any]) -> ModelInfo:
        """What a LoRA trained with these options is for (the options as stored: they need
        not validate, a model card is written long after the run)."""
        ...


TRAINERS: Registry[Trainer] = Registry("trainers", "trainer")
DEFAULT = "musubi"


def options_of(cls: type, data: dict[str, Any], who: str) -> Any:
    """A trainer's options dataclass from stored options; an unknown one is refused with the
    known ones (a typo never falls back to a default)."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TrainConfigError(f"unknown {who} option(s): {', '.join(unknown)} (known: "
                               f"{', '.join(sorted(known))})")
    return cls(**data)


class OptionsTrainer:
    """What trainers whose options are a dataclass share (musubi, diffusion-pipe, ACE-Step):
    `options` is the class (with `from_dict` and `as_dict`), `check` refuses what the trainer
    would fail on, `form_keys` are the options a new run's form starts from."""

    options: type
    form_keys: tuple[str, ...] = ()

    def check(self, config: Any) -> None:
        """Raise TrainConfigError naming every problem (default: none)."""

    def load_config(self, data: dict[str, Any]) -> Any:
        config = self.options.from_dict(data)
        self.check(config)
        return config

    def config_dict(self, config: Any) -> dict[str, Any]:
        return config.as_dict()

    def form_defaults(self) -> dict[str, Any]:
        defaults = self.options().as_dict()
        return {key: defaults[key] for key in self.form_keys}


def gpu_memory_gb(trainer: Trainer, options: dict[str, Any]) -> float | None:
    """What the trainer says a run with these options needs (None: it does not say)."""
    need = getattr(trainer, "gpu_memory_gb", None)
    return need(options) if need is not None else None


def get(name: str) -> Trainer:
    return TRAINERS.get(name)
