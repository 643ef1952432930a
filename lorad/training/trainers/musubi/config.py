"""musubi-tuner's training options for Wan 2.1/2.2, and the command lines of its three stages.

Every argument the reference says must always be passed is passed (attention flag, optimizer,
output dir and name, network module, dim and alpha, mixed precision), invalid combinations are
refused before anything is uploaded, and every value is shell-quoted.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from lorad.training.ssh import ENV_NAME
from lorad.training.trainers import TrainConfigError, options_of

TASKS = ("t2v-14B", "t2v-1.3B", "i2v-14B", "t2i-14B", "flf2v-14B", "t2v-A14B", "i2v-A14B")
WAN22 = ("t2v-A14B", "i2v-A14B")
# Wan 2.2 expert timestep ranges (docs/wan.md table) and dual-mode boundaries
EXPERT_RANGES = {("t2v-A14B", "high"): (875, 1000), ("t2v-A14B", "low"): (0, 875),
                 ("i2v-A14B", "high"): (900, 1000), ("i2v-A14B", "low"): (0, 900)}
BOUNDARY = {"t2v-A14B": 875, "i2v-A14B": 900}
ATTENTION = ("sdpa", "flash_attn", "xformers", "flash3")
OPTIMIZERS = ("adamw", "adamw8bit", "adafactor")  # musubi's own names, any case
# Any other name is looked up in torch.optim (hv_train_network.get_optimizer falls through to
# getattr(torch.optim, name)): these are its classes (torch 2.5).
TORCH_OPTIMIZERS = ("Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "ASGD",
                    "LBFGS", "NAdam", "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam")
PRECISIONS = ("auto", "bf16", "fp16", "no")  # auto: what the DiT file holds (see dit_dtype_probe)
MAX_BLOCKS_TO_SWAP = {"t2v-1.3B": 29}  # wan/modules/model.py: fewer than the 30 blocks; 14B: 39
SCRIPTS = {"latents": "src/musubi_tuner/wan_cache_latents.py",
           "text": "src/musubi_tuner/wan_cache_text_encoder_outputs.py",
           "train": "src/musubi_tuner/wan_train_network.py"}


@dataclass
class TrainConfig:
    task: str = "t2v-14B"
    dit: str = ""  # model paths on the pod
    dit_high_noise: str | None = None
    vae: str = ""
    t5: str = ""
    clip: str | None = None  # Wan 2.1 I2V only
    expert: str | None = None  # Wan 2.2: high | low | both
    musubi_dir: str = "/workspace/musubi-tuner"
    python: str = "python"
    accelerate: str = "accelerate"
    network_dim: int = 32
    network_alpha: float = 16.0
    optimizer: str = "adamw8bit"
    learning_rate: float = 2e-4
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    max_train_epochs: int | None = 16
    max_train_steps: int | None = None
    save_every_n_epochs: int | None = 1
    save_every_n_steps: int | None = None
    sample_every_n_epochs: int | None = None
    sample_every_n_steps: int | None = None
    mixed_precision: str = "auto"
    fp8_base: bool = False
    gradient_checkpointing: bool = True
    blocks_to_swap: int | None = None
    offload_inactive_dit: bool = False
    attention: str = "sdpa"
    timestep_sampling: str = "shift"
    discrete_flow_shift: float = 3.0
    seed: int = 42
    save_state: bool = True
    data_loader_workers: int = 2
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # extra environment on the pod (HF_HOME...)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return options_of(cls, data, "training")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def i2v(self) -> bool:
        return self.task.startswith("i2v") or self.task.startswith("flf2v")


def validate(cfg: TrainConfig) -> list[str]:
    """Every reason the combination cannot work, as sentences (empty when fine)."""
    problems = []
    if cfg.task not in TASKS:
        problems.append(f"task {cfg.task!r} is not one of {', '.join(TASKS)}")
    if not cfg.dit:
        problems.append("dit (path to the DiT weights on the pod) is required")
    if not cfg.vae:
        problems.append("vae (path on the pod) is required: latent caching needs it")
    if not cfg.t5:
        problems.append("t5 (path on the pod) is required: text-encoder caching needs it")
    if cfg.task in WAN22:
        if cfg.expert not in ("high", "low", "both"):
            problems.append(f"{cfg.task} trains Wan 2.2 experts: set expert to high, low or both")
        if cfg.expert == "both" and not cfg.dit_high_noise:
            problems.append("expert both needs dit_high_noise (the high-noise DiT) besides dit "
                            "(the low-noise one)")
        if cfg.expert in ("high", "low") and cfg.dit_high_noise:
            problems.append("a single expert trains one DiT: put it in dit and leave "
                            "dit_high_noise empty")
    else:
        if cfg.expert:
            problems.append(f"expert is for Wan 2.2 tasks (t2v-A14B, i2v-A14B), not {cfg.task}")
        if cfg.dit_high_noise:
            problems.append("dit_high_noise is for Wan 2.2 expert both")
    if cfg.offload_inactive_dit and (cfg.expert != "both"):
        problems.append("offload_inactive_dit only applies to expert both")
    if cfg.offload_inactive_dit and cfg.blocks_to_swap:
        problems.append("offload_inactive_dit cannot be combined with blocks_to_swap")
    most = MAX_BLOCKS_TO_SWAP.get(cfg.task, 39)
    if cfg.blocks_to_swap is not None and not 0 <= cfg.blocks_to_swap <= most:
        problems.append(f"blocks_to_swap must be 0 to {most} for {cfg.task} ({most + 1} blocks)")
    if cfg.data_loader_workers < 0:
        problems.append("data_loader_workers must be 0 or more")
    if cfg.attention not in ATTENTION:
        problems.append(f"attention must be one of {', '.join(ATTENTION)} (sage_attn cannot train)")
    if (cfg.optimizer.lower() not in OPTIMIZERS and "." not in cfg.optimizer
            and cfg.optimizer not in TORCH_OPTIMIZERS):
        problems.append(f"optimizer {cfg.optimizer!r}: use AdamW, AdamW8bit, AdaFactor, a "
                        f"torch.optim class ({', '.join(TORCH_OPTIMIZERS)}) or a dotted class "
                        "path")
    if cfg.mixed_precision not in PRECISIONS:
        problems.append(f"mixed_precision must be one of {', '.join(PRECISIONS)}")
    if (cfg.max_train_epochs is None) == (cfg.max_train_steps is None):
        problems.append("set exactly one of max_train_epochs and max_train_steps")
    for name in ("max_train_epochs", "max_train_steps", "save_every_n_epochs",
                 "save_every_n_steps", "network_dim"):
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            problems.append(f"{name} must be positive")
    if cfg.learning_rate <= 0 or cfg.learning_rate > 1:
        problems.append("learning_rate must be between 0 and 1 (e.g. 2e-4)")
    for name, value in cfg.env.items():
        if not ENV_NAME.match(str(name)):
            problems.append(f"env: {name!r} is not an environment variable name "
                            "([A-Za-z_][A-Za-z0-9_]*)")
        elif not isinstance(value, str):
            problems.append(f"env: {name} must be a string, got {type(value).__name__}")
    if cfg.task in ("i2v-14B", "flf2v-14B") and not cfg.clip:
        problems.append(f"{cfg.task} trains on CLIP features cached beside the latents: set "
                        "clip (models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth)")
    return problems


def check(cfg: TrainConfig) -> None:
    problems = validate(cfg)
    if problems:
        raise TrainConfigError("invalid training config: " + "; ".join(problems))


class _Expansion(str):
    """A shell variable put in a command as it is: double-quoted for the shell, not escaped."""


def _q(value: Any) -> str:
    return value if isinstance(value, _Expansion) else shlex.quote(str(value))


def _num(value: float) -> str:
    return format(value, "g")


def stage_commands(cfg: TrainConfig, *, dataset_config: str, output_dir: str, output_name: str,
                   sample_prompts: str | None = None, resume: str | None = None,
                   max_train_epochs: int | None = None) -> dict[str, str]:
    """The shell command of each stage, run from `musubi_dir`."""
    check(cfg)
    latents = [cfg.python, SCRIPTS["latents"], "--dataset_config", dataset_config,
               "--vae", cfg.vae]
    if cfg.i2v:
        latents.append("--i2v")
        if cfg.clip:
            latents += ["--clip", cfg.clip]
    text = [cfg.python, SCRIPTS["text"], "--dataset_config", dataset_config, "--t5", cfg.t5,
            "--batch_size", "16"]
    precision = MIXED_PRECISION if cfg.mixed_precision == "auto" else cfg.mixed_precision
    train = [cfg.accelerate, "launch", "--num_cpu_threads_per_process", "1", "--mixed_precision",
             precision, SCRIPTS["train"], "--task", cfg.task, "--dit", cfg.dit,
             "--dataset_config", dataset_config, f"--{cfg.attention}",
             "--mixed_precision", precision,
             "--optimizer_type", cfg.optimizer, "--learning_rate", _num(cfg.learning_rate),
             "--lr_scheduler", cfg.lr_scheduler,
             "--network_module", "networks.lora_wan", "--network_dim", str(cfg.network_dim),
             "--network_alpha", _num(cfg.network_alpha),
             "--timestep_sampling", cfg.timestep_sampling,
             "--discrete_flow_shift", _num(cfg.discrete_flow_shift),
             "--max_data_loader_n_workers", str(cfg.data_loader_workers),
             "--seed", str(cfg.seed),
             "--output_dir", output_dir, "--output_name", output_name]
    if cfg.data_loader_workers:  # torch's DataLoader refuses persistent workers without any
        train.append("--persistent_data_loader_workers")
    if cfg.lr_warmup_steps:
        train += ["--lr_warmup_steps", str(cfg.lr_warmup_steps)]
    if cfg.gradient_checkpointing:
        train.append("--gradient_checkpointing")
    if cfg.fp8_base:
        train.append("--fp8_base")
    if cfg.blocks_to_swap:
        train += ["--blocks_to_swap", str(cfg.blocks_to_swap)]
    epochs = max_train_epochs if max_train_epochs is not None else cfg.max_train_epochs
    if cfg.max_train_steps is not None and max_train_epochs is None:
        train += ["--max_train_steps", str(cfg.max_train_steps)]
    else:
        train += ["--max_train_epochs", str(epochs)]
    if cfg.save_every_n_epochs:
        train += ["--save_every_n_epochs", str(cfg.save_every_n_epochs)]
    if cfg.save_every_n_steps:
        train += ["--save_every_n_steps", str(cfg.save_every_n_steps)]
    if cfg.save_state:
        train += ["--save_state"]
    if cfg.task in WAN22:
        if cfg.expert == "both":
            train += ["--dit_high_noise", cfg.dit_high_noise, "--timestep_boundary",
                      str(BOUNDARY[cfg.task])]
            if cfg.offload_inactive_dit:
                train.append("--offload_inactive_dit")
        else:
            low, high = EXPERT_RANGES[(cfg.task, cfg.expert)]
            train += ["--min_timestep", str(low), "--max_timestep", str(high),
                      "--preserve_distribution_shape"]
    if sample_prompts and (cfg.sample_every_n_epochs or cfg.sample_every_n_steps):
        train += ["--sample_prompts", sample_prompts, "--vae", cfg.vae, "--t5", cfg.t5]
        if cfg.clip:
            train += ["--clip", cfg.clip]
        if cfg.sample_every_n_epochs:
            train += ["--sample_every_n_epochs", str(cfg.sample_every_n_epochs)]
        if cfg.sample_every_n_steps:
            train += ["--sample_every_n_steps", str(cfg.sample_every_n_steps)]
    if resume:
        train += ["--resume", resume]
    train += cfg.extra_args
    commands = {name: " ".join(_q(a) for a in args)
                for name, args in (("latents", latents), ("text", text), ("train", train))}
    if cfg.mixed_precision == "auto":
        commands["train"] = f"LORAD_MIXED_PRECISION=$({dit_dtype_probe(cfg)}) && {commands['train']}"
    return commands


MIXED_PRECISION = _Expansion('"$LORAD_MIXED_PRECISION"')  # set by dit_dtype_probe on the pod
# musubi's detect_wan_sd_dtype (wan/modules/model.py) reads this tensor's dtype from the DiT's
# safetensors header, then asserts mixed precision is that dtype or "no"; an fp8 DiT takes either.
_PROBE = ("import json,struct,sys;f=open(sys.argv[1],'rb');"
          "h=json.loads(f.read(struct.unpack('<Q',f.read(8))[0]));"
          "k=[k for k in ('blocks.0.cross_attn.k.weight',"
          "'model.diffusion_model.blocks.0.cross_attn.k.weight') if k in h];"
          "print('fp16' if k and h[k[0]]['dtype']=='F16' else 'bf16')")


def dit_dtype_probe(cfg: TrainConfig) -> str:
    """A command printing the mixed precision the DiT file needs (fp16 or bf16), run on the
    pod just before training: the file is there, not here."""
    return " ".join(_q(a) for a in (cfg.python, "-c", _PROBE, cfg.dit))
