"""Import captions users already have: .txt sidecars, a JSON list like
`[{"video": ..., "caption": ...}]`, or musubi-tuner JSONL metadata."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from lorad.captions import versions
from lorad.core.errors import LoradError
from lorad.media import clips, datasets


class ImportError_(LoradError):
    pass


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    unmatched: list[str] = field(default_factory=list)  # entries naming no clip of the dataset
    problems: list[str] = field(default_factory=list)  # lines that could not be read
    batch_id: str | None = None


class _Matcher:
    """Find a clip by full path, then by file name (when unique), then by output name."""

    def __init__(self, conn: sqlite3.Connection, dataset_id: int):
        rows = clips.sources(conn, dataset_id)
        self.by_path: dict[str, int] = {}
        self.by_base: dict[str, list[int]] = {}
        for clip_id, source_path, name, media_path in rows:
            for p in (source_path, media_path):
                if p:
                    self.by_path[str(Path(p).resolve())] = clip_id
                    self.by_base.setdefault(Path(p).name.lower(), []).append(clip_id)
                    self.by_base.setdefault(Path(p).stem.lower(), []).append(clip_id)
            self.by_base.setdefault(name.lower(), []).append(clip_id)
        self.all = [(clip_id, source_path) for clip_id, source_path, _n, _m in rows]

    def find(self, ref: str, base_dir: Path | None = None) -> int | None:
        candidates = [Path(ref)]
        if base_dir is not None and not Path(ref).is_absolute():
            candidates.insert(0, base_dir / ref)
        for c in candidates:
            hit = self.by_path.get(str(c.resolve()))
            if hit is not None:
                return hit
        for key in (Path(ref).name.lower(), Path(ref).stem.lower()):
            ids = set(self.by_base.get(key, []))
            if len(ids) == 1:
                return ids.pop()
        return None


def _apply(conn, pairs: list[tuple[int, str]], report: ImportReport) -> ImportReport:
    current = {}
    for clip_id, _ in pairs:
        v = versions.current(conn, clip_id)
        current[clip_id] = v.text if v else ""
    changes = [(c, t.strip()) for c, t in pairs if current[c] != t.strip()]
    report.unchanged += len(pairs) - len(changes)
    if changes:
        report.batch_id, report.imported = versions.set_many(conn, changes, source="import")
    return report


def sidecars(conn: sqlite3.Connection, dataset: datasets.Dataset,
             extension: str = ".txt") -> ImportReport:
    """A `clip.txt` next to each source `clip.mp4`."""
    report = ImportReport()
    pairs = []
    for clip_id, source in _Matcher(conn, dataset.id).all:
        side = Path(source).with_suffix(extension)
        if side.exists():
            try:
                pairs.append((clip_id, side.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                report.problems.append(f"{side}: {exc}")
    return _apply(conn, pairs, report)


def json_list(conn: sqlite3.Connection, dataset: datasets.Dataset, path: Path) -> ImportReport:
    """A JSON list of {"video" (or "image"/"path"/"file"), "caption"} objects."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ImportError_(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, list):
        raise ImportError_(f"{path}: expected a list of {{\"video\", \"caption\"}} objects")
    entries = []
    for n, item in enumerate(data):
        if not isinstance(item, dict):
            entries.append((n, None, None))
            continue
        ref = next((item[k] for k in ("video", "image", "path", "file", "video_path",
                                      "image_path") if k in item), None)
        entries.append((n, ref, item.get("caption", item.get("text"))))
    return _match(conn, dataset, entries, path, lambda n: f"item {n}")


def jsonl(conn: sqlite3.Connection, dataset: datasets.Dataset, path: Path) -> ImportReport:
    """musubi-tuner metadata: one {"video_path" | "image_path", "caption"} object per line."""
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ImportError_(f"{path}: {exc}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            entries.append((n, None, None))
            continue
        entries.append((n, item.get("video_path") or item.get("image_path"), item.get("caption")))
    return _match(conn, dataset, entries, path, lambda n: f"line {n}")


def _match(conn, dataset, entries, path: Path, where) -> ImportReport:
    report = ImportReport()
    matcher = _Matcher(conn, dataset.id)
    pairs = []
    for n, ref, caption in entries:
        if not ref or not isinstance(caption, str):
            report.problems.append(f"{path}: {where(n)} needs a file path and a caption")
            continue
        clip_id = matcher.find(str(ref), path.parent)
        if clip_id is None:
            report.unmatched.append(str(ref))
        else:
            pairs.append((clip_id, caption))
    return _apply(conn, pairs, report)


def auto(conn: sqlite3.Connection, dataset: datasets.Dataset, path: Path | None) -> ImportReport:
    if path is None:
        return sidecars(conn, dataset)
    if path.suffix.lower() == ".jsonl":
        return jsonl(conn, dataset, path)
    if path.suffix.lower() == ".json":
        return json_list(conn, dataset, path)
    raise ImportError_(f"{path}: import takes a .json list or a .jsonl file (or nothing, for "
                       ".txt sidecars next to the sources)")
