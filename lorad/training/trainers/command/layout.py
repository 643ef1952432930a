"""The dataset format of a declared trainer with a `[trainers.NAME.layout]`: where each clip
and its caption go in the export, and the manifest its script reads (one path a line, JSON,
JSON lines or CSV, with the fields it names). Registered as `layout:NAME`; a model profile
names it in `format` (docs/COMMAND_TRAINERS.md).

Unless the layout says the trainer buckets by size, a dataset holds one resolution: StableAvatar
trains 512x512, 480x832 and 832x480 apart (seed 003: "don't mix resolution training data").
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections import Counter
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from lorad.media.profiles import MEDIA
from lorad.training.trainers.command.declaration import Declaration

if TYPE_CHECKING:
    from lorad.datasets.export import Item, Plan


class LayoutFormat:
    media = frozenset(MEDIA)  # the user's script reads whatever the layout puts down

    def __init__(self, declaration: Declaration):
        assert declaration.layout is not None
        self.trainer = declaration.name
        self.where = declaration.where
        self.spec = declaration.layout
        self.name = f"layout:{declaration.name}"

    def item_paths(self, p: Plan, item: Item) -> tuple[str, str | None]:
        """Where the clip's media and caption go, relative to the version's root."""
        same_split = [i.clip_id for i in p.items if i.split == item.split]
        values = {"name": item.name, "split": item.split, "file": item.file,
                  "ext": PurePosixPath(item.file).suffix,
                  "index": f"{same_split.index(item.clip_id) + 1:05d}"}
        caption = self.spec.caption.format(**values) if self.spec.caption else None
        return self.spec.media.format(**values), caption

    def row(self, p: Plan, item: Item) -> dict[str, Any]:
        media, caption = self.item_paths(p, item)
        return {"media": posixpath.join(p.remote_root, media),
                "folder": posixpath.dirname(posixpath.join(p.remote_root, media)),
                "caption": item.caption.strip(),
                "caption_file": posixpath.join(p.remote_root, caption) if caption else "",
                "name": item.name, "split": item.split, "width": item.width,
                "height": item.height, "frames": item.frames, "fps": item.fps}

    def files(self, p: Plan) -> dict[str, str]:
        if not self.spec.manifest:
            return {}
        out: dict[str, str] = {}
        splits = sorted({i.split for i in p.items}) if "{split}" in self.spec.manifest \
            else [None]
        for split in splits:
            rows = [self.row(p, i) for i in p.items if split is None or i.split == split]
            name = self.spec.manifest.format(split=split) if split else self.spec.manifest
            out[name] = self.manifest_text(rows)
        return out

    def manifest_text(self, rows: list[dict[str, Any]]) -> str:
        fields = self.spec.manifest_fields
        picked = [{f: r[f] for f in fields} for r in rows]
        fmt = self.spec.manifest_format
        if fmt == "lines":
            return "".join(f"{r[fields[0]]}\n" for r in picked)
        if fmt == "json":
            return json.dumps(picked, indent=2, ensure_ascii=False) + "\n"
        if fmt == "jsonl":
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in picked)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(picked)
        return buffer.getvalue()

    def problems(self, p: Plan) -> list[str]:
        problems = []
        sizes = Counter((i.width, i.height) for i in p.items if i.width and i.height)
        if len(sizes) > 1 and not self.spec.buckets:
            listed = ", ".join(f"{w}x{h} ({n} clip{'s' if n > 1 else ''})"
                               for (w, h), n in sorted(sizes.items(),
                                                       key=lambda s: (-s[1], s[0])))
            problems.append(
                f"the clips have {len(sizes)} resolutions ({listed}), and {self.trainer} "
                "trains one resolution per dataset (its layout declares no buckets): keep "
                "each resolution in a dataset of its own, or reprocess the clips with one "
                "profile")
        paths = Counter(self.item_paths(p, i)[0] for i in p.items)
        clashes = [path for path, n in paths.items() if n > 1]
        if clashes:
            problems.append(f"two clips would be written to {clashes[0]}: the layout's media "
                            f"path ({self.spec.media}) needs {{name}} in it ({self.where})")
        return problems

    def target_frames(self, p: Plan) -> list[int]:
        return [p.profile.min_frames or 1]

    def items_per_epoch(self, p: Plan) -> int:
        return sum(1 for i in p.items if i.split == "train")

    def batches_per_epoch(self, p: Plan) -> int:
        size = max(1, p.options.batch_size)
        return -(-self.items_per_epoch(p) // size)
