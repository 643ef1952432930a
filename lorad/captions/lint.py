"""Caption lint: the mistakes that make a LoRA worse or a trainer fail, found as you type.

Rules come from the dataset's settings (`caption_rules`) and its trigger token. Each issue has a
code, a severity (error blocks export, warning does not), a message saying what to do, and the
character span it concerns so the editor can mark it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PLACEHOLDER = re.compile(r"\[[^\[\]\n]{1,40}\]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
WORD = re.compile(r"[\w'-]+", re.UNICODE)


@dataclass(frozen=True)
class Rules:
    trigger: str | None = None
    trigger_position: str = "start"  # start | anywhere
    template: str | None = None
    min_words: int = 5
    max_words: int = 120
    banned_words: tuple[str, ...] = ()
    negative_prompt: str | None = None
    # an audio dataset's tag prompts: each taxonomy tag (lower case) -> its group
    tag_groups: dict[str, str] | None = None

    @classmethod
    def from_dataset(cls, trigger: str | None, settings: dict[str, Any]) -> Rules:
        r = settings.get("caption_rules", {})
        return cls(trigger=trigger or None,
                   trigger_position=r.get("trigger_position", "start"),
                   template=r.get("template"), min_words=int(r.get("min_words", 5)),
                   max_words=int(r.get("max_words", 120)),
                   banned_words=tuple(r.get("banned_words", ())),
                   negative_prompt=r.get("negative_prompt"),
                   tag_groups=_taxonomy() if r.get("tag_prompt") else None)


@dataclass(frozen=True)
class Issue:
    code: str
    severity: str  # error | warning
    message: str
    span: tuple[int, int] | None = None


class IssuesByClip(dict):
    """Clip id -> its issues; a clip with none is not stored (100,000 clean captions were
    100,000 empty lists) and reads as an empty list."""

    def __missing__(self, clip_id: int) -> list[Issue]:
        return []


@dataclass
class DatasetLint:
    by_clip: dict[int, list[Issue]] = field(default_factory=IssuesByClip)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for issues in self.by_clip.values():
            for issue in issues:
                out[issue.code] = out.get(issue.code, 0) + 1
        return out

    def clips_with_errors(self) -> list[int]:
        return [c for c, issues in self.by_clip.items() if any(i.severity == "error"
                                                               for i in issues)]


def _phrase_span(text: str, phrase: str) -> tuple[int, int] | None:
    match = re.search(rf"(?<![\w]){re.escape(phrase)}(?![\w])", text, re.IGNORECASE)
    return match.span() if match else None


def lint(text: str, rules: Rules, *, duplicate_of: int | None = None) -> list[Issue]:
    """Issues of one caption. `duplicate_of`: another clip with the identical caption."""
    issues: list[Issue] = []
    stripped = text.strip()
    if not stripped:
        return [Issue("empty", "error", "no caption: write one, or apply the template (bulk)")]
    for match in PLACEHOLDER.finditer(text):
        issues.append(Issue("placeholder", "error",
                            f"unfilled placeholder {match.group(0)}: replace it with what the "
                            "clip shows", match.span()))
    for match in CONTROL.finditer(text):
        issues.append(Issue("control", "error", f"control character {match.group(0)!r}: delete "
                            "it (pasted text often carries them)", match.span()))
    if "\n" in stripped:
        at = text.index("\n")
        issues.append(Issue("newline", "warning", "line break inside the caption: the trainer "
                            "reads the whole file as one caption; join the lines",
                            (at, at + 1)))
    if rules.trigger:
        span = _phrase_span(text, rules.trigger)
        if span is None:  # where it goes: the start (or anywhere: no one place)
            issues.append(Issue("trigger_missing", "error",
                                f"trigger {rules.trigger} missing: add it"
                                + (" at the start" if rules.trigger_position == "start" else ""),
                                (0, 0) if rules.trigger_position == "start" else None))
        elif rules.trigger_position == "start" and text[:span[0]].strip(" ,.;:"):
            issues.append(Issue("trigger_misplaced", "warning",
                                f"trigger {rules.trigger} should come first", span))
    words = WORD.findall(stripped)
    if len(words) < rules.min_words:
        issues.append(Issue("too_short", "warning", f"{len(words)} words; this dataset wants at "
                            f"least {rules.min_words}: say what the clip shows"))
    if len(words) > rules.max_words:
        issues.append(Issue("too_long", "warning", f"{len(words)} words; at most "
                            f"{rules.max_words} (the text encoder truncates long prompts)"))
    for banned in rules.banned_words:
        span = _phrase_span(text, banned)
        if span:
            issues.append(Issue("banned", "warning", f"banned word '{banned}': this dataset's "
                                "style avoids it", span))
    if rules.negative_prompt:
        for phrase in (p.strip() for p in rules.negative_prompt.split(",")):
            span = _phrase_span(text, phrase) if phrase else None
            if span:
                issues.append(Issue("negative", "warning", f"'{phrase}' is in the negative "
                                    "prompt: captioning it teaches the opposite", span))
    if duplicate_of is not None:
        issues.append(Issue("duplicate", "warning", f"identical to clip {duplicate_of}'s caption: "
                            "describe what differs"))
    if rules.tag_groups is not None:
        issues += tag_issues(text, rules.tag_groups)
    return issues


REQUIRED_GROUPS = ("genre", "mood")  # a tag prompt says at least what it is and how it feels
LONGEST_TAG = 6  # words: longer is a sentence, not a tag


def tag_issues(text: str, groups: dict[str, str]) -> list[Issue]:
    """A tag prompt's issues: sentences for tags, a tag twice, no genre or no mood tag of the
    taxonomy (lorad.captions.presets)."""
    issues = []
    seen: set[str] = set()
    present = set()
    at = 0
    for raw in text.split(","):
        tag = " ".join(raw.split()).lower()
        start = at + len(raw) - len(raw.lstrip())
        span = (start, start + len(raw.strip()))
        at += len(raw) + 1
        if not tag:
            continue
        if len(tag.split()) > LONGEST_TAG:
            issues.append(Issue("tag_sentence", "warning", f"'{raw.strip()[:40]}' is a sentence: "
                                "a tag prompt is short comma-separated tags", span))
        if tag in seen:
            issues.append(Issue("tag_twice", "warning", f"'{raw.strip()}' is there twice", span))
        seen.add(tag)
        if tag in groups:
            present.add(groups[tag])
    for group in REQUIRED_GROUPS:
        if group not in present:
            known = [t for t, g in groups.items() if g == group][:3]
            issues.append(Issue(f"no_{group}", "warning", f"no {group} tag (the taxonomy's: "
                                f"{', '.join(known)}...): `lorad presets` lists them, t on the "
                                "Captions screen tags from one"))
    return issues


def _taxonomy() -> dict[str, str]:
    """Every tag of the style presets (built in, and the workspace config's) -> its group."""
    from lorad.captions import presets
    from lorad.core import plugins

    config = plugins.current_config()
    try:
        known = presets.load(getattr(config, "presets", None) or {})
    except presets.PresetError:
        known = presets.load()
    return {t.lower(): g for p in known.values() for g, tags in p.groups.items() for t in tags}


def first_problem(issues: list[Issue]) -> Issue | None:
    """The issue to put the editor's cursor on: the first error in the text that has a place,
    else the first such warning (a duplicate or a length has no one place)."""
    placed = [i for i in issues if i.span is not None]
    return min(placed, key=lambda i: (i.severity != "error", i.span), default=None)


def lint_dataset(texts: dict[int, str], rules: Rules) -> DatasetLint:
    """Lint every caption of a dataset, including identical captions across clips."""
    first_with: dict[str, int] = {}
    for clip_id in sorted(texts):
        key = " ".join(texts[clip_id].split()).lower()
        if key:
            first_with.setdefault(key, clip_id)
    result = DatasetLint()
    for clip_id in sorted(texts):
        key = " ".join(texts[clip_id].split()).lower()
        dup = first_with.get(key)
        issues = lint(texts[clip_id], rules,
                      duplicate_of=dup if dup not in (None, clip_id) else None)
        if issues:
            result.by_clip[clip_id] = issues
    return result
