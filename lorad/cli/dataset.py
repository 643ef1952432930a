"""`lorad dataset create|list|show|rules|check|export`."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_ERROR, EXIT_OK, opened, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="create, list or show datasets; rules, check, export")
    p.set_defaults(func=run, action="list", json=False)
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

    a = dsub.add_parser("rules", help="a dataset's caption rules, eval prompts and split")
    a.add_argument("name")
    a.add_argument("--trigger")
    a.add_argument("--trigger-position", choices=["start", "anywhere"])
    a.add_argument("--template", help='e.g. "[color] [make] pickup parked [setting], ..."')
    a.add_argument("--min-words", type=int)
    a.add_argument("--max-words", type=int)
    a.add_argument("--ban", action="append", metavar="WORD", help="banned word (repeatable)")
    a.add_argument("--allow", action="append", metavar="WORD", help="unban a word")
    a.add_argument("--negative-prompt")
    a.add_argument("--eval-prompt", action="append", help="sample prompt (repeatable)")
    a.add_argument("--clear-eval-prompts", action="store_true")
    a.add_argument("--prompt-template", help="for `lorad gen --fill` (default: the caption "
                                              "template), e.g. '[color] [make] parked [setting]'")
    a.add_argument("--checklist", action="append", metavar="TAG",
                   help="a flaw to tag generations with when rating, e.g. 'spinning tires'")
    a.add_argument("--clear-checklist", action="store_true")
    a.add_argument("--validation", type=float, help="share of clips held out, e.g. 0.1")

    a = dsub.add_parser("check", help="preflight a dataset before export/training (exit 1 on "
                                      "errors)")
    a.add_argument("name")
    a.add_argument("--validation", type=float)
    a.add_argument("--format", help="the trainer's dataset format (default: the profile's; "
                                    "diffusion-pipe for `--trainer diffusion-pipe`)")
    a.add_argument("--allow-drafts", action="store_true",
                   help="unreviewed drafted captions are warnings, not errors")
    a.add_argument("--json", action="store_true")

    a = dsub.add_parser("export", help="freeze a dataset version into a trainer's folder")
    a.add_argument("name")
    a.add_argument("--remote-root", help="path of the folder on the pod "
                                         "(default /workspace/lorad/NAME/HASH)")
    a.add_argument("--jsonl", action="store_true", help="also write train.jsonl and use it")
    a.add_argument("--validation", type=float, help="share of clips held out")
    a.add_argument("--format", help="the trainer's dataset format (default: the profile's, "
                                    "musubi; diffusion-pipe for `--trainer diffusion-pipe`)")
    a.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="each training clip N times per epoch (num_repeats; ACE-Step's "
                        "repeat_count)")
    a.add_argument("--force", action="store_true", help="export despite preflight errors")
    a.add_argument("--allow-drafts", action="store_true",
                   help="export captions a model drafted that no person reviewed")
    a.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    actions = {"create": create, "show": show, "list": list_all, "rules": set_rules,
               "check": check, "export": export_version}
    with opened(args) as (ws, conn):
        return actions[args.action](args, ws, conn)


def create(args, ws, conn) -> int:
    from lorad.media import datasets

    d = datasets.create(conn, args.name, args.profile, trigger=args.trigger, config=ws.config())
    print(f"dataset {d.name} created (profile {d.profile}); add clips with "
          f"`lorad clips add {d.name} FOLDER`")
    return EXIT_OK


def show(args, ws, conn) -> int:
    from lorad.captions import presets
    from lorad.media import clips, datasets, profiles

    d = datasets.get(conn, args.name)
    counts = clips.counts_by_state(conn, d.id)
    audio = profiles.get(d.profile, ws.config()).media == "audio"
    styles = clips.style_counts(conn, d.id) if audio else {}
    warnings = presets.balance(styles) if audio else []
    if args.json:
        print_json({**d.__dict__, "clips": counts, "styles": styles, "warnings": warnings})
    else:
        print(f"{d.name}: profile {d.profile}, trigger {d.trigger or '-'}")
        print("clips: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "none"))
        if audio:
            total = sum(styles.values()) or 1
            print("styles: " + (", ".join(f"{c} {n} ({n / total:.0%})"
                                          for c, n in styles.items()) or "no tracks"))
            for warning in warnings:
                print(f"warning: {warning}")
    return EXIT_OK


def list_all(args, ws, conn) -> int:
    from lorad.core import fmt
    from lorad.media import clips, datasets

    listed = [(d, clips.counts_by_state(conn, d.id)) for d in datasets.list_all(conn)]
    if args.json:
        print_json([{**d.__dict__, "clips": counts} for d, counts in listed])
        return EXIT_OK
    rows = [[d.name, d.profile, d.trigger or "-", str(sum(counts.values())),
             str(counts.get("approved", 0)), str(counts.get("error", 0)), fmt.age(d.created_at)]
            for d, counts in listed]
    print(fmt.table(["NAME", "PROFILE", "TRIGGER", "CLIPS", "APPROVED", "ERRORS", "AGE"], rows)
          if rows else "no datasets yet: `lorad dataset create NAME --profile P`")
    return EXIT_OK


def set_rules(args, ws, conn) -> int:
    from lorad.media import datasets

    d = datasets.get(conn, args.name)
    change = datasets.RulesChange(
        rules={key: getattr(args, key) for key in datasets.RULE_KEYS},
        ban=args.ban or [], allow=args.allow or [], eval_prompts=args.eval_prompt or [],
        clear_eval_prompts=args.clear_eval_prompts, checklist=args.checklist or [],
        clear_checklist=args.clear_checklist, validation=args.validation,
        prompt_template=args.prompt_template, trigger=args.trigger)
    d = datasets.change_rules(conn, d.id, change)
    print_json({"trigger": d.trigger, **d.settings})
    return EXIT_OK


def _options(args, d):
    from lorad.datasets import export

    validation = args.validation if args.validation is not None else d.settings.get(
        "validation", 0.0)
    return export.Options(remote_root=getattr(args, "remote_root", None),
                          jsonl=getattr(args, "jsonl", False), validation=validation,
                          format=getattr(args, "format", None),
                          num_repeats=max(1, getattr(args, "repeat", 1) or 1))


def check(args, ws, conn) -> int:
    from lorad.datasets import preflight
    from lorad.media import datasets, profiles

    d = datasets.get(conn, args.name)
    report = preflight.check(conn, d, profiles.get(d.profile, ws.config()), _options(args, d),
                             allow_drafts=args.allow_drafts)
    if args.json:
        print_json({"ok": report.ok, "clips": report.clips, "items_per_epoch": report.items,
                    "batches_per_epoch": report.batches, "frame_buckets": report.buckets,
                    "findings": [f.__dict__ for f in report.findings]})
    else:
        for f in report.findings:
            print(f.line())
        for name, bucket in report.buckets.items():
            print(f"{name}: " + (f"frame bucket {bucket}" if bucket else "skipped by the "
                                 "trainer (shorter than every frame bucket)"))
        print(f"{report.clips} approved clip(s) -> {report.items} item(s), {report.batches} "
              f"batch(es) per epoch; {len(report.errors)} error(s), "
              f"{len(report.findings) - len(report.errors)} warning(s)")
    return EXIT_OK if report.ok else EXIT_ERROR


def export_version(args, ws, conn) -> int:
    from lorad.datasets import export, preflight
    from lorad.media import datasets, profiles

    d = datasets.get(conn, args.name)
    profile = profiles.get(d.profile, ws.config())
    options = _options(args, d)
    report = preflight.check(conn, d, profile, options, allow_drafts=args.allow_drafts)
    for f in report.findings:
        print(f.line())
    if export.refusal(report, force=args.force):
        print(f"export stopped: {len(report.errors)} error(s) above (--force exports anyway)")
        return EXIT_ERROR
    p = export.plan(conn, d, profile, options)
    path = export.write(p, export.export_dir(ws.root, p))
    version = export.record(conn, p, path)
    if args.json:
        print_json({"version_id": version, "content_hash": p.content_hash, "path": str(path),
                    "clips": len(p.items)})
    else:
        print(f"dataset version {version} ({p.content_hash[:12]}): {len(p.items)} clip(s) in "
              f"{path}")
    return EXIT_OK
