"""`lorad clips add|list|approve|reject|reprocess`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lorad.cli.common import EXIT_ERROR, EXIT_OK, CliError, opened, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("clips", help="add, list, review or reprocess a dataset's clips")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = csub.add_parser("add", help="ingest files or folders (recursive); only new or changed "
                                    "files are queued")
    a.add_argument("dataset")
    a.add_argument("paths", nargs="+", metavar="PATH")
    a.add_argument("--split-scenes", action="store_true",
                   help="cut long sources at scene changes; each shot becomes a clip")
    a.add_argument("--wait", action="store_true",
                   help="start the daemon if needed and show progress until ingest is done")
    a = csub.add_parser("list", help="list clips")
    a.add_argument("dataset")
    a.add_argument("--state", action="append",
                   choices=["new", "processing", "ready", "approved", "rejected", "error"])
    a.add_argument("--flag", help="only clips with this flag (e.g. panning, near_duplicate)")
    a.add_argument("--text", help="only clips whose path, name or error contains this")
    a.add_argument("--json", action="store_true", help="output as JSON")
    for name, text in (("approve", "approve clips for training"),
                       ("reject", "reject clips (kept, never exported)")):
        a = csub.add_parser(name, help=text)
        a.add_argument("dataset")
        a.add_argument("ids", nargs="+", type=int, metavar="ID")
    a = csub.add_parser("reprocess", help="process clips again (after a profile change)")
    a.add_argument("dataset")
    a.add_argument("ids", nargs="*", type=int, metavar="ID")
    a.add_argument("--stale", action="store_true", help="clips made with an older profile")
    a.add_argument("--errors", action="store_true", help="clips in error")
    a.add_argument("--all", action="store_true", help="every clip")
    a = csub.add_parser("source", help="where a track (or clip) came from: provider, license, "
                                       "cost, date, URL")
    a.add_argument("dataset")
    a.add_argument("ids", nargs="+", type=int, metavar="ID")
    for key in ("provider", "license", "date", "url"):
        a.add_argument(f"--{key}")
    a.add_argument("--cost", type=float, help="what it cost, in $")
    a.add_argument("--json", action="store_true")
    a = csub.add_parser("window", help="a long track's kept window starts here (seconds, or "
                                       "M:SS); it is processed again")
    a.add_argument("dataset")
    a.add_argument("id", type=int)
    a.add_argument("start")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.media import datasets

    actions = {"add": add, "approve": review, "reject": review, "reprocess": reprocess,
               "list": list_clips, "source": source, "window": window}
    with opened(args) as (ws, conn):
        return actions[args.action](args, ws, conn, datasets.get(conn, args.dataset))


def add(args, ws, conn, d) -> int:
    from lorad.core import daemon
    from lorad.media import clips, profiles

    media = profiles.get(d.profile, ws.config()).media
    report = clips.add(conn, d, [Path(p) for p in args.paths], split_scenes=args.split_scenes,
                       media=media)
    for path in report.missing:
        print(f"not found: {path}", file=sys.stderr)
    for path in report.empty:
        kinds = " ".join(sorted(clips.VIDEO_EXT | clips.IMAGE_EXT))
        print(f"no media files in {path} (looked for {kinds})", file=sys.stderr)
    for path in report.split_failed:
        print(f"not split again: {path} failed before and has not changed since (`lorad clips "
              f"list {d.name} --state error` says why; `lorad clips reprocess {d.name} "
              "--errors` tries again)", file=sys.stderr)
    queued = len(report.queued) + len(report.changed)
    print(report.summary(d.name))
    if queued or report.split_jobs:
        daemon.nudge(ws)
        if not args.wait and not daemon.status(ws).running:
            print("the daemon is not running; start it with `lorad daemon start` "
                  "(or use --wait, which starts it)")
        if args.wait:
            daemon.ensure_running(ws)
            code = wait_for_ingest(conn, d, report)
            return EXIT_ERROR if report.problems or report.split_failed else code
    return EXIT_ERROR if report.problems or report.split_failed else EXIT_OK


def review(args, ws, conn, d) -> int:
    from lorad.media import clips

    state = "approved" if args.action == "approve" else "rejected"
    changed, skipped = clips.set_review(conn, args.ids, state)
    print(f"{changed} clip(s) {state}" + (f"; {skipped} not reviewable (processing, error or "
                                         "unknown)" if skipped else ""))
    return EXIT_OK


def reprocess(args, ws, conn, d) -> int:
    from lorad.core import daemon
    from lorad.media import clips, profiles

    ids = list(args.ids)
    if args.stale:
        ids += clips.stale_ids(conn, d.id, profiles.get(d.profile, ws.config()).fingerprint())
    if args.errors:
        ids += [c.id for c in clips.list_clips(conn, d.id, states=["error"])]
    if args.all:
        ids += [c.id for c in clips.list_clips(conn, d.id)]
    if not ids:
        raise CliError("name clip ids, or use --stale, --errors or --all")
    queued = clips.reprocess(conn, sorted(set(ids)))
    daemon.nudge(ws)
    print(f"{len(queued)} clip(s) queued for processing")
    return EXIT_OK


def list_clips(args, ws, conn, d) -> int:
    from lorad.core import fmt
    from lorad.media import clips

    listed = clips.list_clips(conn, d.id, states=args.state, flag=args.flag, text=args.text)
    if args.json:
        print_json([c.__dict__ for c in listed])
        return EXIT_OK
    rows = [[str(c.id), c.name, c.state, f"{c.frames or '-'}",
             f"{c.width}x{c.height}" if c.width else "-", ",".join(c.flags),
             (c.error or c.note or "")[:70]] for c in listed]
    print(fmt.table(["ID", "NAME", "STATE", "FRAMES", "SIZE", "FLAGS", "MESSAGE"], rows)
          if rows else "no clips")
    return EXIT_OK


def wait_for_ingest(conn, d, report) -> int:
    """Show ingest progress until the dataset's ingest and split jobs are done; then what came
    of the files this command queued (exit 1 when any is in error)."""
    from lorad.core import fmt, jobs
    from lorad.media import clips

    tty = sys.stdout.isatty()
    while True:
        done, total = clips.progress(conn, d.id)
        line = f"ingest {fmt.bar(done / total if total else 1, 30)} {done}/{total}"
        print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
        if not clips.ingest_pending(conn):
            break
        time.sleep(0.5 if tty else 2.0)
    if tty:
        print()
    for job_id in report.split_jobs:
        job = jobs.get(conn, job_id)
        if job.state == "succeeded" and job.result:
            print(f"split {job.result.get('summary', '')}")
    counts = clips.outcome(conn, [*report.queued, *report.changed], report.split_jobs)
    print("done: " + (", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
                      or "nothing new"))
    errors = counts.get("error", 0)
    if errors:
        print(f"{errors} clip(s) in error: `lorad clips list {d.name} --state error` says why",
              file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def source(args, ws, conn, d) -> int:
    from lorad.media import clips

    given = {k: getattr(args, k) for k in clips.SOURCE_KEYS if getattr(args, k) is not None}
    records = {}
    for clip_id in args.ids:
        if clips.get(conn, clip_id).dataset_id != d.id:
            raise CliError(f"clip {clip_id} is not in dataset {d.name}")
        records[clip_id] = clips.set_track(conn, clip_id, source=given).get("source", {})
    if args.json:
        print_json(records)
    else:
        for clip_id, record in records.items():
            said = ", ".join(f"{k} {v}" for k, v in record.items()) or "nothing recorded"
            print(f"clip {clip_id}: {said}")
    return EXIT_OK


def window(args, ws, conn, d) -> int:
    """The start of the window a long track keeps (the profile's max_seconds from there)."""
    from lorad.core import daemon
    from lorad.media import clips, profiles

    clip = clips.get(conn, args.id)
    if clip.dataset_id != d.id:
        raise CliError(f"clip {args.id} is not in dataset {d.name}")
    minutes, _, seconds = args.start.rpartition(":")
    try:
        start = float(seconds) + 60 * float(minutes or 0)
    except ValueError:
        raise CliError(f"{args.start!r}: seconds (95) or M:SS (1:35)") from None
    profile = profiles.get(d.profile, ws.config())
    if profile.media != "audio" or not profile.max_seconds:
        raise CliError(f"{d.name} is not an audio dataset: a window is a long track's")
    clips.set_window(conn, clip.id, start, profile.max_seconds)
    daemon.nudge(ws)
    print(f"clip {clip.id} keeps {start:g}-{start + profile.max_seconds:g} s; processing again")
    return EXIT_OK
