"""Dataset versions: freeze approved clips and their current captions into a folder a trainer
reads as is, identified by a hash of its content.

The same content always gives the same hash and byte-identical files; any change (a caption, a
clip, the profile, an option) gives a new hash. The folder holds `train/` (and `val/` when a
validation split is asked for) with media and `.txt` captions, the files of the profile's
dataset format (lorad.datasets.formats: musubi-tuner's `dataset.toml`, `sample_prompts.txt`...)
and `manifest.json` with the lineage (clip ids, caption version ids).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lorad.captions import lyrics, versions
from lorad.core import provenance, store
from lorad.core.errors import LoradError
from lorad.core.files import link_or_copy
from lorad.datasets import formats
from lorad.media import clips, convert, datasets, profiles


class ExportError(LoradError):
    pass


@dataclass(frozen=True)
class Options:
    remote_root: str | None = None  # where the folder will live on the pod
    jsonl: bool = False  # also write train.jsonl and point the TOML at it
    validation: float = 0.0  # share of clips held out (0 = none)
    num_repeats: int = 1
    batch_size: int = 1
    format: str | None = None  # the trainer's dataset format (default: the profile's)


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
    width: int | None = None  # of the processed media: the trainer buckets by it
    height: int | None = None
    lyrics: str | None = None  # a track's, when written (captions.lyrics)


@dataclass
class Plan:
    dataset: datasets.Dataset
    profile: profiles.Profile
    options: Options
    items: list[Item]
    content_hash: str
    remote_root: str

    @property
    def format_name(self) -> str:
        return self.options.format or self.profile.format

    @property
    def format(self) -> formats.DatasetFormat:
        return formats.get(self.format_name)

    @property
    def start_frames(self) -> list[tuple[str, str]]:
        """(file in the version, clip media) per eval prompt of a video dataset: the first frame
        of a training clip, the start image an image-to-video model samples from (musubi skips
        an I2V sample prompt without one)."""
        train = [i for i in self.items if i.split == "train"]
        if self.profile.media != "video" or not train:
            return []
        prompts = self.dataset.settings.get("eval_prompts", [])
        return [(f"samples/start-{n + 1}.png", train[n % len(train)].media_path)
                for n in range(len(prompts))]


def approved_items(conn: sqlite3.Connection, dataset: datasets.Dataset) -> list[Item]:
    current = versions.current_texts(conn, dataset.id)
    approved = clips.approved(conn, dataset.id)
    sung = lyrics.current_texts(conn, [c.id for c in approved])
    items = []
    for c in approved:
        v = current.get(c.id)
        media = c.media_path or ""
        items.append(Item(c.id, c.name, media, c.name + Path(media).suffix.lower(),
                          v.text if v else "", v.id if v else None, c.source_path,
                          c.source_hash, list(c.source_range) if c.source_range else None,
                          c.frames, c.fps, width=c.width, height=c.height,
                          lyrics=sung.get(c.id)))
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


def plan(conn: sqlite3.Connection, dataset: datasets.Dataset, profile: profiles.Profile,
         options: Options = Options()) -> Plan:
    items = approved_items(conn, dataset)
    split_validation(items, options.validation)
    identity = {
        "profile": profile.name, "profile_fingerprint": profile.fingerprint(),
        "options": {k: v for k, v in asdict(options).items()
                    if k not in ("remote_root", "format")},
        "remote_root": options.remote_root,
        "eval_prompts": dataset.settings.get("eval_prompts", []),
        "negative": dataset.settings.get("caption_rules", {}).get("negative_prompt"),
        "clips": [[i.name, i.source_hash, i.source_range, i.caption.strip(), i.split]
                  for i in items],
    }
    made_for = options.format or profile.format
    if made_for != formats.DEFAULT:  # the same content for another trainer
        identity["format"] = made_for
    if any(i.lyrics for i in items):  # a track's lyrics are content too
        identity["lyrics"] = {i.name: i.lyrics for i in items if i.lyrics}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    remote = (options.remote_root or f"/workspace/lorad/{dataset.name}/{digest[:12]}").rstrip("/")
    return Plan(dataset, profile, options, items, digest, remote)


def manifest(p: Plan) -> dict[str, Any]:
    return {
        "lorad_export": 1,
        "tools": provenance.tools(),
        "dataset": p.dataset.name,
        "content_hash": p.content_hash,
        "format": p.format_name,
        "profile": asdict(p.profile),
        "options": asdict(p.options),
        "remote_root": p.remote_root,
        "trigger": p.dataset.trigger,
        "clips": [asdict(i) for i in p.items],
    }


def refusal(report, *, force: bool) -> str | None:
    """Why a preflight report stops an export (None: it goes ahead); `force` exports anyway."""
    if report.ok or force:
        return None
    first = "; ".join(f.line() for f in report.errors[:3])
    more = f" (+{len(report.errors) - 3} more)" if len(report.errors) > 3 else ""
    return (f"export stopped: {len(report.errors)} preflight error(s): {first}{more}; fix them "
            "or export anyway (--force)")


def write(p: Plan, target: Path) -> Path:
    """Write the folder atomically (built beside, then renamed). An existing folder with the
    same hash already holds exactly this content and is kept."""
    if (target / "manifest.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    placed = getattr(p.format, "item_paths", None)  # a trainer's own layout, if it has one
    try:
        for item in p.items:
            media, caption = (placed(p, item) if placed is not None
                              else (f"{item.split}/{item.file}", f"{item.split}/{item.name}.txt"))
            src = Path(item.media_path)
            if not src.exists():
                raise ExportError(f"clip {item.clip_id} ({item.name}): media file missing "
                                  f"({src}); `lorad clips reprocess {p.dataset.name} "
                                  f"{item.clip_id}`")
            (tmp / media).parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(src, tmp / media)
            if caption:
                (tmp / caption).parent.mkdir(parents=True, exist_ok=True)
                (tmp / caption).write_text(item.caption.strip() + "\n", encoding="utf-8")
        for name, media in p.start_frames:
            convert.first_frame(Path(media), tmp / name)
        for name, text in p.format.files(p).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text, encoding="utf-8")
        more = getattr(p.format, "write_more", None)  # binary files (ACE-Step's datasets)
        if more is not None:
            more(p, tmp)
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
        (p.dataset.id, p.content_hash, json.dumps(manifest(p), sort_keys=True),
         store.stored_path(conn, path),
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
    def format(self) -> str:
        """The dataset format it was written in (versions before formats were musubi's)."""
        return self.manifest.get("format", formats.DEFAULT)

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
    data["export_path"] = store.local_path(conn, data["export_path"])
    return DatasetVersion(**data)


def list_versions(conn: sqlite3.Connection) -> list[DatasetVersion]:
    """Every dataset version, newest first."""
    return [get_version(conn, r[0]) for r in
            conn.execute("SELECT id FROM dataset_versions ORDER BY id DESC")]


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
