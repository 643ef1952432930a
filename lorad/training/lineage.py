"""How a checkpoint was made: checkpoint -> run (trainer, config) -> dataset version -> the
clips and caption versions in it. One function, used by `lorad lora show`, publishing and the
model card."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from lorad.core.errors import LoradError
from lorad.datasets import export
from lorad.media import datasets
from lorad.training import checkpoints, runs, trainers


@dataclass
class Lineage:
    checkpoint: checkpoints.Checkpoint
    run: runs.Run | None = None
    trainer: str | None = None  # its title, e.g. "musubi-tuner (Wan 2.1/2.2)"
    model: trainers.ModelInfo | None = None
    dataset: datasets.Dataset | None = None
    version: export.DatasetVersion | None = None
    clips: list[dict[str, Any]] = field(default_factory=list)  # as frozen in the version

    @property
    def caption_version_ids(self) -> list[int]:
        return [c["caption_version_id"] for c in self.clips if c.get("caption_version_id")]

    def as_dict(self) -> dict[str, Any]:
        c = self.checkpoint
        out: dict[str, Any] = {"checkpoint": {"id": c.id, "name": c.name, "step": c.step,
                                              "epoch": c.epoch, "sha256": c.sha256}}
        if self.run:
            out["run"] = self.run.name
            out["trainer"] = self.run.trainer
            out["config"] = self.run.config
        if self.model:
            out["base_model"] = self.model.base_model
        if self.dataset:
            out["dataset"] = self.dataset.name
        if self.version:
            out["dataset_version"] = self.version.content_hash
            out["clips"] = self.version.clip_count
            out["caption_versions"] = self.caption_version_ids
        return out


def of_checkpoint(conn: sqlite3.Connection, checkpoint_id: int) -> Lineage:
    """As far as it is known: a checkpoint of a deleted run still has itself."""
    found = Lineage(checkpoints.get(conn, checkpoint_id))
    if found.checkpoint.run_id is None:
        return found
    try:
        found.run = runs.get_by_id(conn, found.checkpoint.run_id)
    except LoradError:
        return found
    try:
        impl = found.run.trainer_impl
        found.trainer, found.model = impl.title, impl.model_info(found.run.config)
    except LoradError:  # a plugin trainer no longer installed: the rest is still known
        found.trainer = found.run.trainer
    if found.run.dataset_version_id is None:
        return found
    try:
        found.version = export.get_version(conn, found.run.dataset_version_id)
        found.dataset = datasets.get_by_id(conn, found.version.dataset_id)
    except LoradError:
        return found
    clips = found.version.manifest.get("clips")
    found.clips = [c for c in clips if isinstance(c, dict)] if isinstance(clips, list) else []
    return found
