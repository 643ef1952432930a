"""Dataset versions: freeze approved clips and their current captions into a folder that
musubi-tuner reads as is, identified by a hash of its content.

The same content always gives the same hash and byte-identical files; any change (a caption, a
clip, the profile, an option) gives a new hash. The folder holds `train/` (and `val/` when a
validation split is asked for) with media and `.txt` captions, `dataset.toml` using only keys
musubi-tuner accepts, optionally `train.jsonl`, `sample_prompts.txt` and `manifest.json` with the
lineage (clip ids, caption version ids).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lorad.captions import versions
from lorad.core.errors import LoradError
from lorad.core.files import link_or_copy
from lorad.datasets import musubi
from lorad.media import datasets, profiles


class ExportError(LoradError):
    pass


@dataclass(frozen=True)
class Options:
    remote_root: str | None = None  # where the folder will live on the pod
    jsonl: bool = False  # also write train.jsonl and point the TOML at it
    validation: float = 0.0  # share of clips held out (0 = none)
    num_repeats: int = 1
    batch_size: int = 1


@dataclass
class Item:
    clip_id: int
    name: str
    media_path: str
    file: str  # basename in the export
    caption: str
    caption_version_id: int | None
    source_path: str
    source_hash: str | None
    source_range: list[float] | None
    frames: int | None
    fps: float | None
    split: str = "train"


@dataclass
class Plan:
    dataset: datasets.Dataset
    profile: profiles.Profile
    options: Options
    items: list[Item]
    content_hash: str
    remote_root: str
    toml: dict[str, Any] = field(default_factory=dict)
    val_toml: dict[str, Any] | None = None
    prompts: str = ""


def approved_items(conn: sqlite3.Connection, dataset: datasets.Dataset) -> list[Item]:
    current = versions.current_texts(conn, dataset.id)
    items = []
    for r in conn.execute(
            "SELECT id, name, media_path, source_path, source_hash, source_range, frames, fps"
            " FROM clips WHERE dataset_id = ? AND state = 'approved' AND duplicate_of IS NULL"
            " ORDER BY name", (dataset.id,)):
        v = current.get(r["id"])
        media = r["media_path"] or ""
        items.append(Item(r["id"], r["name"], media, r["name"] + Path(media).suffix.lower(),
                          v.text if v else "", v.id if v else None, r["source_path"],
                          r["source_hash"], json.loads(r["source_range"]) if r["source_range"]
                          else None, r["frames"], r["fps"]))
    return items


def split_validation(items: list[Item], share: float) -> None:
    """Hold out a deterministic share: the clips whose content hash sorts first."""
    if share <= 0 or len(items) < 2:
        return
    k = min(len(items) - 1, max(1, round(len(items) * share)))
    ranked = sorted(items, key=lambda i: hashlib.sha256(
        f"{i.source_hash}:{i.source_range}:{i.name}".encode()).hexdigest())
    for item in ranked[:k]:
        item.split = "val"


def _dataset_entry(profile: profiles.Profile, directory: str, cache: str, items: list[Item],
                   jsonl: str | None, repeats: int) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if profile.media == "image":
        entry["image_jsonl_file" if jsonl else "image_directory"] = jsonl or directory
    else:
        entry["video_jsonl_file" if jsonl else "video_directory"] = jsonl or directory
    entry["cache_directory"] = cache
    if profile.media == "video":
        counts = sorted({i.frames for i in items if i.frames}) or [profile.frames_needed()]
        if profile.frames is not None:
            entry["target_frames"] = [profile.frames]
            entry["frame_extraction"] = "head"
        elif len(counts) == 1:
            entry["target_frames"] = [counts[0]]
            entry["frame_extraction"] = "head"
        else:
            # clips of several 4n+1 lengths: each is used whole (trimmed to N*4+1 and max_frames)
            entry["target_frames"] = [counts[0]]
            entry["frame_extraction"] = "full"
            entry["max_frames"] = counts[-1]
        entry["source_fps"] = float(profile.fps)
    entry["num_repeats"] = repeats
    return entry


def sample_prompts(dataset: datasets.Dataset, profile: profiles.Profile) -> str:
    """musubi's prompt file: `prompt --w W --h H --f F --d seed --s steps [--n negative]`."""
    prompts = dataset.settings.get("eval_prompts", [])
    negative = dataset.settings.get("caption_rules", {}).get("negative_prompt")
    w, h = profile.width, profile.height
    frames = 1 if profile.media == "image" else profile.frames_needed()
    lines = [f"# sample prompts for {dataset.name} ({profile.name}), written by lorad"]
    for n, prompt in enumerate(prompts):
        line = f"{' '.join(prompt.split())} --w {w} --h {h} --f {frames} --d {42 + n} --s 20"
        if negative:
            line += f" --n {' '.join(negative.split())}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def plan(conn: sqlite3.Connection, dataset: datasets.Dataset, profile: profiles.Profile,
         options: Options = Options()) -> Plan:
    items = approved_items(conn, dataset)
    split_validation(items, options.validation)
    identity = {
        "profile": profile.name, "profile_fingerprint": profile.fingerprint(),
        "options": {k: v for k, v in asdict(options).items() if k != "remote_root"},
        "remote_root": options.remote_root,
        "eval_prompts": dataset.settings.get("eval_prompts", []),
        "negative": dataset.settings.get("caption_rules", {}).get("negative_prompt"),
        "clips": [[i.name, i.source_hash, i.source_range, i.caption.strip(), i.split]
                  for i in items],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    remote = (options.remote_root or f"/workspace/lorad/{dataset.name}/{digest[:12]}").rstrip("/")
    p = Plan(dataset, profile, options, items, digest, remote)
    general: dict[str, Any] = {"resolution": [profile.width, profile.height],
                               "caption_extension": ".txt", "batch_size": options.batch_size,
                               "enable_bucket": profile.media == "image"
                               or profile.orientation == "match",
                               "bucket_no_upscale": False}
    train = [i for i in items if i.split == "train"]
    val = [i for i in items if i.split == "val"]
    p.toml = {"general": general, "datasets": [_dataset_entry(
        profile, f"{remote}/train", f"{remote}/cache/{dataset.name}-train", train,
        f"{remote}/train.jsonl" if options.jsonl else None, options.num_repeats)]}
    if val:
        p.val_toml = {"general": dict(general), "datasets": [_dataset_entry(
            profile, f"{remote}/val", f"{remote}/cache/{dataset.name}-val", val, None, 1)]}
    p.prompts = sample_prompts(dataset, profile)
    return p


def manifest(p: Plan) -> dict[str, Any]:
    return {
        "lorad_export": 1,
        "dataset": p.dataset.name,
        "content_hash": p.content_hash,
        "profile": asdict(p.profile),
        "options": asdict(p.options),
        "remote_root": p.remote_root,
        "trigger": p.dataset.trigger,
        "clips": [asdict(i) for i in p.items],
    }


def write(p: Plan, target: Path) -> Path:
    """Write the folder atomically (built beside, then renamed). An existing folder with the
    same hash already holds exactly this content and is kept."""
    if (target / "manifest.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        for item in p.items:
            folder = tmp / item.split
            folder.mkdir(exist_ok=True)
            src = Path(item.media_path)
            if not src.exists():
                raise ExportError(f"clip {item.clip_id} ({item.name}): media file missing "
                                  f"({src}); `lorad clips reprocess {p.dataset.name} "
                                  f"{item.clip_id}`")
            link_or_copy(src, folder / item.file)
            (folder / f"{item.name}.txt").write_text(item.caption.strip() + "\n",
                                                     encoding="utf-8")
        comments = [f"lorad export of {p.dataset.name}, content {p.content_hash[:12]}",
                    f"profile {p.profile.name}: {p.profile.summary()}"]
        (tmp / "dataset.toml").write_text(musubi.dumps(p.toml, comments), encoding="utf-8")
        if p.val_toml:
            (tmp / "dataset_val.toml").write_text(musubi.dumps(p.val_toml, comments + [
                "held-out validation clips"]), encoding="utf-8")
        if p.options.jsonl:
            key = "image_path" if p.profile.media == "image" else "video_path"
            lines = [json.dumps({key: f"{p.remote_root}/train/{i.file}", "caption":
                                 i.caption.strip()}, ensure_ascii=False)
                     for i in p.items if i.split == "train"]
            (tmp / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (tmp / "sample_prompts.txt").write_text(p.prompts, encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps(manifest(p), indent=2, sort_keys=True)
                                           + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def record(conn: sqlite3.Connection, p: Plan, path: Path) -> int:
    """The dataset version row (one per distinct content)."""
    conn.execute(
        "INSERT OR IGNORE INTO dataset_versions (dataset_id, content_hash, manifest, export_path,"
        " created_at) VALUES (?,?,?,?,?)",
        (p.dataset.id, p.content_hash, json.dumps(manifest(p), sort_keys=True), str(path),
         time.time()))
    return conn.execute("SELECT id FROM dataset_versions WHERE dataset_id = ? AND content_hash"
                        " = ?", (p.dataset.id, p.content_hash)).fetchone()[0]


@dataclass(frozen=True)
class DatasetVersion:
    id: int
    dataset_id: int
    content_hash: str
    manifest: dict[str, Any]
    export_path: str | None
    created_at: float

    @property
    def remote_root(self) -> str:
        """Where the version's folder goes on the pod."""
        return self.manifest["remote_root"]

    @property
    def clip_count(self) -> int | None:
        clips = self.manifest.get("clips")
        return len(clips) if isinstance(clips, (list, dict)) else None


def get_version(conn: sqlite3.Connection, version_id: int) -> DatasetVersion:
    row = conn.execute("SELECT * FROM dataset_versions WHERE id = ?", (version_id,)).fetchone()
    if row is None:
        raise ExportError(f"no dataset version with id {version_id}")
    data = dict(row)
    data["manifest"] = json.loads(data["manifest"] or "{}")
    return DatasetVersion(**data)


def find_version(conn: sqlite3.Connection, dataset: datasets.Dataset,
                 ref: str | None = None) -> int | None:
    """A dataset version's id: the newest, or the one whose id or hash prefix is `ref`."""
    sql, params = "SELECT id FROM dataset_versions WHERE dataset_id = ?", [dataset.id]
    if ref:
        sql += " AND (content_hash LIKE ? OR CAST(id AS TEXT) = ?)"
        params += [ref + "%", ref]
    row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
    return row[0] if row else None


def export_dir(root: Path, p: Plan) -> Path:
    return root / "exports" / p.dataset.name / f"v-{p.content_hash[:12]}"
