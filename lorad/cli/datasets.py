"""CLI commands for profiles, datasets and clips (`lorad profiles|dataset|clips ...`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lorad.cli import EXIT_ERROR, EXIT_OK, CliError, _print_json, _ws


def cmd_profiles(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from lorad.core.config import load
    from lorad.media import profiles

    ws = None
    try:
        ws = _ws(args)
    except Exception:  # noqa: BLE001 - outside a workspace the built-ins still list
        pass
    known = profiles.all_profiles(load(ws.config_path) if ws else None)
    if args.json:
        _print_json({name: asdict(p) for name, p in known.items()})
        return EXIT_OK
    for name, p in known.items():
        print(f"{name}\n    {p.summary()}\n    {p.description}")
    return EXIT_OK


def cmd_dataset(args: argparse.Namespace) -> int:
    from lorad.cli import captions
    from lorad.core import fmt
    from lorad.media import datasets

    extra = {"rules": captions.cmd_rules, "check": captions.cmd_check,
             "export": captions.cmd_export}
    if args.action in extra:
        return extra[args.action](args)

    ws = _ws(args)
    conn = ws.connect()
    try:
        if args.action == "create":
            d = datasets.create(conn, args.name, args.profile, trigger=args.trigger,
                                config=ws.config())
            print(f"dataset {d.name} created (profile {d.profile}); add clips with "
                  f"`lorad clips add {d.name} FOLDER`")
            return EXIT_OK
        if args.action == "show":
            d = datasets.get(conn, args.name)
            counts = datasets.clip_counts(conn, d.id)
            if args.json:
                _print_json({**d.__dict__, "clips": counts})
            else:
                print(f"{d.name}: profile {d.profile}, trigger {d.trigger or '-'}")
                print("clips: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "none"))
            return EXIT_OK
        listed = datasets.list_all(conn)
        if args.json:
            _print_json([{**d.__dict__, "clips": datasets.clip_counts(conn, d.id)}
                         for d in listed])
            return EXIT_OK
        rows = []
        for d in listed:
            counts = datasets.clip_counts(conn, d.id)
            rows.append([d.name, d.profile, d.trigger or "-", str(sum(counts.values())),
                         str(counts.get("approved", 0)), str(counts.get("error", 0)),
                         fmt.age(d.created_at)])
        print(fmt.table(["NAME", "PROFILE", "TRIGGER", "CLIPS", "APPROVED", "ERRORS", "AGE"], rows)
              if rows else "no datasets yet: `lorad dataset create NAME --profile P`")
        return EXIT_OK
    finally:
        conn.close()


def cmd_clips(args: argparse.Namespace) -> int:
    from lorad.core import daemon
    from lorad.media import clips, datasets, profiles

    ws = _ws(args)
    conn = ws.connect()
    try:
        d = datasets.get(conn, args.dataset)
        if args.action == "add":
            report = clips.add(conn, d, [Path(p) for p in args.paths],
                               split_scenes=args.split_scenes)
            for path in report.missing:
                print(f"not found: {path}", file=sys.stderr)
            queued = len(report.queued) + len(report.changed)
            parts = [f"{len(report.queued)} new", f"{len(report.changed)} changed",
                     f"{len(report.skipped)} already in {d.name}"]
            if report.split_jobs:
                parts.append(f"{len(report.split_jobs)} to split into shots")
            if report.ignored:
                parts.append(f"{len(report.ignored)} non-media files ignored")
            print("queued: " + ", ".join(parts))
            if queued or report.split_jobs:
                daemon.nudge(ws)
            if not daemon.status(ws).running and (queued or report.split_jobs):
                print("the daemon is not running; start it with `lorad daemon start` "
                      "(or use --wait, which starts it)")
            if args.wait and (queued or report.split_jobs):
                daemon.ensure_running(ws)
                return _wait_ingest(conn, d.id)
            return EXIT_ERROR if report.missing else EXIT_OK
        if args.action in ("approve", "reject"):
            state = "approved" if args.action == "approve" else "rejected"
            changed, skipped = clips.set_review(conn, args.ids, state)
            print(f"{changed} clip(s) {state}" + (f"; {skipped} not reviewable (processing, "
                                                 "error or unknown)" if skipped else ""))
            return EXIT_OK
        if args.action == "reprocess":
            ids = list(args.ids)
            if args.stale:
                ids += clips.stale_ids(conn, d.id, profiles.get(d.profile, ws.config())
                                       .fingerprint())
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
        listed = clips.list_clips(conn, d.id, states=args.state, flag=args.flag, text=args.text)
        if args.json:
            _print_json([c.__dict__ for c in listed])
            return EXIT_OK
        from lorad.core import fmt

        rows = [[str(c.id), c.name, c.state, f"{c.frames or '-'}",
                 f"{c.width}x{c.height}" if c.width else "-", ",".join(c.flags),
                 (c.error or c.note or "")[:70]] for c in listed]
        print(fmt.table(["ID", "NAME", "STATE", "FRAMES", "SIZE", "FLAGS", "MESSAGE"], rows)
              if rows else "no clips")
        return EXIT_OK
    finally:
        conn.close()


def _wait_ingest(conn, dataset_id: int) -> int:
    from lorad.core import fmt
    from lorad.media import clips

    tty = sys.stdout.isatty()
    while True:
        done, total = clips.progress(conn, dataset_id)
        line = f"ingest {fmt.bar(done / total if total else 1, 30)} {done}/{total}"
        print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
        busy = conn.execute("SELECT COUNT(*) FROM jobs WHERE kind IN (?, ?) AND state IN"
                            " ('queued','running')", (clips.INGEST_KIND, clips.SPLIT_KIND)
                            ).fetchone()[0]
        if not busy:
            break
        time.sleep(0.5 if tty else 2.0)
    if tty:
        print()
    errors = conn.execute("SELECT COUNT(*) FROM clips WHERE dataset_id = ? AND state = 'error'",
                          (dataset_id,)).fetchone()[0]
    if errors:
        print(f"{errors} clip(s) in error: `lorad clips list DATASET --state error` says why")
    return EXIT_OK


def add_parsers(sub) -> None:
    p = sub.add_parser("profiles", help="list model profiles (built-in and from lorad.toml)")
    p.add_argument("--json", action="store_true", help="output as JSON")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("dataset", help="create, list or show datasets")
    p.set_defaults(func=cmd_dataset, action="list", json=False)
    dsub = p.add_subparsers(dest="action", metavar="ACTION")
    a = dsub.add_parser("create", help="create a dataset for a model profile")
    a.add_argument("name")
    a.add_argument("--profile", required=True, help="model profile (see `lorad profiles`)")
    a.add_argument("--trigger", help="trigger token captions must contain, e.g. TRUCKUGC")
    a = dsub.add_parser("list", help="list datasets with clip counts")
    a.add_argument("--json", action="store_true", help="output as JSON")
    a = dsub.add_parser("show", help="one dataset with clip counts by state")
    a.add_argument("name")
    a.add_argument("--json", action="store_true", help="output as JSON")
    from lorad.cli import captions

    captions.add_dataset_actions(dsub)

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
    p.set_defaults(func=cmd_clips)
