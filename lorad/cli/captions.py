"""`lorad captions show|history|undo|set|import|lint|undo-batch|bulk|draft|accept`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lorad.cli.common import EXIT_ERROR, EXIT_OK, CliError, opened, print_json


def add_parser(sub) -> None:
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
    a.add_argument("--allow-drafts", action="store_true",
                   help="do not count captions a model drafted and no person reviewed as errors")
    a.add_argument("--json", action="store_true")
    a = csub.add_parser("draft", help="draft captions with a vision model (priced; --yes sends)")
    a.add_argument("dataset")
    a.add_argument("--service", default="fal", choices=["fal", "pod"],
                   help="where the model runs: fal, or pod (a captioner command declared in "
                        "[captioners.NAME] of lorad.toml, run on --pod)")
    a.add_argument("--model", help="gemini-flash (video, the default), gemini-flash-image "
                                   "(images), marlin (video), or an OpenRouter model id; with "
                                   "--service pod, a declared captioner's NAME")
    a.add_argument("--pod", help="with --service pod: the pod it runs on (default: the only "
                                 "one)")
    which = a.add_mutually_exclusive_group()
    which.add_argument("--only-empty", action="store_true",
                       help="clips with no caption (the default)")
    which.add_argument("--all", action="store_true",
                       help="every clip: a draft goes on top of a person's caption as a new "
                            "version (history keeps theirs)")
    a.add_argument("--clip", type=int, action="append", help="only this clip (repeatable)")
    a.add_argument("--template", help="the caption template for this run (default: the "
                                      "dataset's), e.g. 'TRUCKUGC, [scene], [camera motion]'")
    a.add_argument("--yes", action="store_true", help="send (default: show the plan and price)")
    a.add_argument("--json", action="store_true")
    a = csub.add_parser("accept", help="accept drafted captions as they are (a person's review)")
    a.add_argument("dataset")
    a.add_argument("clips", type=int, nargs="*", help="clip ids (default: none; see --all)")
    a.add_argument("--all", action="store_true", help="every unreviewed draft of the dataset")
    a = csub.add_parser("preset", help="build tracks' tag prompts from a style preset (audio; "
                                       "`lorad presets` lists them)")
    a.add_argument("dataset")
    a.add_argument("preset")
    a.add_argument("clips", type=int, nargs="*", help="clip ids")
    a.add_argument("--all", action="store_true", help="every track of the dataset")
    a = csub.add_parser("lyrics", help="a track's lyrics (audio datasets): show, set, undo")
    a.add_argument("dataset")
    a.add_argument("clip", type=int)
    a.add_argument("text", nargs="?", help="the lyrics ([verse]/[chorus] markers on lines of "
                                           "their own; default [Instrumental])")
    a.add_argument("--file", help="read the lyrics from this file")
    a.add_argument("--undo", action="store_true", help="back one version")
    a.add_argument("--history", action="store_true", help="every version")
    a = csub.add_parser("undo-batch", help="undo a bulk edit or import (default: the last one)")
    a.add_argument("dataset")
    a.add_argument("batch", nargs="?")
    a = csub.add_parser("bulk", help="bulk edit with a preview; --apply writes one undoable batch")
    a.add_argument("dataset")
    _bulk_options(a, apply=False, preview=10)
    # --apply and --preview also go after the operation (`bulk D template --apply`); there
    # they default to nothing, so they never undo the same options given before it
    options = argparse.ArgumentParser(add_help=False)
    _bulk_options(options, apply=argparse.SUPPRESS, preview=argparse.SUPPRESS)
    bsub = a.add_subparsers(dest="op", metavar="OP", required=True)
    b = bsub.add_parser("replace", parents=[options], help="find and replace")
    b.add_argument("find")
    b.add_argument("replacement")
    b.add_argument("--regex", action="store_true")
    b.add_argument("--ignore-case", action="store_true")
    bsub.add_parser("prepend", parents=[options], help="add text at the start"
                    ).add_argument("text")
    bsub.add_parser("append", parents=[options], help="add text at the end").add_argument("text")
    bsub.add_parser("trigger", parents=[options],
                    help="rename the trigger token, or add it where missing").add_argument("token")
    bsub.add_parser("template", parents=[options], help="seed uncaptioned clips with the template")
    bsub.add_parser("shape", parents=[options],
                    help="apply the draft rules ([drafts] strip_phrases, the trigger position, "
                         "max words) to the drafts not reviewed yet")
    p.set_defaults(func=run)


def _bulk_options(parser, *, apply, preview) -> None:
    parser.add_argument("--apply", action="store_true", default=apply,
                        help="write the changes (default: preview)")
    parser.add_argument("--preview", type=int, default=preview,
                        help="changes to print (default 10)")


def run(args: argparse.Namespace) -> int:
    from lorad.media import datasets

    actions = {"set": set_caption, "undo": undo, "show": show, "history": show,
               "import": import_captions, "lint": lint_captions, "undo-batch": undo_batch,
               "bulk": bulk_edit, "accept": accept, "lyrics": lyrics_of, "preset": preset}
    if args.action == "draft":
        from lorad.cli.drafts import draft

        return draft(args)
    with opened(args) as (_ws, conn):
        return actions[args.action](args, conn, datasets.get(conn, args.dataset))


def _clip_in(conn, dataset, clip_id: int):
    from lorad.media import clips

    clip = clips.get(conn, clip_id)
    if clip.dataset_id != dataset.id:
        raise CliError(f"clip {clip_id} is not in dataset {dataset.name}")
    return clip


def preset(args, conn, d) -> int:
    """The preset's tags in front of each track's own (a new caption version), its category
    recorded for the dataset's style balance."""
    from lorad.captions import presets, versions
    from lorad.cli.presets import known
    from lorad.core.store import transaction
    from lorad.media import clips

    found = known(args)
    if args.preset not in found:
        raise CliError(f"no preset {args.preset!r} (known: {', '.join(sorted(found))})")
    chosen = found[args.preset]
    ids = ([c.id for c in clips.list_clips(conn, d.id) if c.state not in ("rejected", "error")]
           if args.all else args.clips)
    if not ids:
        raise CliError("name the tracks (clip ids) or --all")
    with transaction(conn):
        for clip_id in ids:
            _clip_in(conn, d, clip_id)
            now = versions.current(conn, clip_id)
            versions.set_caption(conn, clip_id, presets.apply(now.text if now else "", chosen),
                                 source="template")
            clips.set_track(conn, clip_id, preset=chosen.name, category=chosen.category)
    print(f"{len(ids)} track(s) tagged from {chosen.name} ({chosen.category})")
    return EXIT_OK


def lyrics_of(args, conn, d) -> int:
    from lorad.captions import lyrics
    from lorad.core import fmt

    _clip_in(conn, d, args.clip)
    if args.undo:
        v = lyrics.undo(conn, args.clip)
        print("nothing to undo" if v is None else "lyrics are now:\n" + (v.text or
                                                                         lyrics.INSTRUMENTAL))
        return EXIT_OK
    text = Path(args.file).read_text(encoding="utf-8") if args.file else args.text
    if args.history:
        for v in lyrics.history(conn, args.clip):
            print(f"#{v.id} {fmt.age(v.created_at)} ({v.source})\n{v.text or '(none)'}\n")
        return EXIT_OK
    if text is None:
        print(lyrics.text_of(conn, args.clip))
        return EXIT_OK
    for why in lyrics.problems(text):
        print(f"warning: {why}", file=sys.stderr)
    print("lyrics saved" if lyrics.set_lyrics(conn, args.clip, text) else "lyrics unchanged")
    return EXIT_OK


def set_caption(args, conn, d) -> int:
    from lorad.captions import versions

    _clip_in(conn, d, args.clip)
    print("caption saved" if versions.set_caption(conn, args.clip, args.text)
          else "caption unchanged")
    return EXIT_OK


def undo(args, conn, d) -> int:
    from lorad.captions import versions

    _clip_in(conn, d, args.clip)
    v = versions.undo(conn, args.clip)
    print(f"caption is now: {v.text!r}" if v else "nothing to undo")
    return EXIT_OK


def show(args, conn, d) -> int:
    from lorad.captions import versions
    from lorad.core import fmt

    _clip_in(conn, d, args.clip)
    past = versions.history(conn, args.clip)
    if args.action == "show":
        past = past[-1:]
    if args.json:
        print_json([v.__dict__ for v in past])
        return EXIT_OK
    for v in past:
        print(f"v{v.id} [{v.source}{' ' + v.batch_id if v.batch_id else ''}] "
              f"{fmt.printable(v.text)}")
    if not past:
        print("no caption yet")
    return EXIT_OK


def import_captions(args, conn, d) -> int:
    from lorad.captions import imports
    from lorad.core import fmt

    report = imports.auto(conn, d, Path(args.file) if args.file else None)
    print(f"{report.imported} caption(s) imported, {report.unchanged} unchanged, "
          f"{len(report.unmatched)} entries match no clip")
    for ref in report.unmatched[:20]:
        print(f"  no clip for {fmt.printable(str(ref))}")
    for problem in report.problems:
        print(f"  {problem}")
    if report.batch_id:
        print(f"undo with `lorad captions undo-batch {d.name} {report.batch_id}`")
    return EXIT_OK


def lint_captions(args, conn, d) -> int:
    from lorad.captions import lint, review, versions

    result = review.dataset_captions(conn, d).lint
    drafts = [] if args.allow_drafts else versions.unreviewed_drafts(conn, d.id)
    for clip_id in drafts:  # an error like any other: a model wrote it, no person read it
        result.by_clip.setdefault(clip_id, []).append(lint.Issue(
            "unreviewed_draft", "error", "a model's draft no person has reviewed: accept it "
            f"with `lorad captions accept {d.name} {clip_id}` or y in the Captions screen "
            "(--allow-drafts lets it pass)"))
    if args.json:
        print_json({str(c): [i.__dict__ for i in issues]
                    for c, issues in sorted(result.by_clip.items()) if issues})
    else:
        for clip_id, issues in sorted(result.by_clip.items()):
            for issue in issues:
                print(f"clip {clip_id}: {issue.severity}: {issue.message}")
        counts = result.counts()
        print("summary: " + (", ".join(f"{n} {c}" for c, n in sorted(counts.items()))
                             or "no issues"))
    return EXIT_ERROR if result.clips_with_errors() or drafts else EXIT_OK


def accept(args, conn, d) -> int:
    from lorad.captions import versions

    ids = versions.unreviewed_drafts(conn, d.id) if args.all else list(args.clips)
    if not ids:
        raise CliError("name clip ids, or --all for every unreviewed draft")
    for clip_id in ids:
        _clip_in(conn, d, clip_id)
    accepted = [i for i in ids if versions.accept(conn, i) is not None]
    skipped = len(ids) - len(accepted)
    print(f"{len(accepted)} draft(s) accepted" + (f"; {skipped} clip(s) had no draft to accept"
                                                    if skipped else ""))
    return EXIT_OK


def undo_batch(args, conn, d) -> int:
    from lorad.captions import versions

    batch = args.batch or versions.last_batch(conn, d.id)
    if not batch:
        raise CliError("no bulk edit to undo")
    undone, kept = versions.undo_batch(conn, batch)
    print(f"bulk edit {batch} undone on {undone} clip(s)"
          + (f"; {kept} edited since were kept" if kept else ""))
    return EXIT_OK


def bulk_edit(args, conn, d) -> int:
    from lorad.captions import bulk
    from lorad.core import fmt
    from lorad.media import datasets

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
    elif op == "shape":
        from lorad.captions import shaping
        from lorad.cli.common import workspace

        changes = bulk.shape_drafts(conn, d, shaping.Rules.of(
            d, workspace(args).config()["drafts"]))
    else:
        changes = bulk.apply_template(conn, d)
    for c in changes[:args.preview]:
        print(f"clip {c.clip_id}:\n  - {fmt.printable(c.old)}\n  + {fmt.printable(c.new)}")
    if len(changes) > args.preview:
        print(f"... and {len(changes) - args.preview} more")
    if not args.apply:
        print(f"{len(changes)} caption(s) would change; add --apply to write them")
        return EXIT_OK
    batch = bulk.apply(conn, changes)
    if op == "trigger":
        datasets.set_trigger(conn, d.id, args.token)
    print(f"{len(changes)} caption(s) changed"
          + (f"; undo with `lorad captions undo-batch {d.name} {batch}`" if batch else ""))
    return EXIT_OK
