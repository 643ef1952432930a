"""Preflight: every mistake that would make the trainer fail late (or train on the wrong
thing), found before a GPU is rented. Each finding names the clip and says the fix; what the
trainer itself would refuse comes from the version's dataset format."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lorad.captions import lint, versions
from lorad.datasets import export
from lorad.media import clips, datasets, profiles


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning
    message: str
    clip_id: int | None = None
    clip_name: str | None = None

    def line(self) -> str:
        where = f"clip {self.clip_id} ({self.clip_name}): " if self.clip_id else ""
        return f"{self.severity}: {where}{self.message}"


@dataclass
class Report:
    findings: list[Finding]
    items: int  # training items per epoch the trainer will make
    batches: int
    clips: int
    # what the trainer makes of each clip, when its format says (diffusion-pipe: the frame
    # bucket, None when it skips the clip), by clip name
    buckets: dict[str, int | None] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def check(conn: sqlite3.Connection, dataset: datasets.Dataset, profile: profiles.Profile,
          options: export.Options = export.Options(), *, allow_drafts: bool = False) -> Report:
    """`allow_drafts`: captions a model drafted and no person reviewed are warnings, not
    errors."""
    p = export.plan(conn, dataset, profile, options)
    findings: list[Finding] = []

    def add(severity: str, message: str, item: export.Item | None = None) -> None:
        findings.append(Finding(severity, message, item.clip_id if item else None,
                                item.name if item else None))

    if not p.items:
        add("error", "no approved clips: approve clips in the Clips screen or with "
                     "`lorad clips approve`")
    rules = lint.Rules.from_dataset(dataset.trigger, dataset.settings)
    texts = {i.clip_id: i.caption for i in p.items}
    linted = lint.lint_dataset(texts, rules)
    fmt = p.format
    targets = fmt.target_frames(p)
    drafts = set(versions.unreviewed_drafts(conn, dataset.id))
    for item in p.items:
        for issue in linted.by_clip.get(item.clip_id, []):
            add(issue.severity, issue.message, item)
        if item.clip_id in drafts:
            add("warning" if allow_drafts else "error",
                "the caption is a model's draft no person has reviewed: review it in the "
                "Captions screen (y accepts it as is), or export with --allow-drafts", item)
        if not item.media_path or not Path(item.media_path).exists():
            add("error", "processed media is missing: reprocess the clip", item)
        if profile.media == "video":
            if not item.frames or item.frames < min(targets):
                add("error", f"{item.frames or 0} frames is shorter than every target "
                             f"({targets}); it would give no training items: reprocess or "
                             "reject it", item)
            if item.fps and abs(item.fps - profile.fps) > 1e-3:
                add("error", f"clip is {item.fps:g} fps but the profile trains at "
                             f"{profile.fps:g}: reprocess it", item)
    stale_ids = set(clips.stale_ids(conn, dataset.id, profile.fingerprint()))
    stale = [i for i in p.items if i.clip_id in stale_ids]
    for item in stale:
        add("warning", f"made with an older version of profile {profile.name}: "
                       f"`lorad clips reprocess {dataset.name} --stale`", item)
    stems = Counter(Path(i.file).stem.lower() for i in p.items)
    for item in p.items:
        if stems[Path(item.file).stem.lower()] > 1:
            add("error", f"file name {item.file} collides with another clip's (musubi caches by "
                         "basename): rename one source", item)
    if profile.media not in fmt.media:
        add("error", f"{fmt.name} reads {' and '.join(sorted(fmt.media))} clips, not "
                     f"{profile.media}: export this dataset for {profile.format} (its profile's "
                     "format)")
        return Report(findings, 0, 0, len(p.items), {})
    for problem in fmt.problems(p):
        add("error", problem)
    n_items = fmt.items_per_epoch(p)
    if p.items and n_items == 0:
        add("error", "0 training items per epoch: training would stop with 'No training items "
                     "found'")
    batches = fmt.batches_per_epoch(p)
    predict = getattr(fmt, "predictions", None)
    names = {i.clip_id: i.name for i in p.items}
    buckets = ({names[k]: v for k, v in predict(p).items()} if predict is not None else {})
    return Report(findings, n_items, batches, len(p.items), buckets)
