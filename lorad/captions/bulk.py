"""Bulk caption edits: preview first (old -> new per clip), then apply as one undoable batch."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from lorad.captions import shaping, versions
from lorad.core.errors import LoradError
from lorad.core.store import transaction
from lorad.media import clips, datasets


class BulkError(LoradError):
    pass


@dataclass(frozen=True)
class Change:
    clip_id: int
    old: str
    new: str
    source: str | None = None  # the version's source, when not the edit's own ("bulk")


def _texts(conn: sqlite3.Connection, dataset: datasets.Dataset,
           clip_ids: list[int] | None) -> dict[int, str]:
    current = versions.current_texts(conn, dataset.id)
    ids = clip_ids if clip_ids is not None else [c.id for c in
                                                  clips.captionable(conn, dataset.id)]
    return {i: current[i].text if i in current else "" for i in ids}


def replace(conn, dataset, find: str, repl: str, *, regex: bool = False,
            ignore_case: bool = False, clip_ids: list[int] | None = None) -> list[Change]:
    if not find:
        raise BulkError("find text is empty")
    flags = re.IGNORECASE if ignore_case else 0
    try:
        pattern = re.compile(find if regex else re.escape(find), flags)
    except re.error as exc:
        raise BulkError(f"bad regular expression {find!r}: {exc}") from None
    out = []
    for clip_id, text in _texts(conn, dataset, clip_ids).items():
        try:
            new = pattern.sub(repl if regex else repl.replace("\\", "\\\\"), text)
        except (re.error, IndexError) as exc:
            raise BulkError(f"bad replacement {repl!r}: {exc}") from None
        if new != text:
            out.append(Change(clip_id, text, new))
    return out


def prepend(conn, dataset, prefix: str, *, clip_ids: list[int] | None = None) -> list[Change]:
    return [Change(i, t, f"{prefix}{t}") for i, t in _texts(conn, dataset, clip_ids).items()
            if t and not t.startswith(prefix)]


def append(conn, dataset, suffix: str, *, clip_ids: list[int] | None = None) -> list[Change]:
    return [Change(i, t, f"{t}{suffix}") for i, t in _texts(conn, dataset, clip_ids).items()
            if t and not t.endswith(suffix)]


def set_trigger(conn, dataset, trigger: str, *, clip_ids: list[int] | None = None
                ) -> list[Change]:
    """Rename the trigger (old token -> new) where present; put it first where missing."""
    old = dataset.trigger
    out = []
    for clip_id, text in _texts(conn, dataset, clip_ids).items():
        if not text:
            continue
        new = text
        if old and old != trigger:
            new = re.sub(rf"(?<!\w){re.escape(old)}(?!\w)", trigger, new)
        if not re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", new):
            new = f"{trigger}, {new}"
        if new != text:
            out.append(Change(clip_id, text, new))
    return out


def apply_template(conn, dataset, template: str | None = None, *,
                   clip_ids: list[int] | None = None) -> list[Change]:
    """Seed uncaptioned clips with the dataset's template (placeholders stay for the user)."""
    template = template or dataset.settings.get("caption_rules", {}).get("template")
    if not template:
        raise BulkError("no template: set one with `lorad dataset rules NAME --template ...`")
    if dataset.trigger and dataset.trigger not in template:
        template = f"{dataset.trigger}, {template}"
    return [Change(i, t, template) for i, t in _texts(conn, dataset, clip_ids).items() if not t]


def shape_drafts(conn, dataset, rules: shaping.Rules, *, clip_ids: list[int] | None = None
                 ) -> list[Change]:
    """The post-processing rules applied to the drafts no person has reviewed yet; each stays
    a draft of its model (a person's review is still owed)."""
    current = versions.current_texts(conn, dataset.id)
    out = []
    for clip_id, v in current.items():
        if not v.is_draft or clip_ids is not None and clip_id not in clip_ids:
            continue
        new = shaping.shape(v.text, rules).text
        if new != v.text:
            out.append(Change(clip_id, v.text, new, source=v.source))
    return sorted(out, key=lambda c: c.clip_id)


def apply(conn: sqlite3.Connection, changes: list[Change], *, source: str = "bulk") -> str | None:
    """Write the previewed changes as one batch; returns its id for `versions.undo_batch`."""
    if not changes:
        return None
    batch_id = versions.new_batch_id()
    by_source: dict[str, list[tuple[int, str]]] = {}
    for c in changes:
        by_source.setdefault(c.source or source, []).append((c.clip_id, c.new))
    with transaction(conn):
        for kind, edits in by_source.items():
            versions.set_many(conn, edits, source=kind, batch_id=batch_id)
    return batch_id
