"""A command trainer's declaration: a `[trainers.NAME]` table in lorad.toml (or
`trainers/NAME.toml` beside it), read and checked into a :class:`Declaration`.

Everything is checked when it is read, before any pod is touched: unknown keys, types, every
placeholder of every template, every regular expression and its named groups. A mistake is a
:class:`DeclarationError` naming the file, the line and the key. docs/COMMAND_TRAINERS.md
describes each key; docs/trainers/stableavatar.toml is a whole example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorad.core.config import ConfigError, DeclaredTable
from lorad.training.trainers.command import templates

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
OUTPUT_GLOB = re.compile(r"^[A-Za-z0-9._\-*?/\[\]]+$")

# placeholders every stage command may use (beside the trainer's options)
RUN_FIELDS = {
    "dataset": "the exported dataset version's folder on the pod",
    "run": "this run's folder on the pod",
    "output": "where the run's checkpoints and saved states go",
    "logs": "the folder of the stages' logs",
    "name": "the run's output name (the stem of its files)",
    "workdir": "the trainer's checkout on the pod (workdir)",
    "gpus": "how many GPUs the pod has (from `lorad pod check`)",
    "resume": "empty, or the resume arguments when the run continues a stopped one",
}
CHECK_FIELDS = ("workdir",)  # required_files, version_command: the options and these
LAYOUT_FIELDS = ("name", "split", "file", "ext", "index")  # index: 00001, 00002... per split
MANIFEST_FORMATS = ("lines", "json", "jsonl", "csv")
MANIFEST_FIELDS = ("media", "folder", "caption", "caption_file", "name", "split", "width",
                   "height", "frames", "fps")
DEFAULT_FAILURES = (
    (r"CUDA out of memory|torch\.OutOfMemoryError|OutOfMemoryError",
     "CUDA out of memory (lower the resolution, frames or batch size)"),
    (r"\bloss\b[^\n]*\bnan\b|\bnan\b[^\n]*\bloss\b", "the loss became NaN (lower the learning "
                                                     "rate)"),
    (r"Traceback \(most recent call last\)", "the trainer crashed"),
)


class DeclarationError(ConfigError):
    """A declared trainer lorad cannot run: file, line, key and what is wrong."""


@dataclass(frozen=True)
class StageSpec:
    name: str
    label: str
    command: str
    cwd: str | None  # a template; None: the trainer's workdir
    env: dict[str, str]


@dataclass(frozen=True)
class ResumeSpec:
    """How a stopped run continues: the saved states are the output folder's entries named
    like `state` (a glob), their step read by `state_step`; `args` fills `{resume}`.
    `steps`: `continue` when the trainer counts on from the saved step (accelerate's
    save_state), `restart` when it counts from 0 again (then `budget_option`, if named, is
    lowered by the steps done)."""

    state: str
    state_step: re.Pattern
    args: str
    steps: str = "continue"
    budget_option: str | None = None
    link: bool = False  # the trainer looks for the state in its own output folder: link it there


@dataclass(frozen=True)
class LayoutSpec:
    """Where an export puts each clip and its caption, and the manifest the trainer reads."""

    media: str
    caption: str | None
    manifest: str | None
    manifest_format: str
    manifest_fields: tuple[str, ...]
    buckets: bool  # the trainer buckets by size; without, one resolution per dataset


@dataclass(frozen=True)
class InferenceSpec:
    """A command on the pod that makes one output from a checkpoint (evaluation)."""

    command: str
    output: str  # a glob under {out}
    media: str
    params: dict[str, Any]  # name -> default ("" and required when listed in `required`)
    files: tuple[str, ...]  # params that are local files, sent to the pod
    required: tuple[str, ...]
    gpu_memory_gb: float | None
    cwd: str | None
    env: dict[str, str]
    seconds_estimate: float  # for the price shown before it runs


@dataclass(frozen=True)
class Declaration:
    name: str
    title: str
    where: str  # "file:line" of its table
    workdir: str
    stages: tuple[StageSpec, ...]
    train_stage: str
    options: dict[str, Any]
    env: dict[str, str]
    progress: re.Pattern
    checkpoints: str  # a glob relative to {output}: .safetensors, or .pt/.pth/.ckpt/.bin
    checkpoint_step: re.Pattern | None
    success: str | None
    exit_codes: tuple[int, ...]
    failures: tuple[tuple[re.Pattern, str], ...]
    required_files: tuple[str, ...]
    gpu_memory_gb: float | None
    gpus: str | int
    version_command: str | None
    samples: str | None
    media: str
    base_model: str | None
    resume: ResumeSpec | None = None
    layout: LayoutSpec | None = None
    inference: InferenceSpec | None = None


class Locator:
    """Lines of a declaration's keys (tomllib gives values, not positions): the first line of
    `key = ` under the table's header, the n-th one for arrays of tables."""

    def __init__(self, source: DeclaredTable):
        self.source = source
        self.lines = source.text.splitlines()

    def line(self, table: str, key: str | None = None, nth: int = 0) -> int:
        target = ".".join(p for p in (self.source.prefix, table) if p)
        header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")
        # a file of its own starts with the trainer's table: its top keys are in effect under ""
        current, seen, start = "", (0 if target == "" else -1), None
        for number, text in enumerate(self.lines, start=1):
            m = header.match(text)
            if m:
                current = m.group(1).replace('"', "").replace(" ", "")
                if current == target:
                    seen += 1
                    if seen == nth and key is None:
                        return number
                    if seen == nth:
                        start = number
                continue
            if key is not None and current == target and seen == nth and re.match(
                    rf'^\s*"?{re.escape(key)}"?\s*=', text):
                return number
        if start is not None:
            return start
        if table:  # an inline table, or a key of the parent
            parent, _, last = table.rpartition(".")
            return self.line(parent, last.split("[")[0])
        return 1

    def error(self, table: str, key: str | None, message: str, nth: int = 0
              ) -> DeclarationError:
        owner = self.source.prefix or f"trainers.{self.source.name}"
        dotted = ".".join(p for p in (owner, table, key) if p)
        return DeclarationError(f"{self.source.path}:{self.line(table, key, nth)}: {dotted}: "
                                f"{message}")


TOP_KEYS = {"title", "workdir", "stages", "train_stage", "options", "env", "progress",
            "checkpoints", "checkpoint_step", "success", "exit_codes", "failures",
            "required_files", "gpu_memory_gb", "gpus", "version_command", "samples", "media",
            "base_model", "resume", "layout", "inference"}
STAGE_KEYS = {"name", "label", "command", "cwd", "env"}
RESUME_KEYS = {"state", "state_step", "args", "steps", "budget_option", "link"}
LAYOUT_KEYS = {"media", "caption", "manifest", "manifest_format", "manifest_fields", "buckets"}
INFERENCE_KEYS = {"command", "output", "media", "params", "files", "required", "gpu_memory_gb",
                  "cwd", "env", "seconds_estimate"}
# placeholders an inference command may use (beside its params and the trainer's options; a
# param of an option's name is the param)
INFERENCE_FIELDS = {
    "checkpoint": "the checkpoint (LoRA) file on the pod",
    "out": "an empty folder for this request's outputs",
    "workdir": "the trainer's workdir",
    "gpus": "how many GPUs the pod has",
}


def parse(source: DeclaredTable, builtin: set[str] = frozenset()) -> Declaration:
    """The declaration, checked; raises DeclarationError at the first problem."""
    at = Locator(source)
    table = source.table
    name = source.name
    if not NAME.match(name):
        raise at.error("", None, "a trainer's name is lowercase letters, digits, - and _")
    if name in builtin:
        raise at.error("", None, f"{name!r} is a built-in trainer's name: pick another")
    _known(at, "", table, TOP_KEYS)
    options = _options(at, table.get("options", {}))
    env = _env(at, "", table.get("env", {}))
    workdir = _str(at, "", "workdir", table, required=True)
    stage_fields = set(RUN_FIELDS) | set(options)
    stages = _stages(at, table.get("stages"), stage_fields)
    names = [s.name for s in stages]
    train_stage = _str(at, "", "train_stage", table) or names[-1]
    if train_stage not in names:
        raise at.error("", "train_stage", f"no stage named {train_stage!r} (stages: "
                                          f"{', '.join(names)})")
    progress = _regex(at, "", "progress", table, required=True,
                      groups=("step", "total", "loss"), optional=("epoch",))
    checkpoints = _str(at, "", "checkpoints", table, required=True)
    if checkpoints.startswith("/") or ".." in checkpoints.split("/"):
        raise at.error("", "checkpoints", "a glob relative to the run's output folder, such "
                                          "as 'checkpoint-*/*.safetensors'")
    check_fields = set(CHECK_FIELDS) | set(options)
    required_files = tuple(_str_list(at, "", "required_files", table))
    for n, path in enumerate(required_files):
        _template(at, "", "required_files", path, check_fields, what=f"item {n + 1}")
    version = _str(at, "", "version_command", table)
    if version:
        _template(at, "", "version_command", version, check_fields)
    samples = _str(at, "", "samples", table)
    if samples:
        _template(at, "", "samples", samples, {"output", "run"})
    gpus = table.get("gpus", 1)
    if not (gpus == "all" or isinstance(gpus, int) and not isinstance(gpus, bool) and gpus >= 1):
        raise at.error("", "gpus", f"'all' or a number of GPUs, got {gpus!r}")
    memory = _number(at, "", "gpu_memory_gb", table)
    exit_codes = table.get("exit_codes", [0])
    if not (isinstance(exit_codes, list) and exit_codes
            and all(isinstance(c, int) and not isinstance(c, bool) for c in exit_codes)):
        raise at.error("", "exit_codes", "a list of exit codes that mean success, e.g. [0]")
    media = _str(at, "", "media", table) or "video"
    if media not in ("video", "image", "audio"):
        raise at.error("", "media", f"video, image or audio, got {media!r}")
    return Declaration(
        name=name, title=_str(at, "", "title", table) or f"{name} (declared)",
        where=f"{source.path}:{at.line('')}", workdir=workdir, stages=stages,
        train_stage=train_stage, options=options, env=env, progress=progress,
        checkpoints=checkpoints,
        checkpoint_step=_regex(at, "", "checkpoint_step", table, groups=("step",),
                               optional=("epoch",)),
        success=_str(at, "", "success", table), exit_codes=tuple(exit_codes),
        failures=_failures(at, table.get("failures", [])) + tuple(
            (re.compile(p, re.IGNORECASE), why) for p, why in DEFAULT_FAILURES),
        required_files=required_files, gpu_memory_gb=memory, gpus=gpus,
        version_command=version, samples=samples, media=media,
        base_model=_str(at, "", "base_model", table),
        resume=_resume(at, table.get("resume"), options, stage_fields),
        layout=_layout(at, table.get("layout")),
        inference=_inference(at, table.get("inference"), media, options))


def _known(at: Locator, where: str, table: Any, keys: set[str]) -> None:
    if not isinstance(table, dict):
        raise at.error(where.rpartition(".")[0], where.rpartition(".")[2],
                       "must be a table")
    for key in table:
        if key not in keys:
            raise at.error(where, key, f"unknown key (known: {', '.join(sorted(keys))})")


def _str(at: Locator, where: str, key: str, table: dict, *, required: bool = False
         ) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise at.error(where, key, "is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise at.error(where, key, f"must be a {'non-empty ' if required else ''}string, got "
                                   f"{value!r}")
    return value


def _str_list(at: Locator, where: str, key: str, table: dict) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise at.error(where, key, "must be a list of strings")
    return value


def _number(at: Locator, where: str, key: str, table: dict) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise at.error(where, key, f"must be a positive number, got {value!r}")
    return float(value)


def _env(at: Locator, where: str, table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        raise at.error(where, "env", "must be a table of NAME = \"value\"")
    for key, value in table.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise at.error(where, "env", f"{key!r} is not an environment variable name")
        if not isinstance(value, str):
            raise at.error(where, "env", f"{key} must be a string, got {value!r}")
    return dict(table)


def _options(at: Locator, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise at.error("", "options", "must be a table of option = default")
    for key, value in table.items():
        if not key.isidentifier():
            raise at.error("options", key, "an option's name is letters, digits and _ (it "
                                           "is a placeholder)")
        if key in RUN_FIELDS:
            raise at.error("options", key, f"{{{key}}} is lorad's placeholder ("
                                           f"{RUN_FIELDS[key]}): name the option otherwise")
        ok = isinstance(value, (str, int, float, bool)) or (
            isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value))
        if not ok:
            raise at.error("options", key, "must be a string, number, true/false or a list")
    return dict(table)


def _template(at: Locator, where: str, key: str, template: str, known: set[str], *,
              nth: int = 0, what: str = "", raw: tuple[str, ...] = ()) -> None:
    said = f"{what}: " if what else ""
    try:
        bad = templates.unknown(template, known | set(raw))
    except templates.TemplateError as exc:
        raise at.error(where, key, f"{said}{exc}", nth) from None
    if bad:
        raise at.error(where, key, f"{said}unknown placeholder {{{bad[0]}}} (known: "
                                   f"{', '.join('{' + k + '}' for k in sorted(known))})", nth)


def _regex(at: Locator, where: str, key: str, table: dict, *, required: bool = False,
           groups: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> re.Pattern | None:
    text = _str(at, where, key, table, required=required)
    if text is None:
        return None
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise at.error(where, key, f"not a valid regular expression: {exc}") from None
    named = set(pattern.groupindex)
    missing = [g for g in groups if g not in named]
    if missing:
        raise at.error(where, key, f"needs the named group(s) {', '.join(missing)}: "
                                   f"(?P<{missing[0]}>...)")
    extra = sorted(named - set(groups) - set(optional))
    if extra:
        raise at.error(where, key, f"unknown named group {extra[0]!r} (known: "
                                   f"{', '.join((*groups, *optional))})")
    return pattern


def _stages(at: Locator, items: Any, known: set[str]) -> tuple[StageSpec, ...]:
    if not isinstance(items, list) or not items:
        raise at.error("", "stages", "at least one [[trainers.NAME.stages]] with a name and a "
                                     "command")
    stages, seen = [], set()
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise at.error("", "stages", "each stage is a table [[trainers.NAME.stages]]")
        for key in item:
            if key not in STAGE_KEYS:
                raise at.error("stages", key, f"unknown key (known: "
                                              f"{', '.join(sorted(STAGE_KEYS))})", n)
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise at.error("stages", "name", "a stage's name is lowercase letters, digits, - "
                                             "and _", n)
        if name in seen:
            raise at.error("stages", "name", f"two stages are named {name!r}", n)
        seen.add(name)
        command = item.get("command")
        if not isinstance(command, str) or not command.strip():
            raise at.error("stages", "command", "is required: the shell command of the stage",
                           n)
        _template(at, "stages", "command", command, known, nth=n)
        cwd = item.get("cwd")
        if cwd is not None:
            if not isinstance(cwd, str):
                raise at.error("stages", "cwd", "must be a string", n)
            _template(at, "stages", "cwd", cwd, known - {"resume"}, nth=n)
        label = item.get("label", name)
        if not isinstance(label, str):
            raise at.error("stages", "label", "must be a string", n)
        stages.append(StageSpec(name, label, command, cwd, _env(at, "stages", item.get("env",
                                                                                    {}))))
    return tuple(stages)


def _failures(at: Locator, items: Any) -> tuple[tuple[re.Pattern, str], ...]:
    if not isinstance(items, list):
        raise at.error("", "failures", "a list of { pattern = '...', reason = '...' }")
    out = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"pattern", "reason"} \
                or not isinstance(item.get("pattern"), str):
            raise at.error("", "failures", "each item is { pattern = '<regex>', reason = '<what "
                                           "to do>' }")
        try:
            pattern = re.compile(item["pattern"])
        except re.error as exc:
            raise at.error("", "failures", f"{item['pattern']!r} is not a valid regular "
                                           f"expression: {exc}") from None
        out.append((pattern, str(item.get("reason") or f"the log says {item['pattern']}")))
    return tuple(out)


def _resume(at: Locator, table: Any, options: dict[str, Any], known: set[str]
            ) -> ResumeSpec | None:
    if table is None:
        return None
    _known(at, "resume", table, RESUME_KEYS)
    state = _str(at, "resume", "state", table, required=True)
    if "/" in state:
        raise at.error("resume", "state", "a glob of names in the run's output folder, such as "
                                          "'checkpoint-*'")
    args = _str(at, "resume", "args", table, required=True)
    _template(at, "resume", "args", args, (known - {"resume"}) | {"state"})
    steps = _str(at, "resume", "steps", table) or "continue"
    if steps not in ("continue", "restart"):
        raise at.error("resume", "steps", "continue (the trainer counts on from the saved "
                                          "step) or restart (it counts from 0 again)")
    budget = _str(at, "resume", "budget_option", table)
    if budget is not None and not isinstance(options.get(budget), int):
        raise at.error("resume", "budget_option", f"{budget!r} is not an integer option of "
                                                  "this trainer")
    link = table.get("link", False)
    if not isinstance(link, bool):
        raise at.error("resume", "link", "true or false")
    return ResumeSpec(state, _regex(at, "resume", "state_step", table, required=True,
                                    groups=("step",)), args, steps, budget, link)


def _layout(at: Locator, table: Any) -> LayoutSpec | None:
    if table is None:
        return None
    _known(at, "layout", table, LAYOUT_KEYS)
    media = _str(at, "layout", "media", table, required=True)
    _template(at, "layout", "media", media, set(LAYOUT_FIELDS))
    caption = _str(at, "layout", "caption", table)
    if caption:
        _template(at, "layout", "caption", caption, set(LAYOUT_FIELDS))
    for key, path in (("media", media), ("caption", caption)):
        if path and (path.startswith("/") or ".." in path.split("/")):
            raise at.error("layout", key, "a path inside the dataset folder, such as "
                                          "'{split}/{name}/video.mp4'")
    manifest = _str(at, "layout", "manifest", table)
    fmt = _str(at, "layout", "manifest_format", table) or "lines"
    if fmt not in MANIFEST_FORMATS:
        raise at.error("layout", "manifest_format", f"one of {', '.join(MANIFEST_FORMATS)}")
    fields_ = _str_list(at, "layout", "manifest_fields", table) or ["media"]
    bad = [f for f in fields_ if f not in MANIFEST_FIELDS]
    if bad:
        raise at.error("layout", "manifest_fields", f"unknown field {bad[0]!r} (known: "
                                                    f"{', '.join(MANIFEST_FIELDS)})")
    if manifest:
        _template(at, "layout", "manifest", manifest, {"split"})
    buckets = table.get("buckets", False)
    if not isinstance(buckets, bool):
        raise at.error("layout", "buckets", "true or false")
    return LayoutSpec(media, caption, manifest, fmt, tuple(fields_), buckets)


def _inference(at: Locator, table: Any, media: str, options: dict[str, Any], *,
               where: str = "inference", fields: dict[str, str] = INFERENCE_FIELDS,
               extra_keys: frozenset[str] = frozenset()) -> InferenceSpec | None:
    """An inference command's table (`where` in the declaration: "" for a captioner, whose
    table is the command's)."""
    if table is None:
        return None
    _known(at, where, {k: v for k, v in table.items() if k not in extra_keys}, INFERENCE_KEYS)
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise at.error(where, "params", "a table of name = default")
    for key, value in params.items():
        if not key.isidentifier() or key in fields:
            raise at.error(_at(where, "params"), key, "a parameter's name is letters, digits "
                                                    "and _, and not one of "
                                                    f"{', '.join(fields)}")
        if not isinstance(value, (str, int, float, bool)):
            raise at.error(_at(where, "params"), key, "a default string, number or true/false")
    files = tuple(_str_list(at, where, "files", table))
    required = tuple(_str_list(at, where, "required", table))
    for key, names in (("files", files), ("required", required)):
        bad = [n for n in names if n not in params]
        if bad:
            raise at.error(where, key, f"{bad[0]!r} is not one of its params")
    known = set(fields) | set(params) | set(options)
    command = _str(at, where, "command", table, required=True)
    _template(at, where, "command", command, known)
    output = _str(at, where, "output", table, required=True)
    if output.startswith("/") or ".." in output.split("/") or not OUTPUT_GLOB.match(output):
        # it goes to the shell unquoted (a glob): letters, digits and glob characters only
        raise at.error(where, "output", "a glob in the request's {out} folder, such as "
                                        "'*.mp4' (letters, digits, . _ - / and * ? [ ])")
    cwd = _str(at, where, "cwd", table)
    if cwd:
        _template(at, where, "cwd", cwd, {"workdir"} | set(options))
    out_media = _str(at, where, "media", table) or media
    if out_media not in ("video", "image", "audio", "text"):
        raise at.error(where, "media", "video, image, audio or text (a caption)")
    return InferenceSpec(command, output, out_media, dict(params), files, required,
                         _number(at, where, "gpu_memory_gb", table), cwd,
                         _env(at, where, table.get("env", {})),
                         _number(at, where, "seconds_estimate", table) or 120.0)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def source_of(path: Path, name: str, table: dict[str, Any], text: str = "") -> DeclaredTable:
    """A source for a table given in code (tests, a trainer file read elsewhere)."""
    return DeclaredTable(name, table, path, text, "")
