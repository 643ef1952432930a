"""`lorad daemon start|stop|status|run`."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, opened, print_json, workspace


def add_parser(sub) -> None:
    p = sub.add_parser("daemon", help="start, stop or inspect the background daemon")
    p.add_argument("action", choices=["start", "stop", "status", "run"],
                   help="run stays in the foreground")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="run: also log to stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.core import daemon, fmt, jobs

    ws = workspace(args)
    if args.action == "run":
        return daemon.run_foreground(ws, verbose=args.verbose)
    if args.action == "start":
        st = daemon.start(ws)
        print(f"daemon started (pid {st.pid}); log: {ws.log_path}")
        return EXIT_OK
    if args.action == "stop":
        print("daemon stopped" if daemon.stop(ws) else "no daemon was running")
        return EXIT_OK
    st = daemon.status(ws)
    with opened(args) as (_ws, conn):
        counts = jobs.counts_by_state(conn)
    if args.json:
        print_json({"running": st.running, "pid": st.pid, "uptime": st.uptime,
                    "jobs": counts, "workspace": str(ws.root)})
    else:
        if st.running:
            print(f"daemon running, pid {st.pid}, up {fmt.duration(st.uptime)}")
        else:
            print("daemon not running (start it with `lorad daemon start`)")
        print("jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return EXIT_OK
