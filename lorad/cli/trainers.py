"""`lorad trainers`: the trainers runs can use."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("trainers", help="the trainers a run can use")
    p.add_argument("--json", action="store_true", help="output as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.training import trainers

    listed = [{"name": name, "title": t.title, "dataset_format": t.dataset_format,
               "train_stage": t.train_stage, "secrets": list(t.secrets)}
              for name, t in trainers.TRAINERS.items()]
    if args.json:
        print_json(listed)
        return EXIT_OK
    for t in listed:
        print(f"{t['name']:16} {t['title']}  (reads {t['dataset_format'] or 'any folder'})")
    return EXIT_OK
