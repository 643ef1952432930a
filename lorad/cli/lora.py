"""`lorad lora list|add|show`: the LoRA registry."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, opened, print_json, warn


def add_parser(sub) -> None:
    p = sub.add_parser("lora", help="the LoRA registry: list, add by URL, show with lineage")
    p.set_defaults(func=run, action="list", json=False)
    lsub = p.add_subparsers(dest="action", metavar="ACTION")
    a = lsub.add_parser("list")
    a.add_argument("--json", action="store_true")
    a = lsub.add_parser("add", help="register a LoRA by URL")
    a.add_argument("name")
    a.add_argument("url")
    a.add_argument("--trigger")
    a.add_argument("--base-model")
    a.add_argument("--expert", choices=["high", "low", "both"], help="Wan 2.2 expert")
    a = lsub.add_parser("show")
    a.add_argument("name")


def run(args: argparse.Namespace) -> int:
    from lorad.generation import loras

    with opened(args) as (_ws, conn):
        if args.action == "add":
            lo = loras.add(conn, args.name, args.url, trigger=args.trigger,
                           base_model=args.base_model, expert=args.expert)
            print(f"LoRA {lo.name} registered")
        elif args.action == "show":
            from lorad.training import lineage

            lo = loras.get(conn, args.name)
            made = lineage.of_checkpoint(conn, lo.checkpoint_id) if lo.checkpoint_id else None
            print_json({**lo.__dict__, "lineage": made.as_dict() if made else None})
        else:
            listed = loras.list_all(conn)
            if args.json:
                print_json([lo.__dict__ for lo in listed])
            from lorad.core import fmt

            for lo in [] if args.json else listed:
                print(fmt.printable(f"{lo.name:24} {lo.expert or '-':5} {lo.trigger or '-':12} "
                                    f"{lo.url}"))
            if not listed and not args.json:
                print("no LoRAs: `lorad publish` one, or `lorad lora add NAME URL`")
    return EXIT_OK


def warn_private(conn, names: list[str]) -> None:
    """Before spending on a LoRA fal may not be able to download."""
    from lorad.generation import loras

    for name in dict.fromkeys(names):
        warning = loras.get(conn, name).warning
        if warning:
            warn(warning)
