"""`lorad`: every action scriptable. Heavy modules are imported inside the commands that use
them, so `lorad --help` stays fast."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """An error whose message is the whole story for the user (no traceback)."""


def _ws(args: argparse.Namespace):
    from lorad.core.workspace import find

    return find(args.workspace)


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# ---- init -------------------------------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    from lorad.core import workspace

    ws = workspace.init(Path(args.dir), name=args.name)
    print(f"workspace ready at {ws.root}")
    print(f"  config:   {ws.config_path}")
    print(f"  database: {ws.db_path}")
    print("next: `lorad` in that folder opens the TUI (and starts the daemon)")
    return EXIT_OK


# ---- daemon -----------------------------------------------------------------------------------

def cmd_daemon(args: argparse.Namespace) -> int:
    from lorad.core import daemon, fmt, jobs

    ws = _ws(args)
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
    conn = ws.connect()
    counts = jobs.counts_by_state(conn)
    conn.close()
    if args.json:
        _print_json({"running": st.running, "pid": st.pid, "uptime": st.uptime,
                     "jobs": counts, "workspace": str(ws.root)})
    else:
        if st.running:
            print(f"daemon running, pid {st.pid}, up {fmt.duration(st.uptime)}")
        else:
            print("daemon not running (start it with `lorad daemon start`)")
        print("jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return EXIT_OK


# ---- jobs -------------------------------------------------------------------------------------

def cmd_jobs(args: argparse.Namespace) -> int:
    from lorad.core import fmt, jobs

    ws = _ws(args)
    conn = ws.connect()
    try:
        if args.action == "cancel":
            from lorad.generation.generations import cancel_job

            outcome = cancel_job(conn, args.id)
            print(f"job {args.id}: {outcome}")
            return EXIT_OK
        if args.action == "retry":
            jobs.retry(conn, args.id)
            from lorad.core import daemon

            daemon.nudge(ws)
            print(f"job {args.id}: queued again")
            return EXIT_OK
        if args.action == "show":
            job = jobs.get(conn, args.id)
            if args.json:
                _print_json(job.as_dict())
            else:
                for key, value in job.as_dict().items():
                    print(f"{key:17} {value}")
            return EXIT_OK
        states = args.state or None
        listed = jobs.list_jobs(conn, states, kind=args.kind, limit=args.limit)
        if args.json:
            _print_json([j.as_dict() for j in listed])
            return EXIT_OK
        rows = [
            [str(j.id), j.kind, j.state, f"{fmt.bar(j.progress)} {_pct(j.progress)}",
             fmt.age(j.created_at), (j.error or j.progress_msg or "")[:80]]
            for j in listed
        ]
        print(fmt.table(["ID", "KIND", "STATE", "PROGRESS", "AGE", "MESSAGE"], rows)
              if rows else "no jobs")
        return EXIT_OK
    finally:
        conn.close()


def _pct(fraction: float | None) -> str:
    return "    " if fraction is None else f"{fraction * 100:3.0f}%"


# ---- tui --------------------------------------------------------------------------------------

def cmd_tui(args: argparse.Namespace) -> int:
    from lorad.core import daemon

    ws = _ws(args)
    ws.connect().close()  # bring the schema up to date before any screen reads it
    if not args.no_daemon:
        daemon.ensure_running(ws)
    from tui.app import LoradApp

    LoradApp(ws).run()
    return EXIT_OK


# ---- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from lorad import __version__

    parser = argparse.ArgumentParser(
        prog="lorad",
        description="Train LoRAs for video and image diffusion models: clips, captions, GPU "
                    "pods, training, publishing and generations in one place. With no command "
                    "inside a workspace, opens the TUI.",
        epilog="Secrets come from the environment only: FAL_KEY, RUNPOD_API_KEY, HF_TOKEN.",
    )
    parser.add_argument("--version", action="version", version=f"lorad {__version__}")
    parser.add_argument("-w", "--workspace", metavar="DIR",
                        help="workspace folder (default: $LORAD_WORKSPACE, or the nearest folder "
                             "above the current one holding lorad.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="create a workspace (config, database, media folders)")
    p.add_argument("dir", nargs="?", default=".", help="folder to create (default: here)")
    p.add_argument("--name", help="name shown in the TUI header (default: the folder's name)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("daemon", help="start, stop or inspect the background daemon")
    p.add_argument("action", choices=["start", "stop", "status", "run"],
                   help="run stays in the foreground")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="run: also log to stderr")
    p.set_defaults(func=cmd_daemon)

    p = sub.add_parser("jobs", help="list, show, cancel or retry durable jobs")
    p.add_argument("--state", action="append", choices=["queued", "running", "succeeded",
                                                        "failed", "cancelled"],
                   help="only jobs in this state (repeatable)")
    p.add_argument("--kind", help="only jobs of this kind")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="output as JSON")
    p.set_defaults(func=cmd_jobs, action="list")
    jsub = p.add_subparsers(dest="action", metavar="ACTION")
    for name, text in (("show", "show one job in full"),
                       ("cancel", "cancel a queued job, or ask a running one to stop"),
                       ("retry", "queue a failed or cancelled job again")):
        a = jsub.add_parser(name, help=text)
        a.add_argument("id", type=int, help="job id (from `lorad jobs`)")
        a.add_argument("--json", action="store_true", help="output as JSON")

    from lorad.cli import datasets

    datasets.add_parsers(sub)
    from lorad.cli import captions

    captions.add_parsers(sub)
    from lorad.cli import training

    training.add_parsers(sub)
    from lorad.cli import generations

    generations.add_parsers(sub)

    p = sub.add_parser("tui", help="open the terminal UI (starts the daemon if needed)")
    p.add_argument("--no-daemon", action="store_true", help="do not start the daemon")
    p.set_defaults(func=cmd_tui)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        from lorad.core.workspace import WorkspaceError, find

        try:
            find(args.workspace)
        except WorkspaceError:
            parser.print_help()
            return EXIT_OK
        args.no_daemon = False
        func = cmd_tui
    try:
        return func(args)
    except KeyboardInterrupt:
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - one clear line for the user, details in the log
        return _report(exc, args)


def _report(exc: Exception, args: argparse.Namespace) -> int:
    from lorad.core.errors import LoradError

    if isinstance(exc, (CliError, LoradError)):
        print(f"lorad: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    log_path = _log_traceback()
    print(f"lorad: error: {exc.__class__.__name__}: {exc} (traceback in {log_path})",
          file=sys.stderr)
    return EXIT_ERROR


def _log_traceback() -> Path:
    import traceback

    from platformdirs import user_log_dir

    path = Path(user_log_dir("lorad")) / "cli.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    from lorad.core.logs import redact

    with path.open("a", encoding="utf-8") as fh:
        fh.write(redact(traceback.format_exc()) + "\n")
    return path
