"""Publishing a checkpoint: a folder with the LoRA (and its converted copy), a model card and
the best-rated sample generations, uploaded as one commit, and the result in the registry.

The Hub sits behind :class:`Publisher` (one method); :class:`HubPublisher` is the real one,
built on huggingface_hub with HF_TOKEN from the environment and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lorad.core import secrets
from lorad.core.errors import LoradError, PermanentError, TransientError
from lorad.core.files import link_or_copy
from lorad.core.handlers import JobContext, register
from lorad.generation import loras
from lorad.publish import loraconvert

KIND = "hf.publish"
TOKEN_ENV = "HF_TOKEN"
CONVERTED_SUFFIX = "-diffusers"  # x.safetensors -> x-diffusers.safetensors
MAX_SAMPLES = 4
# musubi-tuner --task -> the Hub's id of the base model
BASE_MODELS = {
    "t2v-14B": "Wan-AI/Wan2.1-T2V-14B", "t2v-1.3B": "Wan-AI/Wan2.1-T2V-1.3B",
    "i2v-14B": "Wan-AI/Wan2.1-I2V-14B-720P", "t2i-14B": "Wan-AI/Wan2.1-T2V-14B",
    "flf2v-14B": "Wan-AI/Wan2.1-FLF2V-14B-720P", "t2v-A14B": "Wan-AI/Wan2.2-T2V-A14B",
    "i2v-A14B": "Wan-AI/Wan2.2-I2V-A14B",
}
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


class PublishError(LoradError):
    pass


@dataclass
class Published:
    repo: str
    commit_url: str
    revision: str  # the commit: resolve URLs point at it, so they never change under a LoRA
    files: dict[str, str]  # path in repo -> resolve URL


class Publisher(Protocol):
    def publish(self, repo: str, folder: Path, *, private: bool, message: str) -> Published: ...


@dataclass
class Source:
    """What is being published and how it was made."""

    path: Path
    checkpoint_id: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    run: str | None = None
    task: str | None = None
    expert: str | None = None
    dataset: str | None = None
    dataset_version_id: int | None = None
    dataset_hash: str | None = None
    clips: int | None = None
    trigger: str | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_model(self) -> str | None:
        return BASE_MODELS.get(self.task or "")


def source(conn: sqlite3.Connection, ref: str) -> Source:
    """Resolve CHECKPOINT (a known checkpoint, or any local .safetensors file) with lineage."""
    from lorad.training import checkpoints

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
    src = Source(Path(ck.local_path), ck.id, ck.metadata)
    run = conn.execute("SELECT * FROM runs WHERE id = ?", (ck.run_id,)).fetchone()
    if run:
        config = json.loads(run["config"] or "{}")
        src.run, src.task, src.expert = run["name"], config.get("task"), config.get("expert")
        dv = conn.execute("SELECT dv.*, d.name AS dataset, d.trigger FROM dataset_versions dv"
                          " JOIN datasets d ON d.id = dv.dataset_id WHERE dv.id = ?",
                          (run["dataset_version_id"],)).fetchone()
        if dv:
            manifest = json.loads(dv["manifest"] or "{}")
            src.dataset, src.dataset_version_id = dv["dataset"], dv["id"]
            src.dataset_hash, src.trigger = dv["content_hash"], dv["trigger"]
            clips = manifest.get("clips")
            src.clips = len(clips) if isinstance(clips, (list, dict)) else None
    src.samples = best_samples(conn, ck.id)
    return src


def best_samples(conn: sqlite3.Connection, checkpoint_id: int,
                 limit: int = MAX_SAMPLES) -> list[dict[str, Any]]:
    """Completed generations of this checkpoint that people rated well, best first."""
    from lorad.generation import ratings

    rows = conn.execute("SELECT id, prompt, scale, seed, output_path, endpoint FROM generations"
                        " WHERE checkpoint_id = ? AND status = 'completed'",
                        (checkpoint_id,)).fetchall()
    rated = []
    for r in rows:
        current = ratings.current(conn, r["id"])
        if current is None or not ratings.is_good(current) or not r["output_path"] \
                or not Path(r["output_path"]).is_file():
            continue
        rated.append(({"id": r["id"], "prompt": r["prompt"], "scale": r["scale"],
                       "seed": r["seed"], "path": r["output_path"], "endpoint": r["endpoint"],
                       "stars": current.stars, "verdict": current.verdict},
                      (current.stars or 0, current.verdict == "approve")))
    rated.sort(key=lambda item: item[1], reverse=True)
    return [sample for sample, _key in rated[:limit]]


def _yaml(value: Any) -> str:
    """A YAML double-quoted scalar: JSON's, plus escapes for DEL and C1 controls, which YAML
    does not accept raw."""
    return re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}",
                  json.dumps(value, ensure_ascii=False))


def model_card(src: Source, name: str, files: dict[str, str],
               samples: list[tuple[str, dict[str, Any]]]) -> str:
    """README.md with the Hub's YAML front matter."""
    video = not (src.task or "").startswith("t2i")
    front = ["---", "tags:", "- lora", "- wan" if (src.task or src.metadata.get(
        "ss_base_model_version") == "wan") else "- diffusion", "- lorad",
        f"- {'text-to-video' if video else 'text-to-image'}"]
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
    about = f"A LoRA for {src.base_model or 'Wan'}"
    if src.expert:
        about += f" ({src.expert}-noise expert)" if src.expert != "both" else " (both experts)"
    lines += [about + ", trained with musubi-tuner and published with lorad.", ""]
    if src.trigger:
        lines += ["## Trigger", "", f"Put `{src.trigger}` in the prompt.", ""]
    lines += ["## Files", ""]
    for path, what in files.items():
        lines.append(f"- `{path}`: {what}")
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


def stage(src: Source, folder: Path, *, name: str, convert: bool) -> dict[str, str]:
    """Fill `folder` with what gets uploaded; returns path -> what it is."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files: dict[str, str] = {}
    native = f"{name}.safetensors"
    link_or_copy(src.path, folder / native)
    files[native] = "musubi-tuner's native format (`lora_unet_*` keys, with alpha)"
    if convert:
        converted = f"{name}{CONVERTED_SUFFIX}.safetensors"
        loraconvert.convert(src.path, folder / converted)
        files[converted] = ("converted as `convert_lora.py --target other` does "
                            "(`diffusion_model.*.lora_A/lora_B`, alpha baked in) for diffusers, "
                            "ComfyUI and inference services")
    samples = []
    for s in src.samples:
        path = f"samples/gen-{s['id']:06d}{Path(s['path']).suffix}"
        (folder / "samples").mkdir(exist_ok=True)
        link_or_copy(Path(s["path"]), folder / path)
        samples.append((path, s))
    (folder / "README.md").write_text(model_card(src, name, files, samples), encoding="utf-8")
    return files


class HubPublisher:
    """Hugging Face Hub via huggingface_hub; `endpoint` None means the library's default."""

    def __init__(self, endpoint: str | None = None):
        token = secrets.get(TOKEN_ENV)
        if token is None:
            raise PublishError(f"{TOKEN_ENV} is not set: create a write token at "
                               f"https://huggingface.co/settings/tokens and export {TOKEN_ENV}")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # no calls beside the upload
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=endpoint or None, token=token)

    def publish(self, repo: str, folder: Path, *, private: bool, message: str) -> Published:
        from huggingface_hub import hf_hub_url

        try:
            self.api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
            info = self.api.upload_folder(repo_id=repo, folder_path=folder,
                                          commit_message=message, repo_type="model")
        except Exception as exc:  # noqa: BLE001 - turned into a readable, classified error
            raise hub_error(exc, repo) from None
        revision = info.oid
        files = {p.relative_to(folder).as_posix(): hf_hub_url(
            repo, p.relative_to(folder).as_posix(), revision=revision, endpoint=self.api.endpoint)
            for p in sorted(folder.rglob("*")) if p.is_file()}
        return Published(repo, str(info.commit_url), revision, files)


class PublishRefused(PermanentError, PublishError):
    pass


class PublishLater(TransientError, PublishError):
    pass


def hub_error(exc: Exception, repo: str) -> Exception:
    """Classify a huggingface_hub/httpx failure: retry later, or tell the person what to fix."""
    import httpx

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    if status in (401, 403):
        return PublishRefused(f"the Hub refused {repo} ({status}): check that {TOKEN_ENV} is a "
                              "write token for that namespace")
    if status in (408, 429) or (status or 0) >= 500 or (
            status is None and isinstance(exc, (httpx.TransportError, OSError))):
        return PublishLater(f"the Hub did not take {repo} this time ({text})")
    return PublishRefused(f"the Hub refused {repo}: {text}")


def check_repo(repo: str) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if repo.count("/") != 1:
        raise PublishError(f"--repo {repo!r}: use owner/name, e.g. you/truck-lora")
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise PublishError(f"--repo {repo!r}: {str(exc).splitlines()[0]}") from None
    return repo


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def check_name(name: str) -> str:
    """A LoRA name is also a file name in the repo: letters, digits, . _ - only."""
    if not _NAME.match(name) or ".." in name:
        raise PublishError(f"--name {name!r}: use letters, digits, '.', '_' and '-' "
                           "(it names the files in the repo)")
    return name


def record(conn: sqlite3.Connection, src: Source, published: Published, *, name: str,
           convert: bool, private: bool = False) -> loras.Lora:
    """Put (or refresh) the LoRA in the registry; its URL is the file services should load."""
    native = f"{name}.safetensors"
    preferred = f"{name}{CONVERTED_SUFFIX}.safetensors" if convert else native
    weights = {k: v for k, v in published.files.items() if k.endswith(".safetensors")}
    return loras.add(conn, name, published.files[preferred], trigger=src.trigger,
                     base_model=src.base_model, expert=src.expert, repo=published.repo,
                     checkpoint_id=src.checkpoint_id, files=weights,
                     dataset_version_id=src.dataset_version_id, private=private, replace=True)


def enqueue(conn: sqlite3.Connection, ref: str, repo: str, *, private: bool = False,
            convert: bool = True, name: str | None = None) -> int:
    """Check what can be checked now, then hand the upload to the daemon."""
    from lorad.core import jobs

    check_repo(repo)
    src = source(conn, ref)
    name = check_name(name or src.path.stem)
    row = conn.execute("SELECT repo FROM loras WHERE name = ?", (name,)).fetchone()
    if row and row["repo"] != repo:
        raise PublishError(f"a LoRA named {name!r} is registered already "
                           f"({row['repo'] or 'added by URL'}): choose another --name")
    ref = str(src.checkpoint_id) if src.checkpoint_id else str(src.path)  # daemon's cwd differs
    return jobs.enqueue(conn, KIND, {"checkpoint": ref, "repo": repo, "private": private,
                                     "convert": convert, "name": name}, max_attempts=6)


@register(KIND, concurrency=1)
async def run(ctx: JobContext) -> dict[str, Any]:
    import asyncio

    p = ctx.payload
    src = source(ctx.conn, p["checkpoint"])
    folder = ctx.ws.state_dir / "publish" / f"job-{ctx.job.id}"
    ctx.progress(0.05, "converting and writing the model card" if p["convert"]
                 else "writing the model card", force=True)
    try:
        await asyncio.to_thread(stage, src, folder, name=check_name(p["name"]),
                                convert=p["convert"])
        endpoint = ctx.ws.config()["publish"]["endpoint"] or None
        publisher: Publisher = HubPublisher(endpoint)
        ctx.progress(0.2, f"uploading to {p['repo']}", force=True)
        message = f"{p['name']} from lorad" + (f" (run {src.run})" if src.run else "")
        published = await asyncio.to_thread(publisher.publish, p["repo"], folder,
                                            private=p["private"], message=message)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    ctx.on_success(lambda conn: record(conn, src, published, name=p["name"],
                                       convert=p["convert"], private=p["private"]))
    return {"repo": published.repo, "commit_url": published.commit_url,
            "revision": published.revision, "files": published.files}
