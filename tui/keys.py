"""Remappable keys: every binding has an id named after its action (`retake`, `play`,
`verdict.approve`, `screen.clips`), the same on every screen, and `[tui.keys]` in lorad.toml
maps ids to keys, as posting and harlequin do:

    [tui.keys]
    retake = "e"            # r no longer retakes; e does, on every screen that retakes
    "verdict.approve" = "A"
"""

from __future__ import annotations

import re
from dataclasses import replace

from textual.binding import Binding

_ARGS = re.compile(r"^(\w+)\((.*)\)$")


def binding_id(action: str) -> str:
    """`retake` -> retake, `verdict('approve')` -> verdict.approve, `switch_mode('clips')` ->
    screen.clips, `move(0, 1)` -> move.0.1."""
    m = _ARGS.match(action)
    if not m:
        return action
    name, args = m.groups()
    parts = [a.strip().strip("'\"") for a in args.split(",") if a.strip()]
    if name == "switch_mode":
        name = "screen"
    return ".".join([name, *parts]).replace(" ", "")


def keyed(bindings: list[Binding]) -> list[Binding]:
    """The bindings, each with its id (for `[tui.keys]`)."""
    return [b if b.id else replace(b, id=binding_id(b.action)) for b in bindings]


def keymap(settings: dict) -> tuple[dict[str, str], list[str]]:
    """`[tui.keys]` as Textual's keymap, and the problems with it (each a sentence)."""
    problems, out = [], {}
    for binding, keys in settings.items():
        if not isinstance(keys, str) or not keys.strip():
            problems.append(f"tui.keys.{binding} must be a key name like \"e\" or \"ctrl+e\"")
            continue
        out[str(binding)] = keys.strip()
    return out, problems
