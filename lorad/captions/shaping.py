"""Post-processing of drafted captions, as data: the openings models like to start with are
stripped, the trigger goes where the dataset's rules want it, and a caption longer than the
word limit is cut. Used on each draft as it arrives (lorad.generation.drafting) and in bulk,
with a preview, on drafts already written (`lorad captions bulk DATASET shape`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lorad.media import datasets

# Openings captioning models like (finetrainers constants.py COMMON_LLM_START_PHRASES, the same
# list in LTX-Video-Trainer scripts/process_captions.py; Open-Sora datautil.py LLAVA_PREFIX).
STRIP_PHRASES = ["In the video,", "In this video,", "In this video clip,", "In the clip,",
                 "In the image,", "In this image,", "Caption:", "The video is", "The image is",
                 "The track is", "This track is", "The audio is", "This song is", "Tags:",
                 *(f"{subject} {verb}" for subject in ("This video", "The video", "This clip",
                                                       "The clip", "The animation", "This image",
                                                       "The image", "This picture", "The picture")
                   for verb in ("shows", "depicts", "features", "captures", "highlights",
                                "introduces", "presents"))]


@dataclass(frozen=True)
class Rules:
    """What a draft must look like: the dataset's caption rules and the workspace's
    post-processing settings ([drafts] in lorad.toml)."""

    trigger: str | None = None
    trigger_position: str = "start"
    template: str | None = None
    min_words: int | None = None
    max_words: int | None = None
    banned: tuple[str, ...] = ()
    strip_phrases: tuple[str, ...] = tuple(STRIP_PHRASES)

    @classmethod
    def of(cls, d: datasets.Dataset, settings: dict[str, Any], template: str | None = None
           ) -> Rules:
        caption = d.settings.get("caption_rules", {})
        return cls(d.trigger, caption.get("trigger_position", "start"),
                   template or caption.get("template") or None, caption.get("min_words"),
                   caption.get("max_words"), tuple(caption.get("banned_words", [])),
                   tuple(settings.get("strip_phrases") or STRIP_PHRASES))

    def as_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "trigger_position": self.trigger_position,
                "template": self.template, "min_words": self.min_words,
                "max_words": self.max_words, "banned": list(self.banned),
                "strip_phrases": list(self.strip_phrases)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rules:
        return cls(data.get("trigger"), data.get("trigger_position", "start"),
                   data.get("template"), data.get("min_words"), data.get("max_words"),
                   tuple(data.get("banned", [])),
                   tuple(data.get("strip_phrases", STRIP_PHRASES)))


@dataclass
class Shaped:
    text: str
    changes: list[str] = field(default_factory=list)  # what the rules did, in words


def shape(raw: str, rules: Rules) -> Shaped:
    """The model's answer as a caption: one line, its preamble stripped, the trigger where the
    rules want it, at most max_words words (cut at the last comma or full stop within)."""
    changes: list[str] = []
    text = " ".join(raw.replace("\r", " ").split()).strip().strip('"').strip()
    for phrase in sorted(rules.strip_phrases, key=len, reverse=True):
        if text.lower().startswith(phrase.lower()):
            text = text[len(phrase):].lstrip(" ,:;")
            text = text[:1].upper() + text[1:]
            changes.append(f"removed the opening {phrase!r}")
            break
    trigger = rules.trigger
    if trigger:
        present = re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", text)
        if rules.trigger_position == "start" and not text.startswith(trigger):
            if present:
                text = (text[:present.start()] + text[present.end():]).strip(" ,")
                text = re.sub(r"\s+,", ",", re.sub(r"\s{2,}", " ", text))
                text = re.sub(r",(\s*,)+", ",", text)
            text = f"{trigger}, {text}" if text else trigger
            changes.append(f"put {trigger} first")
        elif not present:
            text = f"{trigger}, {text}" if text else trigger
            changes.append(f"added {trigger}")
    if rules.max_words and len(text.split()) > rules.max_words:
        kept = " ".join(text.split()[:rules.max_words])
        cut = max(kept.rfind(","), kept.rfind("."))
        if cut > len(kept) // 2:
            kept = kept[:cut]
        text = kept.rstrip(" ,;")
        changes.append(f"cut to {len(text.split())} words (max {rules.max_words})")
    return Shaped(text, changes)


