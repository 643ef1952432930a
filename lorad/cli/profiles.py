"""`lorad profiles`: the model profiles clips are made for."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, print_json, workspace


def add_parser(sub) -> None:
    p = sub.add_parser("profiles", help="list model profiles (built-in and from lorad.toml)")
    p.add_argument("--json", action="store_true", help="output as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from lorad.core.config import load
    from lorad.core.workspace import WorkspaceError
    from lorad.media import profiles

    try:
        config = load(workspace(args).config_path)
    except WorkspaceError:  # outside a workspace the built-ins still list
        config = None
    known = profiles.all_profiles(config)
    if args.json:
        print_json({name: asdict(p) for name, p in known.items()})
        return EXIT_OK
    for name, p in known.items():
        print(f"{name}\n    {p.summary()}\n    {p.description}")
    return EXIT_OK
