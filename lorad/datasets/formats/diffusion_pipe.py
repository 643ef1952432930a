"""diffusion-pipe's dataset format (tdrussell/diffusion-pipe@8f83dbf, examples/dataset.toml,
utils/dataset.py): media and `.txt` captions side by side in a directory, `dataset.toml` with
`resolutions`, aspect-ratio buckets, `frame_buckets` and `[[directory]] path/num_repeats`, and
`eval_dataset.toml` over the validation split.

What it does with a clip, predicted here: its frames become `int(frames * model_fps /
clip_fps)` (the model's fps: Wan 16, Wan 2.2 5B 24, LTX-Video 25), and it goes to the longest
frame bucket not longer than that (never to the image bucket 1): a clip shorter than every
bucket is skipped ("video with frames=N is being skipped because it is too short"). The clip
taken is that bucket's length rounded down to 4k+1 (8k+1 for LTX-Video). lorad picks the
buckets from the clips' own lengths, at most four, so none is skipped and each keeps as much of
itself as a shared bucket allows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lorad.datasets.formats import FORMATS

if TYPE_CHECKING:
    from lorad.datasets.export import Item, Plan

MAX_BUCKETS = 4
MAX_RESOLUTIONS = 3  # more: train.py prints a WARNING and quits (exit 0)


def round_frames(p: Plan) -> int:
    return 8 if "ltx" in p.profile.name.lower() else 4


def aligned(frames: int, step: int) -> int:
    """utils/dataset.py align_frames: round_down_to_multiple(frames - 1, step) + 1."""
    return (frames - 1) // step * step + 1 if frames >= 1 else 0


def model_frames(p: Plan, item: Item) -> int:
    """The frames diffusion-pipe reads of the clip, at the model's fps (the profile's)."""
    frames = item.frames or 0
    if p.profile.media != "video" or not item.fps or not p.profile.fps:
        return frames
    return int(frames * p.profile.fps / item.fps)


def frame_buckets(p: Plan) -> list[int]:
    """At most four buckets from the training clips' lengths (their quantiles), aligned."""
    if p.profile.media != "video":
        return [1]
    step = round_frames(p)
    lengths = sorted({aligned(model_frames(p, i), step) for i in p.items
                      if model_frames(p, i) > 1})
    if len(lengths) > MAX_BUCKETS:
        picks = [lengths[round(k * (len(lengths) - 1) / (MAX_BUCKETS - 1))]
                 for k in range(MAX_BUCKETS)]
        lengths = sorted(set(picks))
    return [1, *lengths]


def bucket_of(p: Plan, item: Item, buckets: list[int]) -> int | None:
    """The bucket diffusion-pipe puts the clip in (None: it skips it)."""
    frames = model_frames(p, item)
    if p.profile.media != "video":
        return 1
    fitting = [b for b in buckets if b <= frames and b != 1]
    return max(fitting) if fitting else None


def _toml_list(values) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def dataset_toml(p: Plan, directory: str, buckets: list[int]) -> str:
    width, height = p.profile.width, p.profile.height
    aspects = sorted({round((i.width or width) / (i.height or height), 4) for i in p.items})
    lines = ["# written by lorad for diffusion-pipe (examples/dataset.toml)",
             f"resolutions = [[{width}, {height}]]",
             "enable_ar_bucket = true",
             f"ar_buckets = {_toml_list(aspects or [round(width / height, 4)])}",
             f"frame_buckets = {_toml_list(buckets)}",
             "",
             "[[directory]]",
             f'path = "{directory}"',
             f"num_repeats = {int(p.options.num_repeats)}"]
    return "\n".join(lines) + "\n"


class DiffusionPipeFormat:
    name = "diffusion-pipe"
    media = frozenset({"video", "image"})

    def files(self, p: Plan) -> dict[str, str]:
        buckets = frame_buckets(p)
        out = {"dataset.toml": dataset_toml(p, f"{p.remote_root}/train", buckets)}
        if any(i.split == "val" for i in p.items):
            out["eval_dataset.toml"] = dataset_toml(p, f"{p.remote_root}/val", buckets)
        return out

    def problems(self, p: Plan) -> list[str]:
        buckets = frame_buckets(p)
        problems = []
        for item in p.items:
            if bucket_of(p, item, buckets) is None:
                problems.append(
                    f"{item.name}: {model_frames(p, item)} frames at the model's "
                    f"{p.profile.fps:g} fps is shorter than every frame bucket "
                    f"{buckets[1:]}: diffusion-pipe skips it (\"video with frames=... is being "
                    "skipped because it is too short\")")
            if not item.caption.strip():
                problems.append(f"{item.name}: no caption: diffusion-pipe skips a clip without "
                                "its .txt (skip_empty_caption)")
        return problems

    def predictions(self, p: Plan) -> dict[int, int | None]:
        """Each clip's frame bucket (None: skipped), for the preflight to show."""
        buckets = frame_buckets(p)
        return {i.clip_id: bucket_of(p, i, buckets) for i in p.items}

    def target_frames(self, p: Plan) -> list[int]:
        return [b for b in frame_buckets(p) if b != 1] or [1]

    def items_per_epoch(self, p: Plan) -> int:
        buckets = frame_buckets(p)
        kept = sum(1 for i in p.items if i.split == "train" and bucket_of(p, i, buckets))
        return kept * max(1, p.options.num_repeats)

    def batches_per_epoch(self, p: Plan) -> int:
        return math.ceil(self.items_per_epoch(p) / max(1, p.options.batch_size))


FORMATS.register(DiffusionPipeFormat.name, DiffusionPipeFormat())
