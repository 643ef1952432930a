"""ACE-Step (ace-step/ACE-Step v1, trainer.py at d612523) training a music LoRA with PyTorch
Lightning: one stage, `python trainer.py --dataset_path ... --lora_config_path ...`, on the
`ace-step` export (`hf_train/`, `lora_config.json`).

Its log is Lightning's tqdm bar, which counts the batches of the current epoch:
`Epoch E:  P%|bar| b/B [elapsed<remaining, rate, v_num=..., train/denoising_loss=...,
train/loss=..., ...]`; the global step is `(E * B + b) / accumulate_grad_batches`, one loss
point each. ModelCheckpoint writes `epoch=E-step=S.ckpt` (the whole state, for `--ckpt_path`)
and the model's `on_save_checkpoint` a PEFT folder `epoch=E-step=S_lora/` beside it, under the
logger's version folder (`LOGGER/lightning_logs/VERSION/checkpoints/`). The LoRA folders'
`adapter_model.safetensors` come down; the `.ckpt` states stay on the pod for resuming.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from lorad.training import logparse
from lorad.training.ssh import ENV_NAME
from lorad.training.trainers import (
    TRAINERS,
    ModelInfo,
    OptionsTrainer,
    PodCheck,
    ResumePlan,
    RunPaths,
    Stage,
    TrainConfigError,
    options_of,
)

BAR = re.compile(r"Epoch (\d+):\s*\d+%\|[^|]*\|\s*(\d+)/(\d+) \[[^\]]*?train/loss=([^,\]\s]+)")
TOTAL = re.compile(r"^lorad: max_steps=(\d+)$")
MARK = re.compile(r"epoch=(\d+)-step=(\d+)")
PRECISIONS = ("32", "16", "bf16", "16-mixed", "bf16-mixed", "32-true")


@dataclass
class AceConfig:
    ace_step_dir: str = "/workspace/ACE-Step"
    python: str = "python"
    checkpoint_dir: str = ""  # the base model (ACEStepPipeline downloads into it when empty)
    learning_rate: float = 1e-4
    max_steps: int = 2000
    every_n_train_steps: int = 2000  # a checkpoint (and LoRA) this often
    every_plot_step: int = 2000  # eval audio this often
    precision: str = "bf16"
    gradient_clip_val: float = 0.5
    accumulate_grad_batches: int = 1
    devices: int | str = 1  # "all": every GPU the pod has
    num_workers: int = 8
    shift: float = 3.0
    ckpt_path: str | None = None  # resume from this .ckpt (lorad sets it on resume)
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AceConfig:
        return options_of(cls, data, "ACE-Step")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(cfg: AceConfig) -> None:
    problems = []
    if not cfg.checkpoint_dir:
        problems.append("checkpoint_dir (the base model's folder on the pod) is required")
    if cfg.precision not in PRECISIONS:
        problems.append(f"precision {cfg.precision!r} is not one of {', '.join(PRECISIONS)}")
    for key in ("max_steps", "every_n_train_steps", "every_plot_step",
                "accumulate_grad_batches"):
        if getattr(cfg, key) < 1:
            problems.append(f"{key} must be 1 or more")
    if not (cfg.devices == "all" or isinstance(cfg.devices, int) and cfg.devices >= 1):
        problems.append("devices: a number of GPUs, or 'all'")
    bad = [k for k in cfg.env if not ENV_NAME.match(k)]
    if bad:
        problems.append(f"env name {bad[0]!r} is not an environment variable name")
    if problems:
        raise TrainConfigError("ACE-Step: " + "; ".join(problems))


class BarReader:
    """Lightning's bar to global steps: E * B + b batches, over the accumulation."""

    def __init__(self, accumulate: int):
        self.accumulate = max(1, accumulate)

    def __call__(self, line: str) -> list:
        m = BAR.search(line)
        if m:
            epoch, batch, per_epoch = int(m.group(1)), int(m.group(2)), int(m.group(3))
            batches = epoch * per_epoch + batch
            if batches % self.accumulate:
                return []  # between optimizer steps
            return [logparse.Progress(batches // self.accumulate, 0,
                                      avr_loss=logparse.parse_loss(m.group(4))),
                    logparse.Epoch(epoch + 1, 0)]
        m = TOTAL.match(line)
        return [logparse.TotalSteps(int(m.group(1)))] if m else []


class AceStep(OptionsTrainer):
    name = "ace-step"
    title = "ACE-Step (music LoRAs, PyTorch Lightning)"
    dataset_format = "ace-step"
    train_stage = "train"
    secrets: tuple[str, ...] = ()
    options = AceConfig
    form_keys = ("checkpoint_dir", "learning_rate", "max_steps", "every_n_train_steps",
                 "every_plot_step", "precision")

    def check(self, config: AceConfig) -> None:
        check(config)

    def gpu_memory_gb(self, options: dict[str, Any]) -> float | None:
        """ACE-Step's README: LoRA training of the 3.5B model needs about 20 GB+ (r 256)."""
        return 20.0

    def stages(self, config: AceConfig, paths: RunPaths) -> list[Stage]:
        devices = paths.gpus if config.devices == "all" else int(config.devices)
        q = shlex.quote
        args = [q(config.python), "trainer.py",
                "--dataset_path", q(posixpath.join(paths.dataset, "hf_train")),
                "--exp_name", q(paths.output_name),
                "--lora_config_path", q(posixpath.join(paths.dataset, "lora_config.json")),
                "--checkpoint_dir", q(config.checkpoint_dir), "--logger_dir", q(paths.output),
                "--every_n_train_steps", str(int(config.every_n_train_steps)),
                "--every_plot_step", str(int(config.every_plot_step)),
                "--precision", q(config.precision),
                "--gradient_clip_val", repr(float(config.gradient_clip_val)),
                "--max_steps", str(int(config.max_steps)),
                "--learning_rate", repr(float(config.learning_rate)),
                "--accumulate_grad_batches", str(int(config.accumulate_grad_batches)),
                "--devices", str(devices), "--num_workers", str(int(config.num_workers)),
                "--shift", repr(float(config.shift))]
        if config.ckpt_path:
            args += ["--ckpt_path", q(config.ckpt_path)]
        command = f"echo lorad: max_steps={int(config.max_steps)} && " + " ".join(args)
        return [Stage("train", "training", command, config.ace_step_dir, dict(config.env))]

    def parser(self, offset: int = 0) -> logparse.LineParser:
        return logparse.LineParser(BarReader(1), offset)

    def config_parser(self, config: AceConfig, offset: int = 0) -> logparse.LineParser:
        return logparse.LineParser(BarReader(config.accumulate_grad_batches), offset)

    def failure_reason(self, log_tail: str) -> str | None:
        if "No such file or directory" in log_tail and "dataset" in log_tail:
            return "the dataset is not where the run points (export it again?)"
        return logparse.common_failure(log_tail)

    # -- checkpoints --------------------------------------------------------------------------
    # under the logger's version folder, whatever its depth
    checkpoint_glob = "**/checkpoints/*_lora/adapter_model.safetensors"
    state_glob = "**/checkpoints/*.ckpt"
    sample_glob = "**/eval_results/step_*/pred_wav_*.wav"  # its model's, not the target_

    def checkpoint_mark(self, file_name: str, output_name: str) -> tuple[int | None, int | None]:
        m = MARK.search(file_name)
        return (int(m.group(2)), int(m.group(1)) + 1) if m else (None, None)

    def checkpoint_name(self, rel: str, output_name: str) -> str | None:
        m = MARK.search(rel)
        return f"{output_name}-step{int(m.group(2)):06d}.safetensors" if m else None

    def metadata_mark(self, metadata: dict[str, str], step: int | None,
                      epoch: int | None) -> tuple[int | None, int | None]:
        return step, epoch

    def sample_mark(self, rel: str) -> tuple[int | None, str | None]:
        m = re.search(r"step_(\d+)/pred_wav_(.+)_\d+\.wav$", rel)
        if not m:
            return None, None
        return int(m.group(1)), f"eval audio of {m.group(2)} at step {m.group(1)}"

    def version_command(self, config: AceConfig) -> str | None:
        where = shlex.quote(config.ace_step_dir)
        return f"git -C {where} rev-parse HEAD 2>/dev/null || echo 'not a git checkout'"

    def sample_dir(self, paths: RunPaths) -> str | None:
        return None  # eval audio lives in step folders (eval_results/step_N/)

    def pod_checks(self, options: dict[str, Any]) -> list[PodCheck]:
        cfg = AceConfig.from_dict({k: v for k, v in options.items()
                                   if k in AceConfig.__dataclass_fields__})
        where = shlex.quote(cfg.ace_step_dir)
        checks = [PodCheck("ace-step", f"test -f {where}/trainer.py && echo found",
                           f"ACE-Step not found at {cfg.ace_step_dir}: git clone "
                           f"https://github.com/ace-step/ACE-Step {cfg.ace_step_dir} && pip "
                           f"install -e {cfg.ace_step_dir}"),
                  PodCheck("python", f"{shlex.quote(cfg.python)} --version 2>&1",
                           f"`{cfg.python}` is not on the pod's PATH")]
        if cfg.checkpoint_dir:
            checks.append(PodCheck(
                "base model", f"test -n \"$(ls -A {shlex.quote(cfg.checkpoint_dir)} "
                              "2>/dev/null)\" && echo found",
                f"the ACE-Step base model is not in {cfg.checkpoint_dir}: download it there "
                "(huggingface-cli download ACE-Step/ACE-Step-v1-3.5B --local-dir "
                f"{cfg.checkpoint_dir}) before a run (the trainer would fetch 7 GB on the "
                "clock)"))
        return checks

    def resume_problem(self, options: dict[str, Any]) -> str | None:
        return None

    def resume(self, config: AceConfig, parent_config: AceConfig, output_dir: str,
               files: list[str], output_name: str, total_steps: int | None, *,
               log_head: str = "") -> ResumePlan | None:
        """The last `.ckpt` (by its step) unless the new run names one (ckpt_path); Lightning
        restores the global step, so the count goes on."""
        if config.ckpt_path:
            return ResumePlan(config.as_dict(), 0, config.ckpt_path)
        marked = [(int(m.group(2)), name) for name in files
                  if (m := MARK.search(posixpath.basename(name)))]
        if not marked:
            return None
        _step, name = max(marked)
        state = posixpath.join(output_dir, name)
        return ResumePlan({**config.as_dict(), "ckpt_path": state}, 0, state)

    def model_info(self, options: dict[str, Any]) -> ModelInfo:
        return ModelInfo("ACE-Step/ACE-Step-v1-3.5B", "audio", None, ("ace-step", "music"))


TRAINERS.register(AceStep.name, AceStep())
