"""`lorad rate set|rank`: ratings of generations, and checkpoints ranked by them."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, opened, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("rate", help="rate a generation, or rank checkpoints by ratings")
    p.set_defaults(func=run, action="rank")
    rsub = p.add_subparsers(dest="action", metavar="ACTION")
    a = rsub.add_parser("rank", help="checkpoints (and LoRAs added by URL) by their "
                                     "generations' ratings")
    a.add_argument("--by", metavar="METRIC",
                   help="rank by a score the generations printed (a pod command's JSON line), "
                        "higher first; -METRIC: lower first")
    a.add_argument("--json", action="store_true")
    a = rsub.add_parser("set", help="rate one generation")
    a.add_argument("generation", type=int)
    a.add_argument("--stars", type=int, choices=range(1, 6))
    # ratings.VERDICTS (not imported here: building the parser stays fast; a test compares)
    a.add_argument("--verdict", choices=["approve", "needs_review", "retake", "reject"],
                   help="reject and retake count against the checkpoint's rank")
    a.add_argument("--tag", action="append")
    a.add_argument("--note")


def run(args: argparse.Namespace) -> int:
    from lorad.generation import ratings

    with opened(args) as (_ws, conn):
        if args.action in (None, "rank"):
            by = getattr(args, "by", None)
            ranked = {"checkpoints": ratings.rank_checkpoints(conn, by=by),
                      "loras added by URL": ratings.by_metric(ratings.rank_loras(conn), by)}
        else:
            r = ratings.rate(conn, args.generation, stars=args.stars, verdict=args.verdict,
                             tags=args.tag, note=args.note)
            print(f"generation {args.generation}: {r.stars or '-'} stars, {r.verdict or '-'}"
                  + (f", tags {', '.join(r.tags)}" if r.tags else ""))
            return EXIT_OK
    if getattr(args, "json", False):
        print_json({k: [r.__dict__ for r in v] for k, v in ranked.items()})
        return EXIT_OK
    for title, ranks in ranked.items():
        if not ranks:
            continue
        print(f"{title} (score: lower bound of the share of good generations)")
        for r in ranks:
            stars = f"  stars {r.mean_stars:.1f}" if r.mean_stars else ""
            scores = "".join(f"  {k} {v:.3g}" for k, v in sorted(r.metrics.items()))
            print(f"  {r.name:36} score {r.score:.2f}  good {r.good}/{r.rated}{stars}{scores}")
    if not any(ranked.values()):
        print("nothing rated or scored yet: rate generations with `lorad rate set ID` or on the "
              "Generations screen (4)")
    return EXIT_OK
