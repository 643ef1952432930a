"""Style presets for audio tag prompts, as data: a taxonomy of categories (core, seasonal,
thematic, instrumental, vocal), each preset a set of tag groups (genre, mood, instruments,
tempo, production, atmosphere, vocal_type), one preset extending another (`extends`).

Built in: a small lofi taxonomy (seed 002's "Lofi LoRA Training Pipeline"); yours go in
`[presets.NAME]` of lorad.toml (a preset of a built-in's name replaces it):

    [presets.lofi-rain]
    extends = "lofi-core"
    category = "thematic"
    atmosphere = ["rain", "window", "cozy"]

A preset's tags are its groups' tags in the order of GROUPS, its parent's first; applying one
to a track puts those tags in front of the track's own (each once) and records its category,
which `lorad dataset show` counts to say when a style is under-represented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lorad.core.errors import LoradError

CATEGORIES = ("core", "seasonal", "thematic", "instrumental", "vocal")
GROUPS = ("genre", "mood", "instruments", "tempo", "production", "atmosphere", "vocal_type")
KEYS = {"extends", "category", "description", *GROUPS}
UNDER_SHARE = 0.1  # a category with tracks, but fewer than this share of them: said


class PresetError(LoradError):
    pass


@dataclass(frozen=True)
class Preset:
    name: str
    category: str
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""
    extends: str | None = None

    @property
    def tags(self) -> list[str]:
        return [t for g in GROUPS for t in self.groups.get(g, ())]


def _p(name, category, description="", extends=None, **groups) -> dict[str, Any]:
    return {"name": name, "category": category, "description": description,
            "extends": extends, **groups}


BUILTIN_TABLES = [
    _p("lofi-core", "core", "the lofi hip hop core every other preset starts from",
       genre=["lofi hip hop", "chillhop"], mood=["mellow", "relaxed"],
       instruments=["dusty drums", "warm keys"], tempo=["75 bpm"],
       production=["vinyl crackle", "tape saturation", "low-pass filter"]),
    _p("lofi-jazz", "core", extends="lofi-core", genre=["jazzhop"],
       instruments=["rhodes piano", "upright bass", "brushed snare"]),
    _p("lofi-winter", "seasonal", extends="lofi-core", mood=["cozy", "nostalgic"],
       atmosphere=["snowfall", "fireplace"]),
    _p("lofi-summer", "seasonal", extends="lofi-core", mood=["warm", "carefree"],
       atmosphere=["beach", "sunset"]),
    _p("lofi-rain", "thematic", extends="lofi-core", mood=["melancholic"],
       atmosphere=["rain", "window", "night"]),
    _p("lofi-study", "thematic", extends="lofi-core", mood=["focused", "calm"],
       atmosphere=["library", "late night"]),
    _p("lofi-piano", "instrumental", extends="lofi-core", instruments=["solo piano"],
       vocal_type=["instrumental"]),
    _p("lofi-guitar", "instrumental", extends="lofi-core",
       instruments=["nylon guitar", "soft pads"], vocal_type=["instrumental"]),
    _p("lofi-vocal-chops", "vocal", extends="lofi-core", vocal_type=["vocal chops"]),
    _p("lofi-female-vocal", "vocal", extends="lofi-core",
       vocal_type=["female vocal", "breathy"]),
]


def _check(name: str, table: dict[str, Any], where: str) -> None:
    unknown = sorted(set(table) - KEYS - {"name"})
    if unknown:
        raise PresetError(f"{where}presets.{name}: unknown key {unknown[0]!r} (known: "
                          f"{', '.join(sorted(KEYS))})")
    category = table.get("category")
    if category is not None and category not in CATEGORIES:
        raise PresetError(f"{where}presets.{name}.category: one of {', '.join(CATEGORIES)}, "
                          f"got {category!r}")
    for group in GROUPS:
        value = table.get(group, [])
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise PresetError(f"{where}presets.{name}.{group}: a list of tags")


def load(declared: dict[str, dict[str, Any]] | None = None, where: str = ""
         ) -> dict[str, Preset]:
    """The built-in presets and the declared ones, each resolved through its `extends`."""
    tables = {t["name"]: t for t in BUILTIN_TABLES}
    for name, table in (declared or {}).items():
        _check(name, table, where)
        tables[name] = {"name": name, **table}
    resolved: dict[str, Preset] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> Preset:
        if name in resolved:
            return resolved[name]
        if name in seen:
            raise PresetError(f"{where}presets: {' -> '.join((*seen, name))} extends itself")
        if name not in tables:
            raise PresetError(f"{where}presets.{seen[-1]}.extends: no preset {name!r}" if seen
                              else f"no preset {name!r} (`lorad presets` lists them)")
        table = tables[name]
        parent = resolve(table["extends"], (*seen, name)) if table.get("extends") else None
        groups: dict[str, tuple[str, ...]] = {}
        for group in GROUPS:
            inherited = parent.groups.get(group, ()) if parent else ()
            own = tuple(table.get(group, ()))
            groups[group] = tuple(dict.fromkeys((*inherited, *own)))
        category = table.get("category") or (parent.category if parent else "core")
        resolved[name] = Preset(name, category, groups, table.get("description", ""),
                                table.get("extends"))
        return resolved[name]

    for name in tables:
        resolve(name)
    return resolved


def apply(caption: str, preset: Preset) -> str:
    """The preset's tags first, then the track's own tags not among them (each once)."""
    own = [t.strip() for t in caption.split(",") if t.strip()]
    seen = {t.lower() for t in preset.tags}
    return ", ".join([*preset.tags, *(t for t in own if t.lower() not in seen)])


def balance(counts: dict[str, int]) -> list[str]:
    """Warnings on the style distribution: a category with tracks, under UNDER_SHARE of them;
    tracks with no preset."""
    total = sum(counts.values())
    said = []
    if not total:
        return said
    for category in CATEGORIES:
        n = counts.get(category, 0)
        if 0 < n < total * UNDER_SHARE:
            said.append(f"{category}: {n} of {total} tracks ({n / total:.0%}) is under-"
                        f"represented (under {UNDER_SHARE:.0%}): add {category} tracks, or "
                        "drop the few")
    if counts.get("none"):
        said.append(f"{counts['none']} track(s) have no style preset: `lorad captions preset`")
    return said


def all_tags(known: dict[str, Preset]) -> list[str]:
    """Every tag of the taxonomy, once (for completing what is typed)."""
    return list(dict.fromkeys(t for p in known.values() for t in p.tags))
