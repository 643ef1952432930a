"""`lorad jobs [show|cancel|retry]`: the durable jobs the daemon runs."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, opened, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("jobs", help="list, show, cancel or retry durable jobs")
    p.add_argument("--state", action="append", choices=["queued", "running", "succeeded",
                                                        "failed", "cancelled"],
                   help="only jobs in this state (repeatable)")
    p.add_argument("--kind", help="only jobs of this kind")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="output as JSON")
    p.set_defaults(func=run, action="list")
    jsub = p.add_subparsers(dest="action", metavar="ACTION")
    for name, text in (("show", "show one job in full"),
                       ("cancel", "cancel a queued job, or ask a running one to stop"),
                       ("retry", "queue a failed or cancelled job again")):
        a = jsub.add_parser(name, help=text)
        a.add_argument("id", type=int, help="job id (from `lorad jobs`)")
        a.add_argument("--json", action="store_true", help="output as JSON")


def run(args: argparse.Namespace) -> int:
    from lorad.core import daemon, fmt, jobs

    with opened(args) as (ws, conn):
        if args.action == "cancel":
            from lorad.generation.generations import cancel_job

            print(f"job {args.id}: {cancel_job(conn, args.id)}")
            return EXIT_OK
        if args.action == "retry":
            jobs.retry(conn, args.id)
            daemon.nudge(ws)
            print(f"job {args.id}: queued again")
            return EXIT_OK
        if args.action == "show":
            job = jobs.get(conn, args.id)
            if args.json:
                print_json(job.as_dict())
            else:
                for key, value in job.as_dict().items():
                    print(f"{key:17} {value}")
            return EXIT_OK
        listed = jobs.list_jobs(conn, args.state or None, kind=args.kind, limit=args.limit)
    if args.json:
        print_json([j.as_dict() for j in listed])
        return EXIT_OK
    rows = [[str(j.id), j.kind, j.state, f"{fmt.bar(j.progress)} {fmt.percent(j.progress)}",
             fmt.age(j.created_at), (j.error or j.progress_msg or "")[:80]] for j in listed]
    print(fmt.table(["ID", "KIND", "STATE", "PROGRESS", "AGE", "MESSAGE"], rows)
          if rows else "no jobs")
    return EXIT_OK
