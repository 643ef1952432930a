"""Builds the `lorad` parser from every noun module and runs the command asked for."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from lorad.cli import (
    captions,
    chain,
    clips,
    daemon,
    dataset,
    doctor,
    gen,
    gens,
    jobs,
    lora,
    pod,
    presets,
    profiles,
    publish,
    rate,
    sweep,
    train,
    trainers,
    tui,
    workspace,
)
from lorad.cli.common import EXIT_ERROR, EXIT_OK

# in the order `lorad --help` lists them
NOUNS = [workspace, daemon, doctor, jobs, profiles, presets, dataset, clips, captions, pod,
         trainers, train, lora, gen, gens, sweep, chain, rate, publish, tui]


def build_parser() -> argparse.ArgumentParser:
    from lorad import __version__

    parser = argparse.ArgumentParser(
        prog="lorad",
        description="Train LoRAs for video and image diffusion models: clips, captions, GPU "
                    "pods, training, publishing and generations in one place. With no command "
                    "inside a workspace, opens the TUI.",
        epilog="Secrets come from the environment only: FAL_KEY, RUNPOD_API_KEY, HF_TOKEN.",
    )
    parser.add_argument("--version", action="version", version=f"lorad {__version__}")
    parser.add_argument("-w", "--workspace", metavar="DIR",
                        help="workspace folder (default: $LORAD_WORKSPACE, or the nearest folder "
                             "above the current one holding lorad.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for noun in NOUNS:
        noun.add_parser(sub)
    return parser


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        from lorad.core.workspace import WorkspaceError, find

        try:
            find(args.workspace)
        except WorkspaceError:
            parser.print_help()
            return EXIT_OK
        args.no_daemon = False
        func = tui.run
    try:
        return func(args)
    except KeyboardInterrupt:
        return EXIT_ERROR
    except BrokenPipeError:  # `lorad profiles | head`: the reader had enough; nothing to say
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - one clear line for the user, details in the log
        return report(exc, args)


def report(exc: Exception, args: argparse.Namespace | None = None) -> int:
    from lorad.core import store
    from lorad.core.errors import LoradError

    if store.is_damage(exc):  # a page found damaged after the store opened
        from lorad.core.workspace import WorkspaceError, find

        try:
            where = find(getattr(args, "workspace", None)).db_path
        except WorkspaceError:
            where = Path("lorad.db")
        exc = store.damaged(where, str(exc))
    if isinstance(exc, LoradError):
        print(f"lorad: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    log_path = _log_traceback()
    print(f"lorad: error: {exc.__class__.__name__}: {exc} (traceback in {log_path})",
          file=sys.stderr)
    return EXIT_ERROR


def _log_traceback() -> Path:
    import traceback

    from platformdirs import user_log_dir

    from lorad.core.logs import redact

    path = Path(user_log_dir("lorad")) / "cli.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(redact(traceback.format_exc()) + "\n")
    return path
