"""`lorad captions draft`: captions drafted by a vision model, priced before anything is sent."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, CliError, opened, print_json


def draft(args: argparse.Namespace) -> int:
    from lorad.core import daemon, fmt
    from lorad.generation import drafting
    from lorad.media import datasets, profiles

    with opened(args) as (ws, conn):
        config = ws.config()
        d = datasets.get(conn, args.dataset)
        media = profiles.get(d.profile, config).media
        model = args.model or config["drafts"]["model"] or None
        extra = None
        if args.service == "pod":
            from lorad.evaluation import requests

            captioner = drafting.pod_captioner(model, media)
            extra = requests.caption_request(conn, captioner.endpoint, args.pod)
        elif args.pod:
            raise CliError("--pod goes with --service pod")
        p = drafting.plan(conn, d, media, config["drafts"], model=model, everything=args.all,
                          template=args.template, clip_ids=args.clip, service=args.service,
                          extra=extra)
        summary = {"dataset": d.name, "model": p.captioner.name, "endpoint": p.captioner.endpoint,
                   "clips": len(p.clip_ids), "cost": p.cost, "over_person_captions":
                   len(p.overwrite), "already_pending": len(p.pending), "sent": False}
        if not p.clip_ids:
            why = ("every clip has a caption (--all drafts them too)" if not args.all
                   else "no clip can be drafted (processed, not rejected)")
            if p.pending:
                why += f"; {len(p.pending)} clip(s) have a draft on its way"
            if args.json:
                print_json({**summary, "why": why})
            else:
                print(f"nothing to draft: {why}")
            return EXIT_OK
        line = (f"{len(p.clip_ids)} clip(s) of {d.name} to {p.captioner.name} "
                f"({p.captioner.endpoint}), about {fmt.money(p.cost)}{p.price_caveat}")
        if p.overwrite:
            line += (f"; {len(p.overwrite)} have a caption a person wrote: the draft goes on top "
                     "as a new version (their text stays in the history)")
        if p.pending:
            line += f"; {len(p.pending)} left out: a draft is on its way"
        if not args.yes:
            if args.json:
                print_json(summary)
            else:
                print(line)
                print("add --yes to send them")
            return EXIT_OK
        ids = drafting.submit(conn, p)
        daemon.nudge(ws)
        running = daemon.status(ws).running
    if args.json:
        print_json({**summary, "sent": True, "generation_ids": ids})
    else:
        print(line)
        print(f"{len(ids)} draft request(s) queued; review them in the Captions screen (2)")
        if not running:
            print("the daemon is not running: `lorad daemon start`")
    return EXIT_OK
