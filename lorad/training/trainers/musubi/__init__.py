"""musubi-tuner (kohya-ss/musubi-tuner) training Wan 2.1/2.2 LoRAs: cache latents, cache text
encoder outputs, train, each a script of its `src/musubi_tuner/`.

Its dataset is the `musubi` export format (`dataset.toml` and `sample_prompts.txt` at the
version's root). Checkpoints are `NAME-000004.safetensors` (epoch) or
`NAME-step00000100.safetensors` (step); with `--save_state`, beside each a `NAME-...-state`
folder from which `--resume` continues (the optimizer included; the step counter restarts).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

from lorad.training import logparse
from lorad.training.trainers import (
    TRAINERS,
    ModelInfo,
    OptionsTrainer,
    PodCheck,
    ResumePlan,
    RunPaths,
    Stage,
)
from lorad.training.trainers.musubi import log
from lorad.training.trainers.musubi.config import TrainConfig, check, stage_commands

# musubi-tuner --task -> the Hub's id of the base model
BASE_MODELS = {
    "t2v-14B": "Wan-AI/Wan2.1-T2V-14B", "t2v-1.3B": "Wan-AI/Wan2.1-T2V-1.3B",
    "i2v-14B": "Wan-AI/Wan2.1-I2V-14B-720P", "t2i-14B": "Wan-AI/Wan2.1-T2V-14B",
    "flf2v-14B": "Wan-AI/Wan2.1-FLF2V-14B-720P", "t2v-A14B": "Wan-AI/Wan2.2-T2V-A14B",
    "i2v-A14B": "Wan-AI/Wan2.2-I2V-A14B",
}
LABELS = {"latents": "caching latents", "text": "caching text encoder outputs",
          "train": "training"}


BATCHES_PER_EPOCH = re.compile(r"num batches per epoch / [^:]*:\s*(\d+)")


def steps_per_epoch(log_head: str, parent: TrainConfig, total_steps: int | None) -> int | None:
    """Optimizer steps per epoch: from the batches per epoch musubi printed at the start of the
    parent's log (over any --gradient_accumulation_steps in extra_args), or else from the
    parent's total steps over its epochs."""
    m = BATCHES_PER_EPOCH.search(log_head)
    if m:
        accumulation = 1
        args = parent.extra_args
        if "--gradient_accumulation_steps" in args[:-1]:
            accumulation = int(args[args.index("--gradient_accumulation_steps") + 1])
        return -(-int(m.group(1)) // max(1, accumulation))
    if parent.max_train_epochs and total_steps:
        return total_steps // parent.max_train_epochs
    return None


FORM_KEYS = ("task", "dit", "vae", "t5", "network_dim", "network_alpha", "learning_rate",
             "max_train_epochs", "save_every_n_epochs")


class Musubi(OptionsTrainer):
    name = "musubi"
    title = "musubi-tuner (Wan 2.1/2.2)"
    dataset_format = "musubi"
    train_stage = "train"
    secrets: tuple[str, ...] = ()
    options = TrainConfig
    form_keys = FORM_KEYS  # the options people set (paths on the pod come from its check)

    def check(self, config: TrainConfig) -> None:
        check(config)

    def gpu_memory_gb(self, options: dict[str, Any]) -> float | None:
        """musubi-tuner's README: 24 GB+ of VRAM for video training (12 GB+ for images, which
        lorad's Wan profiles do not train)."""
        return 24.0

    def stages(self, config: TrainConfig, paths: RunPaths) -> list[Stage]:
        commands = stage_commands(
            config, dataset_config=posixpath.join(paths.dataset, "dataset.toml"),
            output_dir=paths.output, output_name=paths.output_name,
            sample_prompts=posixpath.join(paths.dataset, "sample_prompts.txt"))
        return [Stage(name, LABELS[name], command, config.musubi_dir, dict(config.env))
                for name, command in commands.items()]

    def parser(self, offset: int = 0) -> logparse.LineParser:
        return log.parser(offset)

    def failure_reason(self, log_tail: str) -> str | None:
        if logparse.OOM in log_tail:
            return "CUDA out of memory (lower resolution or frames, add blocks_to_swap or fp8_base)"
        if "No training items found" in log_tail:
            return "no training items: every clip is shorter than the target frames, or caches " \
                   "are missing"
        return logparse.common_failure(log_tail)

    def checkpoint_mark(self, file_name: str, output_name: str) -> tuple[int | None, int | None]:
        """`NAME-000004` is epoch 4 and `NAME-step00000100` step 100; `NAME` itself is the
        final model (musubi gives the last epoch no numbered file), whatever NAME ends with."""
        stem = file_name.removesuffix(".safetensors")
        if not stem.startswith(output_name + "-"):
            return None, None
        mark = stem[len(output_name) + 1:]
        if mark.startswith("step") and mark[4:].isdigit():
            return int(mark[4:]), None
        if mark.isdigit():
            return None, int(mark)
        return None, None

    def metadata_mark(self, metadata: dict[str, str], step: int | None,
                      epoch: int | None) -> tuple[int | None, int | None]:
        """musubi writes `ss_steps`, and `ss_epoch` counted from 0 in step checkpoints (the
        epoch under way) but from 1 in epoch and final ones (epochs done)."""
        steps, saved = metadata.get("ss_steps", ""), metadata.get("ss_epoch", "")
        step_file = step is not None
        if step is None and steps.isdigit():
            step = int(steps)
        if epoch is None and saved.isdigit():
            epoch = int(saved) + 1 if step_file else int(saved)
        return step, epoch

    def version_command(self, config: TrainConfig) -> str | None:
        """musubi-tuner's git commit (and whether the tree has local changes)."""
        where = shlex.quote(config.musubi_dir)
        return (f"git -C {where} rev-parse HEAD 2>/dev/null && (git -C {where} status "
                "--porcelain --untracked-files=no 2>/dev/null | grep -q . && echo modified "
                "|| true) || echo 'not a git checkout'")

    def sample_dir(self, paths: RunPaths) -> str | None:
        return posixpath.join(paths.output, "sample")

    def pod_checks(self, options: dict[str, Any]) -> list[PodCheck]:
        config = TrainConfig.from_dict(options)  # only where things are: no need to be complete
        musubi = shlex.quote(config.musubi_dir)
        python = shlex.quote(config.python)
        return [
            # exactly the interpreter the cache stages call (python), not python3
            PodCheck("python", f"{python} --version 2>&1",
                     f"`{config.python}` is not on the pod's PATH: the cache stages call it; "
                     "install Python 3.10+ as that name, or set python (e.g. --set "
                     "python=python3)"),
            PodCheck("musubi", f"test -f {musubi}/src/musubi_tuner/wan_train_network.py && "
                               "echo found",
                     f"musubi-tuner not found at {config.musubi_dir}: git clone "
                     f"https://github.com/kohya-ss/musubi-tuner {config.musubi_dir} && pip "
                     f"install -e {config.musubi_dir}"),
            PodCheck("accelerate", f"command -v {shlex.quote(config.accelerate)}",
                     f"`{config.accelerate}` is not on the pod's PATH: the training stage calls "
                     "it; pip install accelerate (or set accelerate to its path)"),
        ]

    def resume_problem(self, options: dict[str, Any]) -> str | None:
        if not options.get("save_state", True):
            return ("it ran with save_state off, so musubi-tuner saved no state to resume from: "
                    "start a new run (save_state is on by default; it saves the optimizer with "
                    "each checkpoint)")
        return None

    def resume(self, config: TrainConfig, parent_config: TrainConfig, output_dir: str,
               files: list[str], output_name: str, total_steps: int | None, *,
               log_head: str = "") -> ResumePlan | None:
        """Continue from the newest `NAME-step{N}-state` or `NAME-{epoch}-state` folder with
        what is left of the new run's budget. musubi's --resume restarts its epoch and step
        counters, so the budget passed is the remainder, in the unit that state counts in: a
        state saved by step under an epoch limit continues for the remaining steps, one saved
        by epoch under a step limit for the steps not yet done."""
        states = []
        for name in files:
            if not name.endswith("-state") or not name.startswith(output_name + "-"):
                continue
            mark = name[len(output_name) + 1:-len("-state")]
            if mark.startswith("step") and mark[4:].isdigit():
                states.append((int(mark[4:]), "step", name))
            elif mark.isdigit():
                states.append((int(mark), "epoch", name))
        if not states:
            return None
        per_epoch = steps_per_epoch(log_head, parent_config, total_steps)
        number, kind, name = max(states, key=lambda s: (s[0] * (per_epoch or 1)
                                                         if s[1] == "epoch" else s[0]))
        done = number * (per_epoch or 0) if kind == "epoch" else number
        cfg = TrainConfig.from_dict(config.as_dict())
        if cfg.max_train_steps:  # a step budget: the steps not done yet
            cfg.max_train_steps = max(1, cfg.max_train_steps - done)
        elif kind == "epoch":  # an epoch budget from an epoch state: the epochs left
            cfg.max_train_epochs = max(1, (cfg.max_train_epochs or 0) - number)
        elif per_epoch:  # an epoch budget from a step state: the steps left, counted as steps
            cfg.max_train_steps = max(1, (cfg.max_train_epochs or 0) * per_epoch - done)
            cfg.max_train_epochs = None
        state = posixpath.join(output_dir, name)
        cfg.extra_args = [*cfg.extra_args, "--resume", state]
        return ResumePlan(cfg.as_dict(), done, state)

    def model_info(self, options: dict[str, Any]) -> ModelInfo:
        config = TrainConfig.from_dict({k: v for k, v in options.items()
                                        if k in TrainConfig.__dataclass_fields__})
        image = config.task.startswith("t2i")
        return ModelInfo(BASE_MODELS.get(config.task), "image" if image else "video",
                         config.expert, ("wan",))


TRAINERS.register(Musubi.name, Musubi())
