"""What every CLI noun module shares: exit codes, the CLI's error, the workspace and its
connection, JSON output."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lorad.core.errors import LoradError

if TYPE_CHECKING:
    from lorad.core.workspace import Workspace

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(LoradError):
    """A command cannot do what it was asked; the message says why and what to type instead."""


def workspace(args: argparse.Namespace) -> Workspace:
    from lorad.core.config import ConfigError
    from lorad.core.workspace import find

    ws = find(args.workspace)
    try:
        ws.config()  # trainers declared in it are known by name from here on
    except ConfigError:
        pass  # said by the command that reads it (`lorad doctor` reports it)
    return ws


@contextmanager
def opened(args: argparse.Namespace) -> Iterator[tuple[Workspace, sqlite3.Connection]]:
    """The workspace named by the arguments and a connection to its store, closed after."""
    ws = workspace(args)
    conn = ws.connect()
    try:
        yield ws, conn
    finally:
        conn.close()


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def warn(message: str) -> None:
    print(f"lorad: warning: {message}", file=sys.stderr)


def key_values(items: list[str] | None, option: str) -> dict[str, Any]:
    """`--set k=v` / `--param k=v` pairs; a value that parses as JSON is taken as such."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{option} {item!r}: use name=value")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
