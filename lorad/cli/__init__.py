"""The `lorad` command: one module per noun (`lorad dataset ...` lives in `dataset.py`), the
helpers they share in `common.py`, and `commands.py`, which builds the parser from them all.

Heavy modules are imported inside the commands that use them, so `lorad --help` stays fast.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """The console entry point (`lorad = lorad.cli:main`)."""
    from lorad.cli.commands import run

    return run(argv)
