"""A dataset's captions as review sees them: the clips that get captions (one rule,
`clips.captionable`, shared by the Captions screen, `lorad captions lint` and bulk edits), each
with its current text and its lint issues, and the phrases already used (the editor's
completions)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field

from lorad.captions import drafts, lint, versions
from lorad.media import clips
from lorad.media.datasets import Dataset

NO_ISSUES: tuple = ()  # shared by every clean caption (100,000 empty lists were ~6 MB)


@dataclass(slots=True)  # 100,000 of them in the Captions screen: no __dict__ each
class CaptionRow:
    id: int
    name: str
    state: str
    text: str
    issues: list[lint.Issue]
    filmstrip: str | None
    facts: str  # "480x848, 41 frames at 16 fps", or the state while it is being processed
    version_id: int | None = None  # the current caption version (None: never captioned)
    draft: drafts.Draft | None = None  # unsaved editor text, kept from an earlier session
    source: str | None = None  # how the current version came: typed, import, draft:<model>...

    @property
    def has_error(self) -> bool:
        return any(i.severity == "error" for i in self.issues)

    @property
    def is_model_draft(self) -> bool:
        """A model wrote the caption and no person has saved or accepted it since."""
        return self.source is not None and versions.is_draft_source(self.source)


@dataclass
class DatasetCaptions:
    rules: lint.Rules
    rows: list[CaptionRow]
    lint: lint.DatasetLint
    phrases: Counter = field(default_factory=Counter)


def dataset_captions(conn: sqlite3.Connection, dataset: Dataset) -> DatasetCaptions:
    """Every clip that gets a caption (`clips.captionable`), linted as a set (identical
    captions across clips are found too)."""
    rules = lint.Rules.from_dataset(dataset.trigger, dataset.settings)
    current = versions.current_texts(conn, dataset.id)
    base = clips.captionable(conn, dataset.id)
    texts = {c.id: current[c.id].text if c.id in current else "" for c in base}
    linted = lint.lint_dataset(texts, rules)
    kept = drafts.of_dataset(conn, dataset.id)
    rows = [CaptionRow(c.id, c.name, c.state, texts[c.id], linted.by_clip[c.id] or NO_ISSUES,
                       c.filmstrip_path, c.facts,
                       current[c.id].id if c.id in current else None, kept.get(c.id),
                       current[c.id].source if c.id in current else None)
            for c in base]
    return DatasetCaptions(rules, rows, linted, phrases_of(list(texts.values())))


def phrases_of(texts: list[str]) -> Counter:
    """Comma-separated phrases used in a dataset's captions: the completion vocabulary."""
    counter: Counter = Counter()
    for text in texts:
        for part in text.split(","):
            part = " ".join(part.split())
            if 2 < len(part) < 80:
                counter[part] += 1
    return counter


def suggest(prefix: str, phrases: Counter, limit: int = 3) -> list[str]:
    """Phrases that complete what is being typed, most used first."""
    prefix = prefix.lstrip().lower()
    if len(prefix) < 2:
        return []
    hits = [p for p, _ in phrases.most_common() if p.lower().startswith(prefix)
            and p.lower() != prefix]
    return hits[:limit]
