"""CLI commands for captions, caption rules, preflight and export."""

from __future__ import annotations

import argparse
from pathlib import Path

from lorad.cli import EXIT_ERROR, EXIT_OK, CliError, _print_json, _ws


def _clip_in(conn, dataset, clip_id: int):
    from lorad.media import clips

    clip = clips.get(conn, clip_id)
    if clip.dataset_id != dataset.id:
        raise CliError(f"clip {clip_id} is not in dataset {dataset.name}")
    return clip


def cmd_captions(args: argparse.Namespace) -> int:
    from lorad.captions import bulk, imports, lint, versions
    from lorad.media import datasets

    ws = _ws(args)
    conn = ws.connect()
    try:
        d = datasets.get(conn, args.dataset)
        a = args.action
        if a == "set":
            _clip_in(conn, d, args.clip)
            new = versions.set_caption(conn, args.clip, args.text)
            print("caption saved" if new else "caption unchanged")
        elif a == "undo":
            _clip_in(conn, d, args.clip)
            v = versions.undo(conn, args.clip)
            print(f"caption is now: {v.text!r}" if v else "nothing to undo")
        elif a in ("show", "history"):
            _clip_in(conn, d, args.clip)
            past = versions.history(conn, args.clip)
            if a == "show":
                past = past[-1:]
            if args.json:
                _print_json([v.__dict__ for v in past])
            for v in [] if args.json else past:
                print(f"v{v.id} [{v.source}{' ' + v.batch_id if v.batch_id else ''}] {v.text}")
            if not past and not args.json:
                print("no caption yet")
        elif a == "import":
            report = imports.auto(conn, d, Path(args.file) if args.file else None)
            print(f"{report.imported} caption(s) imported, {report.unchanged} unchanged, "
                  f"{len(report.unmatched)} entries match no clip")
            for ref in report.unmatched[:20]:
                print(f"  no clip for {ref}")
            for problem in report.problems:
                print(f"  {problem}")
            if report.batch_id:
                print(f"undo with `lorad captions undo-batch {d.name} {report.batch_id}`")
        elif a == "lint":
            rules = lint.Rules.from_dataset(d.trigger, d.settings)
            current = versions.current_texts(conn, d.id)
            ids = [r[0] for r in conn.execute("SELECT id FROM clips WHERE dataset_id = ? AND"
                                              " state != 'rejected' AND duplicate_of IS NULL",
                                              (d.id,))]
            result = lint.lint_dataset({i: current[i].text if i in current else "" for i in ids},
                                       rules)
            if args.json:
                _print_json({str(c): [i.__dict__ for i in issues]
                             for c, issues in result.by_clip.items() if issues})
            else:
                for clip_id, issues in result.by_clip.items():
                    for issue in issues:
                        print(f"clip {clip_id}: {issue.severity}: {issue.message}")
                counts = result.counts()
                print("summary: " + (", ".join(f"{n} {c}" for c, n in sorted(counts.items()))
                                     or "no issues"))
            return EXIT_ERROR if result.clips_with_errors() else EXIT_OK
        elif a == "undo-batch":
            batch = args.batch or versions.last_batch(conn, d.id)
            if not batch:
                raise CliError("no bulk edit to undo")
            undone, kept = versions.undo_batch(conn, batch)
            print(f"bulk edit {batch} undone on {undone} clip(s)"
                  + (f"; {kept} edited since were kept" if kept else ""))
        elif a == "bulk":
            op = args.op
            if op == "replace":
                changes = bulk.replace(conn, d, args.find, args.replacement, regex=args.regex,
                                       ignore_case=args.ignore_case)
            elif op == "prepend":
                changes = bulk.prepend(conn, d, args.text)
            elif op == "append":
                changes = bulk.append(conn, d, args.text)
            elif op == "trigger":
                changes = bulk.set_trigger(conn, d, args.token)
            else:
                changes = bulk.apply_template(conn, d)
            for c in changes[:args.preview]:
                print(f"clip {c.clip_id}:\n  - {c.old}\n  + {c.new}")
            if len(changes) > args.preview:
                print(f"... and {len(changes) - args.preview} more")
            if not args.apply:
                print(f"{len(changes)} caption(s) would change; add --apply to write them")
                return EXIT_OK
            batch = bulk.apply(conn, changes)
            if op == "trigger":
                conn.execute("UPDATE datasets SET trigger = ? WHERE id = ?", (args.token, d.id))
            print(f"{len(changes)} caption(s) changed"
                  + (f"; undo with `lorad captions undo-batch {d.name} {batch}`" if batch else ""))
        return EXIT_OK
    finally:
        conn.close()


def cmd_rules(args: argparse.Namespace) -> int:
    from lorad.media import datasets

    ws = _ws(args)
    conn = ws.connect()
    try:
        d = datasets.get(conn, args.name)
        rules = dict(d.settings.get("caption_rules", {}))
        for key in ("template", "min_words", "max_words", "negative_prompt", "trigger_position"):
            value = getattr(args, key)
            if value is not None:
                rules[key] = value
        if args.ban:
            rules["banned_words"] = sorted(set(rules.get("banned_words", [])) | set(args.ban))
        if args.allow:
            rules["banned_words"] = [w for w in rules.get("banned_words", [])
                                     if w not in args.allow]
        changes = {"caption_rules": rules}
        if args.eval_prompt:
            changes["eval_prompts"] = list(d.settings.get("eval_prompts", [])) + args.eval_prompt
        if args.clear_eval_prompts:
            changes["eval_prompts"] = list(args.eval_prompt or [])
        if args.validation is not None:
            changes["validation"] = args.validation
        if args.prompt_template is not None:
            changes["prompt_template"] = args.prompt_template
        if args.checklist or args.clear_checklist:
            kept = [] if args.clear_checklist else list(d.settings.get("checklist", []))
            changes["checklist"] = kept + [c for c in args.checklist or [] if c not in kept]
        datasets.update_settings(conn, d.id, **changes)
        if args.trigger is not None:
            conn.execute("UPDATE datasets SET trigger = ? WHERE id = ?", (args.trigger, d.id))
        d = datasets.get(conn, args.name)
        _print_json({"trigger": d.trigger, **d.settings})
        return EXIT_OK
    finally:
        conn.close()


def _options(args, d):
    from lorad.datasets import export

    validation = args.validation if args.validation is not None else d.settings.get(
        "validation", 0.0)
    return export.Options(remote_root=getattr(args, "remote_root", None),
                          jsonl=getattr(args, "jsonl", False), validation=validation)


def cmd_check(args: argparse.Namespace) -> int:
    from lorad.datasets import preflight
    from lorad.media import datasets, profiles

    ws = _ws(args)
    conn = ws.connect()
    try:
        d = datasets.get(conn, args.name)
        report = preflight.check(conn, d, profiles.get(d.profile, ws.config()), _options(args, d))
        if args.json:
            _print_json({"ok": report.ok, "clips": report.clips, "items_per_epoch": report.items,
                         "batches_per_epoch": report.batches,
                         "findings": [f.__dict__ for f in report.findings]})
        else:
            for f in report.findings:
                print(f.line())
            print(f"{report.clips} approved clip(s) -> {report.items} item(s), {report.batches} "
                  f"batch(es) per epoch; {len(report.errors)} error(s), "
                  f"{len(report.findings) - len(report.errors)} warning(s)")
        return EXIT_OK if report.ok else EXIT_ERROR
    finally:
        conn.close()


def cmd_export(args: argparse.Namespace) -> int:
    from lorad.datasets import export, preflight
    from lorad.media import datasets, profiles

    ws = _ws(args)
    conn = ws.connect()
    try:
        d = datasets.get(conn, args.name)
        profile = profiles.get(d.profile, ws.config())
        options = _options(args, d)
        report = preflight.check(conn, d, profile, options)
        for f in report.findings:
            print(f.line())
        if not report.ok and not args.force:
            print(f"export stopped: {len(report.errors)} error(s) above (--force exports anyway)")
            return EXIT_ERROR
        p = export.plan(conn, d, profile, options)
        path = export.write(p, export.export_dir(ws.root, p))
        version = export.record(conn, p, path)
        if args.json:
            _print_json({"version_id": version, "content_hash": p.content_hash,
                         "path": str(path), "clips": len(p.items)})
        else:
            print(f"dataset version {version} ({p.content_hash[:12]}): {len(p.items)} clip(s) "
                  f"in {path}")
        return EXIT_OK
    finally:
        conn.close()


def add_parsers(sub) -> None:
    p = sub.add_parser("captions", help="edit, import, lint and bulk-edit captions (with history)")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("show", "the current caption"), ("history", "every version"),
                       ("undo", "go back one version")):
        a = csub.add_parser(name, help=text)
        a.add_argument("dataset")
        a.add_argument("clip", type=int)
        a.add_argument("--json", action="store_true")
    a = csub.add_parser("set", help="write a new caption version")
    a.add_argument("dataset")
    a.add_argument("clip", type=int)
    a.add_argument("text")
    a = csub.add_parser("import", help="import .txt sidecars (no FILE), a .json list or .jsonl")
    a.add_argument("dataset")
    a.add_argument("file", nargs="?")
    a = csub.add_parser("lint", help="check captions against the dataset's rules (exit 1 on errors)")
    a.add_argument("dataset")
    a.add_argument("--json", action="store_true")
    a = csub.add_parser("undo-batch", help="undo a bulk edit or import (default: the last one)")
    a.add_argument("dataset")
    a.add_argument("batch", nargs="?")
    a = csub.add_parser("bulk", help="bulk edit with a preview; --apply writes one undoable batch")
    a.add_argument("dataset")
    a.add_argument("--apply", action="store_true", help="write the changes (default: preview)")
    a.add_argument("--preview", type=int, default=10, help="changes to print (default 10)")
    bsub = a.add_subparsers(dest="op", metavar="OP", required=True)
    b = bsub.add_parser("replace", help="find and replace")
    b.add_argument("find")
    b.add_argument("replacement")
    b.add_argument("--regex", action="store_true")
    b.add_argument("--ignore-case", action="store_true")
    bsub.add_parser("prepend", help="add text at the start").add_argument("text")
    bsub.add_parser("append", help="add text at the end").add_argument("text")
    bsub.add_parser("trigger", help="rename the trigger token, or add it where missing"
                    ).add_argument("token")
    bsub.add_parser("template", help="seed uncaptioned clips with the template")
    p.set_defaults(func=cmd_captions)


def add_dataset_actions(dsub) -> None:
    """`lorad dataset rules|check|export` (dispatched by cli_datasets.cmd_dataset)."""
    p = dsub.add_parser("rules", help="a dataset's caption rules, eval prompts and split")
    p.add_argument("name")
    p.add_argument("--trigger")
    p.add_argument("--trigger-position", choices=["start", "anywhere"])
    p.add_argument("--template", help='e.g. "[color] [make] pickup parked [setting], ..."')
    p.add_argument("--min-words", type=int)
    p.add_argument("--max-words", type=int)
    p.add_argument("--ban", action="append", metavar="WORD", help="banned word (repeatable)")
    p.add_argument("--allow", action="append", metavar="WORD", help="unban a word")
    p.add_argument("--negative-prompt")
    p.add_argument("--eval-prompt", action="append", help="sample prompt (repeatable)")
    p.add_argument("--clear-eval-prompts", action="store_true")
    p.add_argument("--prompt-template", help="for `lorad gen --fill` (default: the caption "
                                              "template), e.g. '[color] [make] parked [setting]'")
    p.add_argument("--checklist", action="append", metavar="TAG",
                   help="a flaw to tag generations with when rating, e.g. 'spinning tires'")
    p.add_argument("--clear-checklist", action="store_true")
    p.add_argument("--validation", type=float, help="share of clips held out, e.g. 0.1")

    p = dsub.add_parser("check", help="preflight a dataset before export/training (exit 1 on errors)")
    p.add_argument("name")
    p.add_argument("--validation", type=float)
    p.add_argument("--json", action="store_true")

    p = dsub.add_parser("export", help="freeze a dataset version into a musubi-tuner folder")
    p.add_argument("name")
    p.add_argument("--remote-root", help="path of the folder on the pod "
                                         "(default /workspace/lorad/NAME/HASH)")
    p.add_argument("--jsonl", action="store_true", help="also write train.jsonl and use it")
    p.add_argument("--validation", type=float, help="share of clips held out")
    p.add_argument("--force", action="store_true", help="export despite preflight errors")
    p.add_argument("--json", action="store_true")
