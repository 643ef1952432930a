"""`lorad trainers`: the trainers runs can use, built in and declared in lorad.toml."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_ERROR, EXIT_OK, print_json, workspace
from lorad.core.workspace import WorkspaceError


def add_parser(sub) -> None:
    p = sub.add_parser("trainers", help="the trainers a run can use (built in, and declared "
                                        "under [trainers.NAME] in lorad.toml)")
    p.add_argument("--json", action="store_true", help="output as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.training import trainers

    try:
        workspace(args)  # its declared trainers
    except WorkspaceError:
        pass  # outside a workspace: the built-in ones
    declared = trainers.TRAINERS.registered()
    listed = []
    for name, t in trainers.TRAINERS.items():
        item = {"name": name, "title": t.title, "kind": "built-in" if name in declared
                else "declared", "dataset_format": t.dataset_format,
                "train_stage": t.train_stage, "secrets": list(t.secrets),
                "gpu_memory_gb": trainers.gpu_memory_gb(t, {})}
        describe = getattr(t, "describe", None)
        if describe is not None:
            item.update(describe())
        listed.append(item)
    broken = [{"name": name, "error": why}
              for name, why in sorted(trainers.TRAINERS.problems().items())]
    if args.json:
        print_json(listed + [{**b, "kind": "broken"} for b in broken])
        return EXIT_ERROR if broken else EXIT_OK
    for t in listed:
        where = f", declared in {t['declared_in']}" if t.get("declared_in") else ""
        print(f"{t['name']:16} {t['title']}  (reads {t['dataset_format'] or 'any folder'}"
              f"{where})")
    for b in broken:
        print(f"{b['name']:16} cannot be used: {b['error']}")
    return EXIT_ERROR if broken else EXIT_OK
