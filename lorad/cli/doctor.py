"""`lorad doctor`: check a workspace without changing it (exit 1 when something is wrong)."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_ERROR, EXIT_OK, print_json, workspace

MARKS = {"ok": "ok", "warning": "warn", "error": "ERROR"}


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="check the workspace: config, database integrity, "
                                      "folders, ffmpeg, media files, daemon")
    p.add_argument("--json", action="store_true", help="output as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.core import doctor

    ws = workspace(args)
    checks = doctor.run(ws)
    if not any(c.status == "error" for c in checks if c.name in ("integrity", "database")):
        checks.append(_media(ws))
    if args.json:
        print_json({"workspace": str(ws.root), "checks": [c.as_dict() for c in checks],
                    "ok": not any(c.status == "error" for c in checks)})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{MARKS[c.status]:<5}  {c.name:<{width}}  {c.detail}")
    return EXIT_ERROR if any(c.status == "error" for c in checks) else EXIT_OK


def _media(ws):
    """Processed clips whose media file is gone (the media folder lost or not copied)."""
    from lorad.core.doctor import Check
    from lorad.media import clips

    conn = ws.connect()
    try:
        gone = clips.missing_media(conn)
    finally:
        conn.close()
    if not gone:
        return Check("media", "ok", "every processed clip's file is there")
    names = ", ".join(c.name for c in gone[:3]) + (" ..." if len(gone) > 3 else "")
    return Check("media", "warning", f"{len(gone)} processed clip(s) have no media file "
                                            f"({names}): `lorad clips reprocess` makes them "
                                            "again from their sources")
