"""`lorad chain run|list|show|retake|cancel`: image-to-video shot chains from a TOML shot list
(see lorad.generation.chains), priced before anything is submitted."""

from __future__ import annotations

import argparse
from pathlib import Path

from lorad.cli.common import EXIT_ERROR, EXIT_OK, CliError, opened, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("chain", help="image-to-video shot chains from a TOML shot list")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = csub.add_parser("run", help="price a shot list, and with --yes run it")
    a.add_argument("file", help="the shot list (TOML; see docs/chains.md)")
    a.add_argument("--yes", action="store_true", help="submit (default: show the plan)")
    a.add_argument("--budget", type=float, default=25.0, help="refuse above this ($, default 25)")
    a.add_argument("--json", action="store_true", help="the plan as JSON")
    a = csub.add_parser("list", help="every chain with its state")
    a.add_argument("--json", action="store_true", help="output as JSON")
    a = csub.add_parser("show", help="one chain, shot by shot")
    a.add_argument("name")
    a.add_argument("--json", action="store_true", help="output as JSON")
    a = csub.add_parser("retake", help="run shot N and every shot after it again (priced first)")
    a.add_argument("name")
    a.add_argument("shot", type=int, help="the shot to run again, from 1")
    a.add_argument("--seed", type=int, help="its seed (default: a new one)")
    a.add_argument("--yes", action="store_true", help="submit (default: show the price)")
    a.add_argument("--budget", type=float, default=25.0, help="refuse above this ($, default 25)")
    a = csub.add_parser("cancel", help="stop a chain, and its shot on the service")
    a.add_argument("name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    actions = {"run": run_file, "list": list_chains, "show": show, "retake": retake,
               "cancel": cancel}
    return actions[args.action](args)


def _plan_table(p) -> None:
    from lorad.core import fmt

    rows = [[str(s.index + 1), fmt.printable(s.prompt)[:36], f"{s.target_frames}->{s.frames}",
             str(s.seed), fmt.printable(s.start if len(s.start) < 24 else
                                        "..." + s.start[-21:]), f"${s.cost:.2f}"]
            for s in p.shots]
    print(fmt.table(["SHOT", "PROMPT", "FRAMES", "SEED", "STARTS FROM", "PRICE"], rows))


def _priced(p, endpoint: str, args: argparse.Namespace, total: str = "") -> bool:
    """Show the shots and their price; True when they are to be sent (--yes, in budget)."""
    from lorad.generation.endpoints import price_caveat

    _plan_table(p)
    print(f"about ${p.cost:.2f}{total}{price_caveat(endpoint)}")
    if not args.yes:
        print("add --yes to submit")
        return False
    if p.cost > args.budget:
        raise CliError(f"about ${p.cost:.2f} is above the budget of ${args.budget:.2f}: raise "
                       "--budget if you mean it")
    return True


def run_file(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from lorad.core import daemon
    from lorad.generation import chains

    with opened(args) as (ws, conn):
        spec = chains.parse(Path(args.file))
        p = chains.plan(conn, spec)
        if args.json and not args.yes:
            print_json({"name": spec.name, "cost": p.cost, "shots": [asdict(s) for s in p.shots]})
            return EXIT_OK
        how = ("each from the last frame of the one before" if spec.chain_last_frame
               else "each from its start image")
        print(f"chain {spec.name}: {len(p.shots)} shot(s) on {spec.endpoint}, {how}")
        if not _priced(p, spec.endpoint, args, " in all"):
            return EXIT_OK
        folder = ws.downloads_dir() / "chains" / spec.name
        chains.create(conn, p, folder)
        daemon.nudge(ws)
        if not daemon.status(ws).running:
            print("the daemon is not running; start it with `lorad daemon start`")
    print(f"submitted; `lorad chain show {spec.name}` follows it")
    return EXIT_OK


def list_chains(args: argparse.Namespace) -> int:
    from lorad.core import fmt
    from lorad.generation import chains

    with opened(args) as (_ws, conn):
        listed = chains.list_all(conn)
        if args.json:
            print_json([{"name": c.name, "status": c.status, "shots": c.shot_count,
                         "done": sum(1 for g in c.shots if g), "output": c.output_path,
                         "error": c.error} for c in listed])
            return EXIT_OK
        rows = [[c.name, c.status, f"{sum(1 for g in c.shots if g)}/{c.shot_count}",
                 fmt.printable(c.error or c.output_path or "")[:60]] for c in listed]
    print(fmt.table(["NAME", "STATUS", "SHOTS", "OUTPUT / ERROR"], rows) if rows else
          "no chains yet: `lorad chain run SHOTS.toml`")
    return EXIT_OK


def show(args: argparse.Namespace) -> int:
    from lorad.core import fmt
    from lorad.generation import chains, generations

    with opened(args) as (_ws, conn):
        c = chains.get(conn, args.name)
        shots = [generations.get(conn, g) if g else None for g in c.shots]
        if args.json:
            print_json({"name": c.name, "status": c.status, "error": c.error,
                        "output": c.output_path, "manifest": c.manifest,
                        "shots": [{"shot": i + 1, "planned": c.planned[i],
                                   "generation": g.id if g else None,
                                   "status": g.status if g else "waiting",
                                   "output": g.output_path if g else None}
                                  for i, g in enumerate(shots)]})
            return EXIT_OK
        print(f"chain {c.name}: {c.status}" + (f" - {fmt.printable(c.error)}" if c.error else ""))
        rows = [[str(i + 1), str(g.id) if g else "-", g.status if g else "waiting",
                 fmt.printable(c.planned[i]["prompt"])[:40],
                 f"{c.planned[i]['frames']}",
                 f"${(g.cost if g else c.planned[i]['cost']) or 0:.2f}"]
                for i, g in enumerate(shots)]
        print(fmt.table(["SHOT", "GEN", "STATUS", "PROMPT", "FRAMES", "PRICE"], rows))
        if c.output_path:
            print(f"video: {c.output_path}")
    return EXIT_ERROR if c.status == "failed" else EXIT_OK


def retake(args: argparse.Namespace) -> int:
    from lorad.core import daemon
    from lorad.generation import chains

    with opened(args) as (ws, conn):
        chain, p = chains.retake_plan(conn, args.name, args.shot, seed=args.seed)
        later = len(p.shots) - 1
        print(f"chain {chain.name}: shot {args.shot} again" + (
            f", and the {later} shot(s) after it (they start from its last frame)"
            if later and chain.spec.chain_last_frame else
            f", and the {later} shot(s) after it" if later else ""))
        if not _priced(p, chain.spec.endpoint, args):
            return EXIT_OK
        chains.retake(conn, chain, p)
        daemon.nudge(ws)
    print("submitted")
    return EXIT_OK


def cancel(args: argparse.Namespace) -> int:
    from lorad.core import daemon
    from lorad.generation import chains

    with opened(args) as (ws, conn):
        print(chains.cancel(conn, args.name))
        daemon.nudge(ws)
    return EXIT_OK

