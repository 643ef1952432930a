"""`lorad presets`: the style presets audio tag prompts are built from (built in, and
`[presets.NAME]` in lorad.toml)."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, print_json, workspace


def add_parser(sub) -> None:
    p = sub.add_parser("presets", help="style presets for audio tag prompts (a taxonomy: core, "
                                       "seasonal, thematic, instrumental, vocal)")
    p.add_argument("--json", action="store_true", help="output as JSON")
    p.set_defaults(func=run)


def known(args) -> dict:
    from lorad.captions import presets
    from lorad.core.workspace import WorkspaceError

    try:
        ws = workspace(args)
        return presets.load(ws.config().presets, f"{ws.config_path}: ")
    except WorkspaceError:
        return presets.load()


def run(args: argparse.Namespace) -> int:
    found = known(args)
    if args.json:
        print_json({name: {"category": p.category, "extends": p.extends, "tags": p.tags,
                           "groups": {g: list(t) for g, t in p.groups.items() if t},
                           "description": p.description} for name, p in found.items()})
        return EXIT_OK
    for name, p in sorted(found.items(), key=lambda kv: (kv[1].category, kv[0])):
        parent = f" (extends {p.extends})" if p.extends else ""
        print(f"{name:20} {p.category:12}{parent}\n    {', '.join(p.tags)}")
    return EXIT_OK
