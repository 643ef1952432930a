"""Publishing a checkpoint: a folder with the LoRA (and its converted copy), a model card and
the best-rated sample generations, uploaded by a publisher (lorad.publish.publishers: the Hub
first) as one revision, and the result in the LoRA registry."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from lorad.core import jobs
from lorad.core.files import link_or_copy
from lorad.core.handlers import JobContext, register
from lorad.generation import loras
from lorad.publish import card, loraconvert, publishers
from lorad.publish.publishers import Published, PublishError

KIND = "hf.publish"
CONVERTED_SUFFIX = "-diffusers"  # x.safetensors -> x-diffusers.safetensors
log = logging.getLogger("lorad.publish")


def weights_file(name: str, convert: bool) -> str:
    """The file services and diffusers should load: the converted copy when there is one."""
    return f"{name}{CONVERTED_SUFFIX}.safetensors" if convert else f"{name}.safetensors"


def stage(src: card.Source, folder: Path, *, name: str, convert: bool,
          repo: str | None = None) -> dict[str, str]:
    """Fill `folder` with what gets uploaded; returns path -> what it is."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files: dict[str, str] = {}
    native = f"{name}.safetensors"
    link_or_copy(src.path, folder / native)
    files[native] = ("as the trainer saved it (musubi-tuner: `lora_unet_*` keys, with alpha)"
                     if convert or not loraconvert.in_inference_format(src.path) else
                     "as the trainer saved it, in the key format diffusers, ComfyUI and "
                     "inference services load (`diffusion_model.*.lora_A/lora_B`)")
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
    (folder / "README.md").write_text(card.model_card(src, name, files, samples,
                                                      weights=weights_file(name, convert),
                                                      repo=repo), encoding="utf-8")
    return files


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def check_name(name: str) -> str:
    """A LoRA name is also a file name in the repo: letters, digits, . _ - only."""
    if not _NAME.match(name) or ".." in name:
        raise PublishError(f"--name {name!r}: use letters, digits, '.', '_' and '-' "
                           "(it names the files in the repo)")
    return name


def record(conn: sqlite3.Connection, src: card.Source, published: Published, *, name: str,
           convert: bool, private: bool = False) -> loras.Lora:
    """Put (or refresh) the LoRA in the registry; its URL is the file services should load.
    `private` is the repo's real visibility (Published.private), not what was asked."""
    weights = {k: v for k, v in published.files.items() if k.endswith(".safetensors")}
    return loras.add(conn, name, published.files[weights_file(name, convert)], trigger=src.trigger,
                     base_model=src.base_model, expert=src.expert, repo=published.repo,
                     checkpoint_id=src.checkpoint_id, files=weights,
                     dataset_version_id=src.dataset_version_id, private=private, replace=True)


def visibility_notice(repo: str, asked: bool, actual: bool) -> str | None:
    """What to tell the person when the repo's visibility is not what they asked for: the Hub
    keeps an existing repo's visibility (create_repo does not change it). The other way round
    (--private to a public repo) the publisher refuses before uploading."""
    if asked or not actual:
        return None
    return (f"repo {repo} already exists and is private; publishing without --private did not "
            "make it public, and fal probably cannot download a LoRA from a private repo: make "
            "it public in the repo's Settings on the Hub, or publish to another --repo")


def enqueue(conn: sqlite3.Connection, ref: str, repo: str, *, private: bool = False,
            convert: bool = True, name: str | None = None,
            publisher: str = publishers.DEFAULT) -> int:
    """Check what can be checked now, then hand the upload to the daemon."""
    publishers.get(publisher).check_repo(repo)
    src = card.source(conn, ref)
    name = check_name(name or src.path.stem)
    known = loras.find(conn, name)
    if known and known.repo != repo:
        raise PublishError(f"a LoRA named {name!r} is registered already "
                           f"({known.repo or 'added by URL'}): choose another --name")
    ref = str(src.checkpoint_id) if src.checkpoint_id else str(src.path)  # daemon's cwd differs
    return jobs.enqueue(conn, KIND, {"checkpoint": ref, "repo": repo, "private": private,
                                     "convert": convert, "name": name, "publisher": publisher},
                        max_attempts=6)


@register(KIND, concurrency=1)
async def run(ctx: JobContext) -> dict[str, Any]:
    p = ctx.payload
    publisher = publishers.get(p.get("publisher", publishers.DEFAULT))
    src = card.source(ctx.conn, p["checkpoint"])
    folder = ctx.ws.state_dir / "publish" / f"job-{ctx.job.id}"
    # a LoRA saved in the services' key format already (diffusion-pipe's) goes up as it is
    convert = p["convert"] and not loraconvert.in_inference_format(src.path)
    ctx.progress(0.05, "converting and writing the model card" if convert
                 else "writing the model card", force=True)
    try:
        await asyncio.to_thread(stage, src, folder, name=check_name(p["name"]),
                                convert=convert, repo=p["repo"])
        ctx.progress(0.2, f"uploading to {p['repo']} on {publisher.title}", force=True)
        message = f"{p['name']} from lorad" + (f" (run {src.run})" if src.run else "")
        published = await asyncio.to_thread(publisher.publish, ctx.ws.config()["publish"],
                                            p["repo"], folder, private=p["private"],
                                            message=message)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    private = p["private"] if published.private is None else published.private
    notice = visibility_notice(published.repo, p["private"], private)
    if notice:
        log.warning("job %s: %s", ctx.job.id, notice)
        ctx.progress(1.0, notice, force=True)  # `lorad jobs` shows it beside the job
    ctx.on_success(lambda conn: record(conn, src, published, name=p["name"],
                                       convert=convert, private=private))
    result = {"repo": published.repo, "commit_url": published.commit_url,
              "revision": published.revision, "files": published.files, "private": private}
    return {**result, "notice": notice} if notice else result
