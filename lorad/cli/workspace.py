"""`lorad init`: create a workspace."""

from __future__ import annotations

import argparse
from pathlib import Path

from lorad.cli.common import EXIT_OK


def add_parser(sub) -> None:
    p = sub.add_parser("init", help="create a workspace (config, database, media folders)")
    p.add_argument("dir", nargs="?", default=".", help="folder to create (default: here)")
    p.add_argument("--name", help="name shown in the TUI header (default: the folder's name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.core import workspace

    ws = workspace.init(Path(args.dir), name=args.name)
    print(f"workspace ready at {ws.root}")
    print(f"  config:   {ws.config_path}")
    print(f"  database: {ws.db_path}")
    print("next: `lorad` in that folder opens the TUI (and starts the daemon)")
    return EXIT_OK
