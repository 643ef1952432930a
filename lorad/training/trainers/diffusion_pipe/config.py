"""diffusion-pipe's run options, the main TOML lorad writes from them, and every check its
`train.py` would fail on, made before anything is uploaded (tdrussell/diffusion-pipe@8f83dbf:
train.py set_config_defaults, examples/main_example.toml, docs/supported_models.md).

lorad sets `max_steps` (the run's length, and the total its progress is measured against) and
a large `epochs` (diffusion-pipe requires one); saves and evals go by steps or epochs as asked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from lorad.training.ssh import ENV_NAME
from lorad.training.trainers import TrainConfigError, options_of

# train.py: `raise NotImplementedError(f'Model type {model_type} is not implemented')` for any
# other; the ones lorad has profiles for, and the rest of supported_models.md's table
MODEL_TYPES = ("wan", "ltx-video", "qwen_image", "hunyuan-video", "flux", "sdxl", "cosmos",
               "lumina_2", "chroma", "hidream", "sd3", "cosmos_predict2", "omnigen2",
               "hunyuan_image", "auraflow", "z_image", "hunyuan_video_15", "flux2", "anima",
               "ltx2")
DTYPES = ("float32", "float16", "bfloat16", "float8", "float8_e4m3fn", "float8_e5m2")
ADAPTERS = ("lora", "lokr")
ACTIVATION_CHECKPOINTING = (True, False, "unsloth")
TIMESTEP_SAMPLING = ("logit_normal", "uniform")
# the path keys each model type reads (supported_models.md): one of each tuple is required
MODEL_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "wan": (("ckpt_path",),), "ltx-video": (("diffusers_path", "single_file_path"),),
    "qwen_image": (("diffusers_path", "transformer_path"),),
    "hunyuan-video": (("ckpt_path", "transformer_path"),), "flux": (("diffusers_path",),),
}
PATH_KEYS = ("ckpt_path", "transformer_path", "llm_path", "diffusers_path", "single_file_path",
             "text_encoder_path", "vae_path")


@dataclass
class DPConfig:
    diffusion_pipe_dir: str = "/workspace/diffusion-pipe"
    deepspeed: str = "deepspeed"
    model_type: str = "wan"
    ckpt_path: str = ""
    transformer_path: str = ""
    llm_path: str = ""
    diffusers_path: str = ""
    single_file_path: str = ""
    text_encoder_path: str = ""
    vae_path: str = ""
    dtype: str = "bfloat16"
    transformer_dtype: str = ""
    timestep_sample_method: str = "logit_normal"
    min_t: float | None = None  # Wan 2.2 experts: low 0-0.875, high 0.875-1
    max_t: float | None = None
    max_steps: int = 1000
    epochs: int = 1000  # required by train.py; max_steps ends the run
    micro_batch_size_per_gpu: int = 1
    pipeline_stages: int = 1
    gradient_accumulation_steps: int = 1
    gradient_clipping: float = 1.0
    warmup_steps: int = 0
    eval_every_n_steps: int | None = 100
    eval_every_n_epochs: int | None = None
    eval_before_first_step: bool = True
    save_every_n_steps: int | None = 250
    save_every_n_epochs: int | None = None
    checkpoint_every_n_epochs: int | None = None
    checkpoint_every_n_minutes: int | None = 30
    activation_checkpointing: bool | str = True
    blocks_to_swap: int | None = None
    save_dtype: str = "bfloat16"
    caching_batch_size: int = 1
    adapter: str = "lora"
    rank: int = 32
    adapter_dtype: str = "bfloat16"
    optimizer: str = "adamw_optimi"
    learning_rate: float = 2e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.01
    eps: float = 1e-8
    env: dict[str, str] = field(default_factory=dict)
    resume_run: str | None = None  # set by lorad on resume: the parent's run folder on the pod

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DPConfig:
        return options_of(cls, data, "diffusion-pipe")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(cfg: DPConfig) -> list[str]:
    """What train.py (or DeepSpeed under it) would stop on, as sentences."""
    problems = []
    if cfg.model_type not in MODEL_TYPES:
        problems.append(f"model type {cfg.model_type!r} is not implemented by diffusion-pipe "
                        f"(known: {', '.join(MODEL_TYPES)})")
    for need in MODEL_PATHS.get(cfg.model_type, ()):
        if not any(getattr(cfg, key) for key in need):
            problems.append(f"{cfg.model_type} needs {' or '.join(need)} (a path on the pod)")
    for key in ("dtype", "save_dtype", "adapter_dtype"):
        if getattr(cfg, key) not in DTYPES:
            problems.append(f"{key} {getattr(cfg, key)!r} is not one of {', '.join(DTYPES)}")
    if cfg.transformer_dtype and cfg.transformer_dtype not in DTYPES:
        problems.append(f"transformer_dtype {cfg.transformer_dtype!r} is not one of "
                        f"{', '.join(DTYPES)}")
    if cfg.adapter not in ADAPTERS:
        problems.append(f"adapter {cfg.adapter!r}: Adapter type {cfg.adapter} is not implemented "
                        f"(lora or lokr)")
    if cfg.activation_checkpointing not in ACTIVATION_CHECKPOINTING:
        problems.append(f"activation_checkpointing={cfg.activation_checkpointing} is not "
                        "implemented (true, false or 'unsloth')")
    if cfg.timestep_sample_method not in TIMESTEP_SAMPLING:
        problems.append(f"timestep_sample_method must be {' or '.join(TIMESTEP_SAMPLING)}")
    if not (cfg.save_every_n_steps or cfg.save_every_n_epochs):
        problems.append("set save_every_n_steps or save_every_n_epochs (train.py asserts one)")
    for key in ("max_steps", "epochs", "micro_batch_size_per_gpu", "pipeline_stages",
                "gradient_accumulation_steps", "rank", "caching_batch_size"):
        if getattr(cfg, key) < 1:
            problems.append(f"{key} must be 1 or more")
    if cfg.blocks_to_swap and cfg.pipeline_stages != 1:
        problems.append("Block swapping only works with pipeline_stages=1 (blocks_to_swap with "
                        f"pipeline_stages={cfg.pipeline_stages})")
    if cfg.min_t is not None and cfg.max_t is not None and not 0 <= cfg.min_t < cfg.max_t <= 1:
        problems.append("min_t and max_t: 0 <= min_t < max_t <= 1")
    bad_env = [k for k in cfg.env if not ENV_NAME.match(k)]
    if bad_env:
        problems.append(f"env name {bad_env[0]!r} is not an environment variable name")
    return problems


def check(cfg: DPConfig) -> None:
    problems = validate(cfg)
    if problems:
        raise TrainConfigError("diffusion-pipe: " + "; ".join(problems))


def gpu_problem(cfg: DPConfig, gpus: int) -> str | None:
    """DeepSpeed's PipelineModule: `num_stages ({n}) must divide distributed world size`."""
    if gpus % cfg.pipeline_stages:
        return (f"pipeline_stages = {cfg.pipeline_stages} must divide the pod's {gpus} GPU(s) "
                f"(DeepSpeed: num_stages ({cfg.pipeline_stages}) must divide distributed world "
                f"size ({gpus})): lower pipeline_stages, or use a pod with more GPUs")
    return None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is JSON's string syntax


def main_toml(cfg: DPConfig, *, output_dir: str, dataset: str, eval_dataset: str | None) -> str:
    """The main config train.py reads, with only the keys it knows."""
    top: dict[str, Any] = {
        "output_dir": output_dir, "dataset": dataset, "epochs": cfg.epochs,
        "max_steps": cfg.max_steps, "micro_batch_size_per_gpu": cfg.micro_batch_size_per_gpu,
        "pipeline_stages": cfg.pipeline_stages,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "gradient_clipping": cfg.gradient_clipping, "warmup_steps": cfg.warmup_steps,
        "eval_before_first_step": cfg.eval_before_first_step,
        "activation_checkpointing": cfg.activation_checkpointing,
        "save_dtype": cfg.save_dtype, "caching_batch_size": cfg.caching_batch_size,
        "steps_per_print": 1,
    }
    for key in ("eval_every_n_steps", "eval_every_n_epochs", "save_every_n_steps",
                "save_every_n_epochs", "checkpoint_every_n_epochs",
                "checkpoint_every_n_minutes", "blocks_to_swap"):
        if getattr(cfg, key):
            top[key] = getattr(cfg, key)
    lines = ["# written by lorad for diffusion-pipe's train.py"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    if eval_dataset:  # the table form: a bare path crashes a fresh run (train.py 556)
        lines.append(f"eval_datasets = [{{ name = \"eval\", config = "
                     f"{_toml_value(eval_dataset)} }}]")
    model: dict[str, Any] = {"type": cfg.model_type, "dtype": cfg.dtype}
    for key in PATH_KEYS:
        if getattr(cfg, key):
            model[key] = getattr(cfg, key)
    if cfg.transformer_dtype:
        model["transformer_dtype"] = cfg.transformer_dtype
    model["timestep_sample_method"] = cfg.timestep_sample_method
    for key in ("min_t", "max_t"):
        if getattr(cfg, key) is not None:
            model[key] = getattr(cfg, key)
    adapter = {"type": cfg.adapter, "rank": cfg.rank, "dtype": cfg.adapter_dtype}
    optimizer = {"type": cfg.optimizer, "lr": cfg.learning_rate, "betas": cfg.betas,
                 "weight_decay": cfg.weight_decay, "eps": cfg.eps}
    for name, table in (("model", model), ("adapter", adapter), ("optimizer", optimizer)):
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
