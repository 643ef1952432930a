"""The smallest trainer: one stage, a POSIX shell loop that prints `step N/T loss X` and writes a
real (tiny) safetensors checkpoint every `save_every` steps.

It exists to prove the Trainer interface (docs/ARCHITECTURE.md, "Adding a trainer"): this module
and its registration line are all it took; tests/test_trainer_plugin.py runs it end to end on
the loopback sshd pod through the same job, parser, checkpoint pulls and cost as musubi-tuner.
Loaded by name through $LORAD_PLUGINS, as a plugin package's module would be.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import struct
from dataclasses import asdict, dataclass
from typing import Any

from lorad.training.logparse import Checkpoint, LineParser, Progress, common_failure, parse_loss
from lorad.training.trainers import (
    TRAINERS,
    ModelInfo,
    PodCheck,
    RunPaths,
    Stage,
    TrainConfigError,
)

LINE = re.compile(r"^step (\d+)/(\d+) loss (\S+)$")
SAVED = re.compile(r"^checkpoint: (\S+\.safetensors)$")


@dataclass
class EchoConfig:
    steps: int = 6
    save_every: int = 3

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def checkpoint_bytes(step: int) -> bytes:
    """A whole safetensors file: one float32 tensor, its step in the metadata."""
    header = json.dumps({"__metadata__": {"ss_steps": str(step)},
                         "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + struct.pack("<f", float(step))


def printf_literal(data: bytes) -> str:
    """`data` as a printf format of octal escapes (POSIX printf writes them as bytes)."""
    return "".join(f"\\{b:03o}" for b in data)


def events_in(line: str) -> list:
    m = LINE.match(line)
    if m:
        return [Progress(int(m.group(1)), int(m.group(2)), avr_loss=parse_loss(m.group(3)))]
    m = SAVED.match(line)
    return [Checkpoint(m.group(1))] if m else []


class Echo:
    name = "echo"
    title = "echo (a shell loop, for tests)"
    dataset_format = None
    train_stage = "train"
    secrets: tuple[str, ...] = ()

    def load_config(self, data: dict[str, Any]) -> EchoConfig:
        try:
            cfg = EchoConfig(**data)
        except TypeError as exc:
            raise TrainConfigError(f"echo: {exc}") from None
        if cfg.steps < 1 or cfg.save_every < 1:
            raise TrainConfigError("echo: steps and save_every must be 1 or more")
        return cfg

    def config_dict(self, config: EchoConfig) -> dict[str, Any]:
        return config.as_dict()

    def stages(self, config: EchoConfig, paths: RunPaths) -> list[Stage]:
        lines = [f"mkdir -p {shlex.quote(paths.output)}"]
        for step in range(1, config.steps + 1):
            lines.append(f"echo 'step {step}/{config.steps} loss {1 / (step + 1):.4f}'")
            if step % config.save_every == 0 or step == config.steps:
                path = posixpath.join(paths.output, f"{paths.output_name}-step{step:08d}"
                                                    ".safetensors")
                lines.append(f"printf '{printf_literal(checkpoint_bytes(step))}' > "
                             f"{shlex.quote(path)}")
                lines.append(f"echo {shlex.quote('checkpoint: ' + path)}")
        return [Stage("train", "echoing steps", " && ".join(lines), paths.run)]

    def parser(self, offset: int = 0) -> LineParser:
        return LineParser(events_in, offset)

    def failure_reason(self, log_tail: str) -> str | None:
        return common_failure(log_tail)

    def checkpoint_mark(self, file_name: str, output_name: str) -> tuple[int | None, int | None]:
        m = re.search(r"-step(\d+)\.safetensors$", file_name)
        return (int(m.group(1)), None) if m else (None, None)

    def metadata_mark(self, metadata: dict[str, str], step: int | None,
                      epoch: int | None) -> tuple[int | None, int | None]:
        return step, epoch

    def sample_dir(self, paths: RunPaths) -> str | None:
        return None

    def version_command(self, config) -> str | None:
        return "echo echo-trainer-1"

    def pod_checks(self, options: dict[str, Any]) -> list[PodCheck]:
        return [PodCheck("sh", "command -v sh", "install a POSIX shell")]

    def resume_problem(self, options: dict[str, Any]) -> str | None:
        return "the echo trainer saves no state: start a new run"

    def resume(self, config, parent_config, output_dir, files, output_name, total_steps, *,
               log_head=""):
        return None  # it cannot: lorad says so instead of guessing

    def model_info(self, options: dict[str, Any]) -> ModelInfo:
        return ModelInfo(None, "video")


TRAINERS.register(Echo.name, Echo())
