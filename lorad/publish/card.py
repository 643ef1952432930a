"""The model card and the facts it is written from: what is being published (a checkpoint and
its lineage, or any .safetensors file) and the generations people rated best."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorad.generation import generations, ratings
from lorad.publish.publishers import PublishError
from lorad.training import checkpoints, lineage

MAX_SAMPLES = 4
# The Hub's task (`pipeline_tag`) for what the LoRA makes. The Hub docs ("Specifying a task
# (pipeline_tag)", huggingface/hub-docs docs/hub/model-cards.md) say it sets the task filter and
# which widget/snippet a model page shows; huggingface.js model-libraries-snippets.ts `diffusers`
# picks its LoRA snippet from it (text-to-video, image-to-video, else text-to-image).
TASK_TAGS = {"video": "text-to-video", "image": "text-to-image", "audio": "text-to-audio"}
IMAGE_TO_VIDEO = "image-to-video"
I2V_BASES = {"i2v", "flf2v"}  # Wan's image-conditioned bases: Wan-AI/Wan2.2-I2V-A14B, ...
# `library_name` for LoRAs of these families: the Hub docs ("Specifying a library") recommend
# setting it explicitly for anything but transformers; diffusers loads Wan LoRAs (both the
# musubi-tuner and the converted format) with `load_lora_weights`.
LIBRARIES = {"wan": "diffusers"}
# ss_* metadata shown in the card, with the label people know them by
SETTINGS = [
    ("ss_network_dim", "rank (network_dim)"), ("ss_network_alpha", "alpha"),
    ("ss_learning_rate", "learning rate"), ("ss_optimizer", "optimizer"),
    ("ss_lr_scheduler", "scheduler"), ("ss_steps", "steps"), ("ss_epoch", "epoch"),
    ("ss_max_train_steps", "max steps"), ("ss_num_train_items", "training items"),
    ("ss_seed", "seed"), ("ss_mixed_precision", "mixed precision"),
    ("ss_timestep_sampling", "timestep sampling"),
    ("ss_discrete_flow_shift", "discrete flow shift"), ("ss_fp8_base", "fp8 base"),
    ("ss_sd_model_name", "DiT"), ("modelspec.timestep_range", "timestep range"),
]


@dataclass
class Source:
    """What is being published and how it was made."""

    path: Path
    checkpoint_id: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    run: str | None = None
    trainer: str | None = None  # its title, for the card
    base_model: str | None = None
    media: str = "video"
    expert: str | None = None
    tags: tuple[str, ...] = ()
    dataset: str | None = None
    dataset_version_id: int | None = None
    dataset_hash: str | None = None
    clips: int | None = None
    trigger: str | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)


def source(conn: sqlite3.Connection, ref: str) -> Source:
    """Resolve CHECKPOINT (a known checkpoint, or any local .safetensors file) with lineage."""
    ck = checkpoints.find(conn, ref)
    if ck is None:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise PublishError(f"{ref!r} is neither a checkpoint lorad knows (`lorad rate rank` "
                               "and the Training screen list them) nor a .safetensors file")
        return Source(path.resolve(), metadata=checkpoints.verify(path))
    if not ck.local_path or not Path(ck.local_path).is_file():
        raise PublishError(f"checkpoint {ck.name or ck.id} is not on this machine yet: "
                           "pull it first (p on the Training screen)")
    made = lineage.of_checkpoint(conn, ck.id)
    src = Source(Path(ck.local_path), ck.id, ck.metadata, trainer=made.trainer)
    if made.run:
        src.run = made.run.name
    if made.model:
        src.base_model, src.media = made.model.base_model, made.model.media
        src.expert, src.tags = made.model.expert, made.model.tags
    if made.version:
        src.dataset_version_id, src.dataset_hash = made.version.id, made.version.content_hash
        src.clips = made.version.clip_count
    if made.dataset:
        src.dataset, src.trigger = made.dataset.name, made.dataset.trigger
    src.samples = best_samples(conn, ck.id)
    return src


def best_samples(conn: sqlite3.Connection, checkpoint_id: int,
                 limit: int = MAX_SAMPLES) -> list[dict[str, Any]]:
    """Completed generations of this checkpoint that people rated well, best first."""
    rated = []
    for g in generations.completed_for(conn, checkpoint_id):
        current = ratings.current(conn, g.id)
        if current is None or not ratings.is_good(current) or not g.output_path \
                or not Path(g.output_path).is_file():
            continue
        rated.append(({"id": g.id, "prompt": g.prompt, "scale": g.scale, "seed": g.seed,
                       "path": g.output_path, "endpoint": g.endpoint,
                       "stars": current.stars, "verdict": current.verdict},
                      (current.stars or 0, current.verdict == "approve")))
    rated.sort(key=lambda item: item[1], reverse=True)
    return [sample for sample, _key in rated[:limit]]


def _yaml(value: Any) -> str:
    """A YAML double-quoted scalar: JSON's, plus escapes for DEL and C1 controls, which YAML
    does not accept raw."""
    return re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}",
                  json.dumps(value, ensure_ascii=False))


def pipeline_tag(src: Source) -> str:
    """The Hub task of what this LoRA makes: image-to-video for an image-conditioned base."""
    words = set(re.split(r"[-/_.]", (src.base_model or "").lower()))
    if src.media == "video" and words & I2V_BASES:
        return IMAGE_TO_VIDEO
    return TASK_TAGS.get(src.media, "text-to-video")


def _py(value: str) -> str:
    """A Python string literal that cannot close the Markdown code fence around it."""
    return json.dumps(value).replace("`", "\\x60")


def diffusers_base(base: str | None) -> str:
    """The repo diffusers loads a Wan base from: Wan-AI publishes the diffusers layout as
    `<id>-Diffusers` (Wan-AI/Wan2.2-T2V-A14B-Diffusers); the plain repos are for Wan's own code."""
    if not base:
        return "BASE-MODEL-Diffusers"
    if base.startswith("Wan-AI/") and not base.lower().endswith("-diffusers"):
        return f"{base}-Diffusers"
    return base


def usage(src: Source, task: str, repo: str, weights: str, prompt: str) -> list[str]:
    """How to load the LoRA with diffusers, naming the file: the repo holds more than one
    .safetensors, and diffusers' load_lora_weights only guesses (warns, or refuses in older
    releases) when weight_name is not given."""
    load = f"{_py(repo)}, weight_name={_py(weights)}"
    # Wan 2.2 A14B: `transformer` is the high-noise expert, `transformer_2` the low-noise one
    loads = {None: [f"pipe.load_lora_weights({load})"],
             "high": [f"pipe.load_lora_weights({load})"],
             "low": [f"pipe.load_lora_weights({load}, load_into_transformer_2=True)"],
             "both": [f'pipe.load_lora_weights({load}, adapter_name="high")',
                      f'pipe.load_lora_weights({load}, adapter_name="low", '
                      "load_into_transformer_2=True)"]}[src.expert]
    imports = ["import torch", "from diffusers import DiffusionPipeline"]
    if task == IMAGE_TO_VIDEO:
        imports.append("from diffusers.utils import export_to_video, load_image")
        run = ['image = load_image("first_frame.png")',
               f"frames = pipe(image=image, prompt={_py(prompt)}).frames[0]",
               'export_to_video(frames, "output.mp4", fps=16)']
    elif task == "text-to-video":
        imports.append("from diffusers.utils import export_to_video")
        run = [f"frames = pipe(prompt={_py(prompt)}).frames[0]",
               'export_to_video(frames, "output.mp4", fps=16)']
    else:
        run = [f"prompt = {_py(prompt)}  # generate as the base pipeline does"]
    return ["## Use it", "",
            f"Load `{weights}`. With 🧨 diffusers (`pip install -U diffusers`):", "",
            "```py", *imports, "",
            f"pipe = DiffusionPipeline.from_pretrained({_py(diffusers_base(src.base_model))}, "
            "torch_dtype=torch.bfloat16).to(\"cuda\")",
            *loads, *run, "```", ""]


def model_card(src: Source, name: str, files: dict[str, str],
               samples: list[tuple[str, dict[str, Any]]], *, weights: str | None = None,
               repo: str | None = None) -> str:
    """README.md with the Hub's YAML front matter. `weights` is the file to load (of `files`),
    `repo` the Hub repo it goes to (for the usage snippet)."""
    tags = list(src.tags) or (["wan"] if src.metadata.get("ss_base_model_version") == "wan"
                              else ["diffusion"])
    task = pipeline_tag(src)
    library = next((LIBRARIES[t] for t in tags if t in LIBRARIES), None)
    weights = weights or next((f for f in files if f.endswith(".safetensors")), None)
    front = ["---", "tags:", "- lora", *[f"- {t}" for t in tags], "- lorad", f"- {task}",
             f"pipeline_tag: {task}"]
    if library:
        front.append(f"library_name: {library}")
    if src.base_model:
        front.append(f"base_model: {_yaml(src.base_model)}")
    if src.trigger:
        front.append(f"instance_prompt: {_yaml(src.trigger)}")
    if samples:
        front.append("widget:")
        for path, s in samples:
            front += [f"- text: {_yaml(s['prompt'] or '')}", "  output:", f"    url: {_yaml(path)}"]
    front.append("---")
    lines = [*front, "", f"# {name}", ""]
    base = src.base_model or ("Wan" if "wan" in tags else None)
    about = "A LoRA" + (f" for {base}" if base else "")
    if src.expert:
        about += f" ({src.expert}-noise expert)" if src.expert != "both" else " (both experts)"
    about += f", trained with {src.trainer}" if src.trainer else ""
    lines += [about + ", published with lorad.", ""]
    if src.trigger:
        lines += ["## Trigger", "", f"Put `{src.trigger}` in the prompt.", ""]
    if library == "diffusers" and weights:
        prompt = src.trigger or next((s["prompt"] for _p, s in samples if s["prompt"]), "")
        lines += usage(src, task, repo or f"OWNER/{name}", weights, prompt or "a prompt")
    lines += ["## Files", ""]
    for path, what in files.items():
        lines.append(f"- `{path}`: {what}" + (" (**load this one**)" if path == weights
                                                and len(files) > 1 else ""))
    lines.append("")
    settings = [(label, src.metadata[key]) for key, label in SETTINGS if src.metadata.get(key)]
    if settings:
        lines += ["## Training", "", "| setting | value |", "|---|---|"]
        lines += [f"| {label} | `{value.replace('|', '/')}` |" for label, value in settings]
        lines.append("")
    if src.dataset_hash:
        lines += ["## Dataset", "",
                  f"Dataset `{src.dataset}`, version `{src.dataset_hash[:16]}`"
                  + (f", {src.clips} clips" if src.clips is not None else "")
                  + (f"; run `{src.run}`" if src.run else "") + ".", ""]
    if samples:
        lines += ["## Samples (best rated)", "", "| sample | prompt | scale | seed | rating |",
                  "|---|---|---|---|---|"]
        for path, s in samples:
            prompt = (s["prompt"] or "").replace("|", "/").replace("\n", " ")
            stars = "★" * (s["stars"] or 0) or (s["verdict"] or "")
            lines.append(f"| [{Path(path).name}]({path}) | {prompt} | {s['scale']} | "
                         f"{s['seed']} | {stars} |")
        lines.append("")
    return "\n".join(lines)
