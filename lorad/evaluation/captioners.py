"""Captioners declared as data: a command on the user's pod that writes a caption for one clip
(a Qwen2.5-VL or CogVLM2-caption script), `[captioners.NAME]` in lorad.toml. `lorad captions
draft D --service pod --model NAME` sends every clip through it like through a hosted model:
one request per clip, priced first (the declared seconds at the pod's rate), drafted, reviewed.

    [captioners.qwen-vl]
    title = "Qwen2.5-VL 7B on my pod"
    workdir = "/workspace/captioner"
    reads = "video"                       # or image, or audio (a track's tag prompt)
    command = "python caption.py --video {clip} --prompt {prompt} --out {out}/caption.txt"
    output = "caption.txt"                # the caption's file in {out}
    seconds_estimate = 20
    gpu_memory_gb = 20

Placeholders: `{clip}` (the clip on the pod, sent by content), `{prompt}` (the instructions
lorad builds from the dataset's rules and the person's own captions), `{out}`, `{workdir}`,
`{gpus}`, and any `params`; every value shell-quoted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lorad.core.config import DeclaredTable
from lorad.training.trainers.command.declaration import (
    NAME,
    InferenceSpec,
    Locator,
    _inference,
    _str,
)

FIELDS = {"clip": "the clip (or image) on the pod", "prompt": "the instructions lorad built",
          "out": "an empty folder for the request's outputs", "workdir": "the workdir",
          "gpus": "how many GPUs the pod has"}
OWN_KEYS = frozenset({"title", "workdir", "reads"})


@dataclass(frozen=True)
class CaptionerDeclaration:
    name: str
    title: str
    where: str
    workdir: str
    reads: str  # video | image
    spec: InferenceSpec


def parse(source: DeclaredTable) -> CaptionerDeclaration:
    at = Locator(source)
    table = source.table
    if not NAME.match(source.name):
        raise at.error("", None, "a captioner's name is lowercase letters, digits, - and _")
    workdir = _str(at, "", "workdir", table, required=True)
    reads = _str(at, "", "reads", table) or "video"
    if reads not in ("video", "image", "audio"):
        raise at.error("", "reads", f"video, image or audio, got {reads!r}")
    spec = _inference(at, table, "text", {}, where="", fields=FIELDS, extra_keys=OWN_KEYS)
    return CaptionerDeclaration(source.name, _str(at, "", "title", table) or source.name,
                                f"{source.path}:{at.line('')}", workdir, reads,
                                replace(spec, media="text"))
