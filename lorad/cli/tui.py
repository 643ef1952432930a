"""`lorad tui` (and plain `lorad` inside a workspace): open the terminal UI."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, workspace


def add_parser(sub) -> None:
    p = sub.add_parser("tui", help="open the terminal UI (starts the daemon if needed)")
    p.add_argument("--no-daemon", action="store_true", help="do not start the daemon")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.core import daemon

    ws = workspace(args)
    ws.connect().close()  # bring the schema up to date before any screen reads it
    if not args.no_daemon:
        daemon.ensure_running(ws)
    from tui.app import LoradApp

    LoradApp(ws).run()
    return EXIT_OK
