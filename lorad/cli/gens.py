"""`lorad generations` (`gens`) list|show|cancel|retake."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, opened, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("generations", aliases=["gens"],
                       help="list, show, cancel or retake generations")
    p.set_defaults(func=run, action="list")
    gsub = p.add_subparsers(dest="action", metavar="ACTION")
    for parser in (p, gsub.add_parser("list")):  # `lorad gens` lists, like `lorad gens list`
        parser.add_argument("--sweep", help="only this sweep")
        parser.add_argument("--status", action="append", help="only these (repeatable)")
        parser.add_argument("--json", action="store_true")
    a = gsub.add_parser("show", help="one generation with its parameters and status history")
    a.add_argument("id", type=int)
    a = gsub.add_parser("cancel", help="cancel it (on fal too, if submitted)")
    a.add_argument("id", type=int)
    a = gsub.add_parser("resubmit", help="send again one whose submit answer was lost (status "
                                         "unknown): check the service's dashboard first")
    a.add_argument("id", type=int)
    a = gsub.add_parser("forget", help="give up one whose submit answer was lost, not sending "
                                       "it again")
    a.add_argument("id", type=int)
    a = gsub.add_parser("retake", help="the same parameters with a new seed (or --scale)")
    a.add_argument("id", type=int)
    a.add_argument("--seed", type=int)
    a.add_argument("--scale", type=float)


def run(args: argparse.Namespace) -> int:
    from lorad.core import daemon
    from lorad.generation import generations

    with opened(args) as (ws, conn):
        if args.action in (None, "list"):
            return list_generations(args, conn)
        g = generations.get(conn, args.id)
        if args.action == "show":
            print_json({**g.__dict__, "events": generations.events(conn, g.id)})
        elif args.action == "cancel":
            print(f"generation {g.id}: {generations.cancel(conn, g.id)}")
        elif args.action == "resubmit":
            generations.resubmit(conn, g.id)
            daemon.nudge(ws)
            print(f"generation {g.id} queued again (as you asked: it may now exist twice on "
                  f"{g.service})")
        elif args.action == "forget":
            generations.forget(conn, g.id)
            print(f"generation {g.id}: not sent again")
        else:  # retake
            new_id = generations.retake(conn, g.id, seed=args.seed, scale=args.scale)
            daemon.nudge(ws)
            print(f"generation {new_id} queued, a retake of {g.id}")
    return EXIT_OK


def list_generations(args, conn) -> int:
    from lorad.core import fmt
    from lorad.generation import generations

    listed = generations.list_all(conn, sweep_id=args.sweep)
    if args.status:
        listed = [g for g in listed if g.status in args.status]
    if args.json:
        print_json([g.__dict__ for g in listed])
        return EXIT_OK
    rows = [[str(g.id), g.status, (g.sweep_id or "-"), f"{g.scale or '-'}", str(g.seed),
             f"${g.cost or 0:.2f}", ("ok" if g.checks.get("ok") else
                                     "; ".join(g.checks.get("problems", [])) or "-"),
             (g.error or g.prompt or "")[:50]] for g in listed]
    print(fmt.table(["ID", "STATUS", "SWEEP", "SCALE", "SEED", "COST", "CHECKS",
                     "PROMPT / ERROR"], rows) if rows else "no generations")
    print(f"spent on generations: ${generations.spent(conn):.2f}")
    lost = generations.unknown_outcomes(conn)
    if lost:
        waiting = sum(1 for g in listed if g.status == generations.UNKNOWN)
        print(f"{lost} submit(s) had their answer lost and were not sent again"
              + (f"; {waiting} wait for you: `lorad gens resubmit ID` or `lorad gens forget ID`"
                 if waiting else ""))
    return EXIT_OK
