"""How a training run was made, written when its stages are known: lorad's and ffmpeg's versions,
the trainer and its version as read on the pod (musubi-tuner's git commit), the base model, the
dataset version and its content hash, the effective config and every stage's command line, and
the run it resumes. Kept in `runs.manifest` and beside the run's downloads."""

from __future__ import annotations

from typing import Any

from lorad.core import provenance
from lorad.datasets.export import DatasetVersion
from lorad.training.pods import Pod
from lorad.training.runs import Run
from lorad.training.trainers import Stage, Trainer


def build(run: Run, trainer: Trainer, trainer_version: str | None, version: DatasetVersion,
          pod: Pod, stages: list[Stage]) -> dict[str, Any]:
    info = trainer.model_info(trainer.config_dict(run.train_config))
    return {
        "lorad_manifest": 1, "kind": "run", "run": run.name, "tools": provenance.tools(),
        "trainer": {"name": trainer.name, "title": trainer.title, "version": trainer_version},
        "base_model": info.base_model, "media": info.media, "expert": info.expert,
        "dataset_version": {"id": version.id, "content_hash": version.content_hash,
                            "remote_root": version.remote_root},
        "config": trainer.config_dict(run.train_config),
        "stages": [{"name": s.name, "command": s.command, "cwd": s.cwd} for s in stages],
        "pod": {"name": pod.name, "provider": pod.provider},
        "resumed": {"parent_run_id": run.parent_run_id, "state": run.resume_from,
                    "step_offset": run.step_offset} if run.parent_run_id else None,
    }
