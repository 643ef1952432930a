"""What the benchmarks share: a run in a temporary folder whose report is printed, exiting 1
when the report lists problems (a benchmark whose work went wrong measured nothing)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

PROBLEMS = "PROBLEMS:"


def problem_lines(problems: list[str], limit: int | None = None) -> list[str]:
    return [PROBLEMS, *(f"  {p}" for p in problems[:limit])] if problems else []


def run_in_tempdir(run: Callable[[argparse.Namespace, Path], list[str]],
                   args: argparse.Namespace, prefix: str) -> int:
    """`run(args, work)` returns the report's lines; `args.keep` keeps the folder."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        lines = run(args, work)
        print("\n".join(lines))
        return 1 if PROBLEMS in lines else 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
