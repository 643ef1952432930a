"""Trainers declared as data: a trainer that is just the user's scripts (StableAvatar's
`train_1B_square.sh`...) described in `[trainers.NAME]` of lorad.toml or `trainers/NAME.toml`
beside it, run like any trainer: detached stages, exact loss points from a progress regex,
checkpoints found by a glob and pulled by SHA-256, stop, resume, cost.

The declarations are read from the workspace config the process read last
(``plugins.use_config``): the ``TRAINERS`` registry asks :func:`declared` whenever a name is
looked up, so a trainer added to lorad.toml is there for the next command without a restart of
anything but the daemon's current job. docs/COMMAND_TRAINERS.md describes every key.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import shlex
from typing import Any

from lorad.core import plugins
from lorad.datasets.formats import FORMATS
from lorad.training import logparse
from lorad.training.trainers import (
    TRAINERS,
    ModelInfo,
    PodCheck,
    ResumePlan,
    RunPaths,
    Stage,
    TrainConfigError,
)
from lorad.training.trainers.command import templates
from lorad.training.trainers.command.declaration import Declaration, DeclarationError, parse

RESUME_KEY = "_resume_state"  # in a resumed run's config: the saved state it continues from


class CommandTrainer:
    """A Trainer (lorad.training.trainers) made from a :class:`Declaration`."""

    train_stage: str
    secrets: tuple[str, ...] = ()

    def __init__(self, declaration: Declaration):
        self.declaration = d = declaration
        self.name = d.name
        self.title = d.title
        self.train_stage = d.train_stage
        self.dataset_format = f"layout:{d.name}" if d.layout else None
        self.checkpoint_glob = d.checkpoints  # relative to the run's output folder

    # -- config -----------------------------------------------------------------------------
    def load_config(self, data: dict[str, Any]) -> dict[str, Any]:
        """The declared options' defaults with `data` over them; an unknown option or one of
        the wrong type is refused with the known ones."""
        d = self.declaration
        problems = []
        config = dict(d.options)
        for key, value in data.items():
            if key == RESUME_KEY:
                config[key] = value
                continue
            if key not in d.options:
                problems.append(f"unknown option {key!r} (declared in {d.where}: "
                                f"{', '.join(sorted(d.options)) or 'none'})")
                continue
            default = d.options[key]
            if not _same_kind(value, default):
                problems.append(f"{key} must be {_kind(default)} like its default "
                                f"{default!r}, got {value!r}")
                continue
            config[key] = float(value) if isinstance(default, float) else value
        if problems:
            raise TrainConfigError(f"{self.name}: " + "; ".join(problems))
        return config

    def config_dict(self, config: dict[str, Any]) -> dict[str, Any]:
        return dict(config)

    def form_defaults(self) -> dict[str, Any]:
        return dict(self.declaration.options)

    def gpu_memory_gb(self, options: dict[str, Any]) -> float | None:
        return self.declaration.gpu_memory_gb

    # -- stages -----------------------------------------------------------------------------
    def values(self, config: dict[str, Any], paths: RunPaths) -> dict[str, Any]:
        d = self.declaration
        gpus = paths.gpus if d.gpus == "all" else d.gpus
        return {**{k: v for k, v in config.items() if k != RESUME_KEY},
                "dataset": paths.dataset, "run": paths.run, "output": paths.output,
                "logs": paths.logs, "name": paths.output_name, "workdir": d.workdir,
                "gpus": gpus}

    def resume_args(self, config: dict[str, Any], values: dict[str, Any]) -> tuple[str, str]:
        """(`{resume}`'s text, a command to run first): with `link`, the parent's state is
        linked into this run's output folder and named from there (StableAvatar's
        --resume_from_checkpoint keeps only the folder's name and looks in --output_dir)."""
        spec = self.declaration.resume
        state = config.get(RESUME_KEY)
        if not state or spec is None:
            return "", ""
        if not spec.link:
            return templates.render(spec.args, {**values, "state": state}), ""
        linked = posixpath.join(values["output"], posixpath.basename(state))
        first = (f"mkdir -p {shlex.quote(values['output'])} && ln -sfn {shlex.quote(state)} "
                 f"{shlex.quote(linked)} && ")
        return templates.render(spec.args, {**values, "state": linked}), first

    def stages(self, config: dict[str, Any], paths: RunPaths) -> list[Stage]:
        d = self.declaration
        values = self.values(config, paths)
        resume, first = self.resume_args(config, values)
        raw = {"resume": resume}
        out = []
        for spec in d.stages:
            command = templates.render(spec.command, values, raw)
            if spec.name == d.train_stage and first:
                command = first + "{ " + command + "\n}"
            cwd = templates.render(spec.cwd, values) if spec.cwd else d.workdir
            # a cwd template is quoted like a word; the stage runs `cd <cwd>` itself
            cwd = _unquote(cwd) if spec.cwd else cwd
            out.append(Stage(spec.name, spec.label, command, cwd, {**d.env, **spec.env}))
        return out

    # -- the log ----------------------------------------------------------------------------
    def events_in(self, line: str) -> list:
        m = self.declaration.progress.search(line)
        if not m:
            return []
        events: list = []
        step, total = int(m.group("step")), int(m.group("total"))
        events.append(logparse.Progress(step, total, avr_loss=logparse.parse_loss(
            m.group("loss"))))
        epoch = m.groupdict().get("epoch")
        if epoch and epoch.isdigit():
            events.append(logparse.Epoch(int(epoch), 0))
        return events

    def parser(self, offset: int = 0) -> logparse.LineParser:
        return logparse.LineParser(self.events_in, offset)

    def failure_reason(self, log_tail: str) -> str | None:
        for pattern, reason in self.declaration.failures:
            m = pattern.search(log_tail)
            if m:
                if reason == "the trainer crashed":
                    last = [line for line in log_tail.splitlines() if line.strip()][-1]
                    return f"the trainer crashed: {last.strip()}"
                return reason
        return None

    def stage_problem(self, stage: str, code: int, log_tail: str) -> str | None:
        """Why a stage that ended is not a success: an exit code not declared as one, or the
        training stage without its success marker."""
        d = self.declaration
        if code not in d.exit_codes:
            return self.failure_reason(log_tail) or f"exit code {code}"
        if stage == d.train_stage and d.success and d.success not in log_tail:
            return (f"it exited with {code} but never printed {d.success!r} (the declared "
                    "success marker)")
        return None

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint_mark(self, file_name: str, output_name: str) -> tuple[int | None, int | None]:
        """(step, epoch) of a checkpoint from its path relative to the output folder."""
        pattern = self.declaration.checkpoint_step
        m = pattern.search(file_name) if pattern else None
        if not m:
            return None, None
        epoch = m.groupdict().get("epoch")
        return int(m.group("step")), int(epoch) if epoch and epoch.isdigit() else None

    def metadata_mark(self, metadata: dict[str, str], step: int | None,
                      epoch: int | None) -> tuple[int | None, int | None]:
        if step is None and str(metadata.get("ss_steps", "")).isdigit():
            step = int(metadata["ss_steps"])
        return step, epoch

    def version_command(self, config: dict[str, Any]) -> str | None:
        d = self.declaration
        values = {**config, "workdir": d.workdir}
        if d.version_command:
            return templates.render(d.version_command, values)
        where = shlex.quote(d.workdir)
        return f"git -C {where} rev-parse HEAD 2>/dev/null || echo 'not a git checkout'"

    def sample_dir(self, paths: RunPaths) -> str | None:
        samples = self.declaration.samples
        if not samples:
            return None
        return _unquote(templates.render(samples, {"output": paths.output, "run": paths.run}))

    # -- the pod ----------------------------------------------------------------------------
    def pod_checks(self, options: dict[str, Any]) -> list[PodCheck]:
        d = self.declaration
        values = {**d.options, **options, "workdir": d.workdir}
        checks = [PodCheck("workdir", f"test -d {shlex.quote(d.workdir)} && echo found",
                           f"{d.workdir} is not on the pod: check the trainer out there (the "
                           f"workdir of {d.name}, declared in {d.where})")]
        for template in d.required_files:
            path = templates.render(template, values)
            checks.append(PodCheck(f"file {posixpath.basename(_unquote(path))}",
                                   f"test -e {path} && echo found",
                                   f"{_unquote(path)} is missing on the pod: {d.name} needs it "
                                   f"(required_files in {d.where})"))
        return checks

    # -- resume -----------------------------------------------------------------------------
    def resume_problem(self, options: dict[str, Any]) -> str | None:
        if self.declaration.resume is None:
            return (f"{self.name} declares no way to resume (add [trainers.{self.name}.resume] "
                    f"in {self.declaration.where}): start a new run")
        return None

    def resume(self, config: dict[str, Any], parent_config: dict[str, Any], output_dir: str,
               files: list[str], output_name: str, total_steps: int | None, *,
               log_head: str = "") -> ResumePlan | None:
        """The newest saved state (by the step its name says) in the output folder."""
        spec = self.declaration.resume
        if spec is None:
            return None
        states = []
        for name in files:
            if fnmatch.fnmatchcase(name, spec.state):
                m = spec.state_step.search(name)
                if m:
                    states.append((int(m.group("step")), name))
        if not states:
            return None
        step, name = max(states)
        state = posixpath.join(output_dir, name)
        new = {**config, RESUME_KEY: state}
        done = 0
        if spec.steps == "restart":
            done = step
            if spec.budget_option and isinstance(new.get(spec.budget_option), int):
                new[spec.budget_option] = max(1, new[spec.budget_option] - step)
        return ResumePlan(new, done, state)

    def model_info(self, options: dict[str, Any]) -> ModelInfo:
        d = self.declaration
        return ModelInfo(d.base_model, d.media, None, (d.name,))

    def describe(self) -> dict[str, Any]:
        """What `lorad trainers --json` says of it."""
        d = self.declaration
        return {"declared_in": d.where, "stages": [s.name for s in d.stages],
                "train_stage": d.train_stage, "options": d.options,
                "gpu_memory_gb": d.gpu_memory_gb, "gpus": d.gpus,
                "resume": d.resume is not None, "layout": d.layout is not None,
                "inference": d.inference is not None}


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, list)
    return isinstance(value, str)


def _kind(default: Any) -> str:
    return {bool: "true or false", float: "a number", int: "a whole number", list: "a list",
            str: "a string"}[type(default)]


def _unquote(word: str) -> str:
    parts = shlex.split(word)
    return parts[0] if len(parts) == 1 else word


_cache: dict[str, tuple[dict[str, CommandTrainer], dict[str, str]]] = {}


def declared() -> tuple[dict[str, CommandTrainer], dict[str, str]]:
    """The trainers declared in the workspace config read last, and the broken ones with why."""
    config = plugins.current_config()
    sources = getattr(config, "trainers", None) or {}
    key = json.dumps({n: [str(s.path), s.text, s.prefix] for n, s in sources.items()},
                     sort_keys=True)
    if key not in _cache:
        builtin = TRAINERS.registered()
        made: dict[str, CommandTrainer] = {}
        broken: dict[str, str] = {}
        for name, source in sources.items():
            try:
                made[name] = CommandTrainer(parse(source, builtin))
            except DeclarationError as exc:
                broken[name] = str(exc)
        _cache.clear()
        _cache[key] = (made, broken)
    return _cache[key]


def declared_formats() -> tuple[dict[str, Any], dict[str, str]]:
    """The export layouts of the declared trainers, as dataset formats `layout:NAME`."""
    from lorad.training.trainers.command.layout import LayoutFormat

    made, broken = declared()
    return ({f"layout:{name}": LayoutFormat(t.declaration) for name, t in made.items()
             if t.declaration.layout is not None},
            {f"layout:{name}": why for name, why in broken.items()})


TRAINERS.add_source(declared)
FORMATS.add_source(declared_formats)
