"""diffusion-pipe (tdrussell/diffusion-pipe) as a trainer: Wan 2.1/2.2 (the 5B TI2V model
included), LTX-Video, Qwen-Image and more, split over several GPUs with DeepSpeed pipeline
parallelism, with a loss on held-out data.

Stages: `cache` (`train.py --cache_only`: latents and text embeddings, on every GPU) and
`train`, each `deepspeed --num_gpus=N train.py --deepspeed --config CFG` with N the pod's GPUs.
The main TOML is written on the pod by each stage. Facts (commit 8f83dbf): rank 0 prints
DeepSpeed's `steps: N loss: X iter time (s): ...` once per step (steps_per_print = 1); the eval
loss goes only to TensorBoard (`{name}/loss` in the run folder's event files, read with the
`tensorboard` package); LoRAs are saved as `RUN/epochN/` or `RUN/stepN/adapter_model.safetensors`
(ComfyUI keys, `diffusion_model.` prefix) in a UTC-timestamped run folder; training states are
DeepSpeed's `RUN/global_stepN/` with a `latest` file; `--resume_from_checkpoint RUN` continues a
run folder in `output_dir` and counts on from its step.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path
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
from lorad.training.trainers.diffusion_pipe.config import (
    PATH_KEYS,
    DPConfig,
    check,
    gpu_problem,
    main_toml,
)

STEP = re.compile(r"^steps: (\d+) loss: (\S+) iter time \(s\): ([\d.]+)")
EPOCH = re.compile(r"^Started new epoch: (\d+)")
TOTAL = re.compile(r"^lorad: max_steps=(\d+)$")
RUN_DIR = re.compile(r"^\d{8}_\d{2}-\d{2}-\d{2}$")  # datetime.now(utc) '%Y%m%d_%H-%M-%S'
CKPT = re.compile(r"(?:^|/)(epoch|step)(\d+)/adapter_model\.safetensors$")
RESUME_KEY = "resume_run"
BASE_MODELS = {"wan": "Wan-AI/Wan2.1-T2V-14B", "ltx-video": "Lightricks/LTX-Video",
               "qwen_image": "Qwen/Qwen-Image"}
MEDIA = {"qwen_image": "image", "flux": "image", "sdxl": "image"}
FORM_KEYS = ("model_type", "ckpt_path", "max_steps", "pipeline_stages", "rank",
             "learning_rate", "save_every_n_steps", "eval_every_n_steps")


def events_in(line: str) -> list:
    m = STEP.match(line)
    if m:
        seconds = float(m.group(3))
        return [logparse.Progress(int(m.group(1)), 0, avr_loss=logparse.parse_loss(m.group(2)),
                                  rate=1 / seconds if seconds else None)]
    m = EPOCH.match(line)
    if m:
        return [logparse.Epoch(int(m.group(1)), 0)]
    m = TOTAL.match(line)
    return [logparse.TotalSteps(int(m.group(1)))] if m else []


_LOADERS: dict[str, Any] = {}  # an event file's copy -> its reader, where the last read stopped


def eval_losses(path: Path) -> list[logparse.EvalLoss]:
    """The held-out loss of each eval pass a TensorBoard event file gained since it was last
    read (a record cut at the file's end is read when the rest comes): the `NAME/loss` scalars
    (the mean over diffusion-pipe's nine timestep quantiles), not `train/...`."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    found = []
    key = f"{path}:{path.stat().st_ino}"  # a file made again is read from its start
    loader = _LOADERS.get(key)
    if loader is None:
        loader = _LOADERS[key] = EventFileLoader(str(path))
    for event in loader.Load():
        for value in event.summary.value:
            tag = value.tag
            if not tag.endswith("/loss") or tag.startswith("train/"):
                continue
            number = (value.tensor.float_val[0] if value.HasField("tensor")
                      and value.tensor.float_val else value.simple_value)
            found.append(logparse.EvalLoss(int(event.step), float(number)))
    return found


class DiffusionPipe(OptionsTrainer):
    name = "diffusion-pipe"
    title = "diffusion-pipe (Wan 2.1/2.2 incl. 5B, LTX-Video, Qwen-Image; DeepSpeed)"
    dataset_format = "diffusion-pipe"
    train_stage = "train"
    secrets: tuple[str, ...] = ()
    options = DPConfig
    form_keys = FORM_KEYS

    def check(self, config: DPConfig) -> None:
        check(config)

    def gpu_memory_gb(self, options: dict[str, Any]) -> float | None:
        """supported_models.md and the README: a 14B Wan LoRA wants 24 GB+ with block swap or
        fp8; split over pipeline stages each GPU holds a share."""
        return 24.0 / max(1, int(options.get("pipeline_stages", 1) or 1))

    def gpu_problem(self, options: dict[str, Any], gpus: int) -> str | None:
        return gpu_problem(DPConfig.from_dict(options), gpus)

    def config_path(self, paths: RunPaths) -> str:
        return posixpath.join(paths.run, "diffusion_pipe.toml")

    def stages(self, config: DPConfig, paths: RunPaths) -> list[Stage]:
        resume = config.resume_run
        cfg_path = self.config_path(paths)
        val = posixpath.join(paths.dataset, "eval_dataset.toml")
        text = main_toml(config, output_dir=paths.output,
                         dataset=posixpath.join(paths.dataset, "dataset.toml"), eval_dataset=val)
        write = (f"mkdir -p {shlex.quote(paths.output)} && printf '%s' {shlex.quote(text)} > "
                 f"{shlex.quote(cfg_path)} && if [ ! -f {shlex.quote(val)} ]; then sed -i "
                 f"'/^eval_datasets/d' {shlex.quote(cfg_path)}; fi")
        launch = (f"{shlex.quote(config.deepspeed)} --num_gpus={int(paths.gpus)} train.py "
                  f"--deepspeed --config {shlex.quote(cfg_path)}")
        # both stages write the config: a resumed run starts at the training stage
        train = f"{write} && echo lorad: max_steps={int(config.max_steps)} && {launch}"
        if resume:
            name = posixpath.basename(resume)
            copy = posixpath.join(paths.output, name)
            # the state goes where train.py looks for it (output_dir/RUN); the parent's saved
            # LoRAs and TensorBoard history stay the parent's
            train = (f"mkdir -p {shlex.quote(paths.output)} && if [ ! -e {shlex.quote(copy)} ]; "
                     f"then cp -a {shlex.quote(resume)} "
                     f"{shlex.quote(paths.output)}/ && rm -rf {shlex.quote(copy)}/epoch* "
                     f"{shlex.quote(copy)}/step* {shlex.quote(copy)}/events.out.tfevents.*; "
                     f"fi && {train} --resume_from_checkpoint "
                     f"{shlex.quote(name)}")
        env = dict(config.env)
        return [Stage("cache", "caching latents and text embeddings",
                      f"{write} && {launch} --cache_only", config.diffusion_pipe_dir, env),
                Stage("train", "training", train, config.diffusion_pipe_dir, env)]

    def parser(self, offset: int = 0) -> logparse.LineParser:
        return logparse.LineParser(events_in, offset)

    def failure_reason(self, log_tail: str) -> str | None:
        if "must divide distributed world size" in log_tail:
            return "pipeline_stages does not divide the number of GPUs"
        if "Block swapping only works" in log_tail:
            return "blocks_to_swap needs pipeline_stages = 1"
        if "is being skipped because it is too short" in log_tail and "Processed dataset " \
                "was empty" in log_tail:
            return ("no training items: every clip is shorter than every frame bucket, or the "
                    "size buckets were dropped (lower the batch size, raise num_repeats)")
        return logparse.common_failure(log_tail)

    # -- checkpoints and the eval loss ----------------------------------------------------
    checkpoint_glob = "*/*/adapter_model.safetensors"  # RUN/stepN|epochN/
    scalar_glob = "*/events.out.tfevents.*"  # the run folders' (the eval loss is only there)

    def checkpoint_mark(self, file_name: str, output_name: str) -> tuple[int | None, int | None]:
        m = CKPT.search(file_name)
        if not m:
            return None, None
        number = int(m.group(2))
        return (None, number) if m.group(1) == "epoch" else (number, None)

    def checkpoint_name(self, rel: str, output_name: str) -> str | None:
        """`RUN/step250/adapter_model.safetensors` -> `NAME-step250.safetensors`, as musubi's
        are named (every save has the same file name in its own folder)."""
        m = CKPT.search(rel)
        return f"{output_name}-{m.group(1)}{m.group(2)}.safetensors" if m else None

    def metadata_mark(self, metadata: dict[str, str], step: int | None,
                      epoch: int | None) -> tuple[int | None, int | None]:
        return step, epoch

    def read_scalars(self, path: Path) -> list:
        return eval_losses(path)

    # -- the pod, the manifest, resume ------------------------------------------------------
    def version_command(self, config: DPConfig) -> str | None:
        where = shlex.quote(config.diffusion_pipe_dir)
        return (f"git -C {where} rev-parse HEAD 2>/dev/null || echo 'not a git checkout'")

    def sample_dir(self, paths: RunPaths) -> str | None:
        return None  # diffusion-pipe samples nothing during training

    def pod_checks(self, options: dict[str, Any]) -> list[PodCheck]:
        cfg = DPConfig.from_dict({k: v for k, v in options.items()
                                  if k in DPConfig.__dataclass_fields__})
        where = shlex.quote(cfg.diffusion_pipe_dir)
        checks = [
            PodCheck("diffusion-pipe", f"test -f {where}/train.py && echo found",
                     f"diffusion-pipe not found at {cfg.diffusion_pipe_dir}: git clone "
                     "--recurse-submodules https://github.com/tdrussell/diffusion-pipe "
                     f"{cfg.diffusion_pipe_dir} && pip install -r "
                     f"{cfg.diffusion_pipe_dir}/requirements.txt"),
            PodCheck("deepspeed", f"command -v {shlex.quote(cfg.deepspeed)}",
                     f"`{cfg.deepspeed}` is not on the pod's PATH: pip install deepspeed (or "
                     "set deepspeed to its path)"),
        ]
        for key in PATH_KEYS:
            path = getattr(cfg, key)
            if path:
                checks.append(PodCheck(f"{key} {posixpath.basename(path.rstrip('/'))}",
                                       f"test -e {shlex.quote(path)} && echo found",
                                       f"{key} {path} is missing on the pod: download the "
                                       "model there (docs/supported_models.md of diffusion-pipe "
                                       "names the files)"))
        return checks

    def resume_problem(self, options: dict[str, Any]) -> str | None:
        if not (options.get("checkpoint_every_n_minutes")
                or options.get("checkpoint_every_n_epochs")):
            return ("it saved no training state (checkpoint_every_n_minutes and "
                    "checkpoint_every_n_epochs are off): start a new run")
        return None

    def resume(self, config: DPConfig, parent_config: DPConfig, output_dir: str,
               files: list[str], output_name: str, total_steps: int | None, *,
               log_head: str = "") -> ResumePlan | None:
        """The parent's newest run folder (train.py takes the folder's name, in output_dir,
        and DeepSpeed its `latest` state); the steps count on from there."""
        runs_ = sorted(name for name in files if RUN_DIR.match(name))
        if not runs_:
            return None
        state = posixpath.join(output_dir, runs_[-1])
        return ResumePlan({**config.as_dict(), RESUME_KEY: state}, 0, state)

    def model_info(self, options: dict[str, Any]) -> ModelInfo:
        kind = options.get("model_type", "wan")
        base = BASE_MODELS.get(kind)
        path = str(options.get("ckpt_path") or options.get("diffusers_path") or "")
        if "Wan2.2-TI2V-5B" in path:
            base = "Wan-AI/Wan2.2-TI2V-5B"
        elif "Wan2.2" in path:
            base = "Wan-AI/Wan2.2-T2V-A14B"
        return ModelInfo(base, MEDIA.get(kind, "video"), None, (kind, "diffusion-pipe"))


TRAINERS.register(DiffusionPipe.name, DiffusionPipe())
