"""CLI commands for the LoRA registry, generations, sweeps, ratings and publishing."""

from __future__ import annotations

import argparse
import json

from lorad.cli import EXIT_OK, CliError, _print_json, _ws

DEFAULT_ENDPOINT = "fal-ai/wan/v2.2-a14b/text-to-video/lora"


def _extra(args) -> dict:
    extra: dict = {}
    for item in getattr(args, "param", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--param {item!r}: use name=value")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value
    if getattr(args, "negative", None):
        extra["negative_prompt"] = args.negative
    return extra


def _files(args) -> dict:
    """--image / --end-image: local images the job uploads to fal's storage."""
    files = {}
    if getattr(args, "image", None):
        files["image_url"] = args.image
    if getattr(args, "end_image", None):
        files["end_image_url"] = args.end_image
    return files


def _warn_private(conn, names: list[str]) -> None:
    import sys

    from lorad.generation import loras

    for name in dict.fromkeys(names):
        warning = loras.get(conn, name).warning
        if warning:
            print(f"lorad: warning: {warning}", file=sys.stderr)


def cmd_lora(args: argparse.Namespace) -> int:
    from lorad.generation import loras

    ws = _ws(args)
    conn = ws.connect()
    try:
        if args.action == "add":
            lo = loras.add(conn, args.name, args.url, trigger=args.trigger,
                           base_model=args.base_model, expert=args.expert)
            print(f"LoRA {lo.name} registered")
        elif args.action == "show":
            lo = loras.get(conn, args.name)
            _print_json({**lo.__dict__, "lineage": loras.lineage(conn, lo)})
        else:
            listed = loras.list_all(conn)
            if args.json:
                _print_json([lo.__dict__ for lo in listed])
            for lo in [] if args.json else listed:
                print(f"{lo.name:24} {lo.expert or '-':5} {lo.trigger or '-':12} {lo.url}")
            if not listed and not args.json:
                print("no LoRAs: `lorad publish` one, or `lorad lora add NAME URL`")
        return EXIT_OK
    finally:
        conn.close()


def cmd_gen(args: argparse.Namespace) -> int:
    import random

    from lorad.core import daemon
    from lorad.generation import generations

    ws = _ws(args)
    conn = ws.connect()
    try:
        defaults = generations.dataset_defaults(conn, args.dataset)
        if args.fill:
            template = args.prompt or defaults.prompt_template
            if not template:
                raise CliError("--fill needs a template: a PROMPT with [slots], or --dataset D "
                               "with one (`lorad dataset rules D --prompt-template ...`)")
            values = dict(item.partition("=")[::2] for item in args.fill)
            prompts = [generations.fill_template(template, values)]
        else:
            prompts = [args.prompt] if args.prompt else defaults.eval_prompts
        if not prompts:
            raise CliError("give a PROMPT, or --dataset D with eval prompts "
                           "(`lorad dataset rules D --eval-prompt ...`)")
        seeds = [args.seed + i if args.seed is not None else random.randrange(2**31)
                 for i in range(args.count)]
        ids = [generations.create(conn, args.endpoint, prompt, lora=args.lora,
                                  scale=args.scale, seed=s, extra=_extra(args),
                                  dataset=args.dataset, files=_files(args))
               for prompt in prompts for s in seeds]
        _warn_private(conn, [args.lora] if args.lora else [])
        daemon.nudge(ws)
        cost = sum(generations.get(conn, i).cost or 0 for i in ids)
        print(f"{len(ids)} generation(s) queued (ids {', '.join(map(str, ids))}), about "
              f"${cost:.2f}")
        return EXIT_OK
    finally:
        conn.close()


def cmd_sweep(args: argparse.Namespace) -> int:
    from lorad.core import daemon
    from lorad.generation import generations

    ws = _ws(args)
    conn = ws.connect()
    try:
        plan = generations.plan_sweep(conn, args.endpoint, lora_names=args.lora,
                                      scales=args.scale, prompts=args.prompt or [],
                                      seeds=args.seed, extra=_extra(args), dataset=args.dataset,
                                      files=_files(args))
        prompts = len({c["prompt"] for c in plan.cells})
        print(f"sweep {plan.sweep_id}: {len(args.lora)} LoRA(s) x {len(args.scale)} scale(s) x "
              f"{prompts} prompt(s) x {len(args.seed)} seed(s) = {len(plan.cells)} "
              f"generations, about ${plan.cost:.2f}")
        if not args.yes:
            print("add --yes to submit")
            return EXIT_OK
        _warn_private(conn, args.lora)
        generations.submit_sweep(conn, plan, budget=args.budget)
        daemon.nudge(ws)
        print("submitted; rate them in the Generations screen (4)")
        return EXIT_OK
    finally:
        conn.close()


def cmd_generations(args: argparse.Namespace) -> int:
    from lorad.core import daemon, fmt
    from lorad.generation import generations

    ws = _ws(args)
    conn = ws.connect()
    try:
        if args.action in (None, "list"):
            listed = generations.list_all(conn, sweep_id=args.sweep)
            if args.status:
                listed = [g for g in listed if g.status in args.status]
            if args.json:
                _print_json([g.__dict__ for g in listed])
                return EXIT_OK
            rows = [[str(g.id), g.status, (g.sweep_id or "-"), f"{g.scale or '-'}", str(g.seed),
                     f"${g.cost or 0:.2f}", ("ok" if g.checks.get("ok") else
                                             "; ".join(g.checks.get("problems", [])) or "-"),
                     (g.error or g.prompt or "")[:50]] for g in listed]
            print(fmt.table(["ID", "STATUS", "SWEEP", "SCALE", "SEED", "COST", "CHECKS",
                             "PROMPT / ERROR"], rows) if rows else "no generations")
            print(f"spent on generations: ${generations.spent(conn):.2f}")
            return EXIT_OK
        g = generations.get(conn, args.id)
        if args.action == "show":
            events = [dict(r) for r in conn.execute(
                "SELECT status, detail, at FROM generation_events WHERE generation_id = ?"
                " ORDER BY id", (g.id,))]
            _print_json({**g.__dict__, "events": events})
        elif args.action == "cancel":
            print(f"generation {g.id}: {generations.cancel(conn, g.id)}")
        else:  # retake
            new_id = generations.retake(conn, g.id, seed=args.seed, scale=args.scale)
            daemon.nudge(ws)
            print(f"generation {new_id} queued, a retake of {g.id}")
        return EXIT_OK
    finally:
        conn.close()


def cmd_rate(args: argparse.Namespace) -> int:
    from lorad.generation import ratings

    ws = _ws(args)
    conn = ws.connect()
    try:
        if args.action in (None, "rank"):
            ranked = {"checkpoints": ratings.rank_checkpoints(conn),
                      "loras added by URL": ratings.rank_loras(conn)}
            if getattr(args, "json", False):
                _print_json({k: [r.__dict__ for r in v] for k, v in ranked.items()})
                return EXIT_OK
            for title, ranks in ranked.items():
                if not ranks:
                    continue
                print(f"{title} (score: lower bound of the share of good generations)")
                for r in ranks:
                    stars = f"  stars {r.mean_stars:.1f}" if r.mean_stars else ""
                    print(f"  {r.name:36} score {r.score:.2f}  good {r.good}/{r.rated}{stars}")
            if not any(ranked.values()):
                print("nothing rated yet: rate generations with `lorad rate set ID` or on the "
                      "Generations screen (4)")
            return EXIT_OK
        r = ratings.rate(conn, args.generation, stars=args.stars, verdict=args.verdict,
                         tags=args.tag, note=args.note)
        print(f"generation {args.generation}: {r.stars or '-'} stars, {r.verdict or '-'}"
              + (f", tags {', '.join(r.tags)}" if r.tags else ""))
        return EXIT_OK
    finally:
        conn.close()


def cmd_publish(args: argparse.Namespace) -> int:
    from lorad.core import daemon
    from lorad.publish import publishing

    ws = _ws(args)
    conn = ws.connect()
    try:
        job_id = publishing.enqueue(conn, args.checkpoint, args.repo, private=args.private,
                                 convert=not args.no_convert, name=args.name)
        daemon.nudge(ws)
        print(f"publishing to {args.repo} (job {job_id}; `lorad jobs show {job_id}`)")
        if not args.wait:
            return EXIT_OK
        job = _follow(conn, job_id)
        if job.state != "succeeded":
            raise CliError(f"publishing failed: {job.error}")
        result = job.result or {}
        if args.json:
            _print_json(result)
        else:
            print(f"published: {result.get('commit_url')}")
            for path, url in sorted((result.get("files") or {}).items()):
                print(f"  {path:40} {url}")
        return EXIT_OK
    finally:
        conn.close()


def _follow(conn, job_id: int):
    """Wait for a job, printing its progress messages as they change."""
    import time

    from lorad.core import jobs

    shown = None
    while True:
        job = jobs.get(conn, job_id)
        if job.state in ("succeeded", "failed", "cancelled"):
            return job
        message = job.progress_msg or job.state
        if message != shown:
            print(f"  {message}", flush=True)
            shown = message
        time.sleep(0.25)


def _image_args(p) -> None:
    p.add_argument("--image", metavar="PATH", help="image-to-video: a local start image "
                                                   "(uploaded to fal's storage by the daemon)")
    p.add_argument("--end-image", metavar="PATH", help="image-to-video: a local end image")


def add_parsers(sub) -> None:
    from lorad.generation.endpoints import ENDPOINTS

    p = sub.add_parser("lora", help="the LoRA registry: list, add by URL, show with lineage")
    p.set_defaults(func=cmd_lora, action="list", json=False)
    lsub = p.add_subparsers(dest="action", metavar="ACTION")
    a = lsub.add_parser("list")
    a.add_argument("--json", action="store_true")
    a = lsub.add_parser("add", help="register a LoRA by URL")
    a.add_argument("name")
    a.add_argument("url")
    a.add_argument("--trigger")
    a.add_argument("--base-model")
    a.add_argument("--expert", choices=["high", "low", "both"], help="Wan 2.2 expert")
    a = lsub.add_parser("show")
    a.add_argument("name")

    p = sub.add_parser("gen", help="generate with a LoRA on fal (queued; the daemon submits)")
    p.add_argument("prompt", nargs="?", help="default: the --dataset's eval prompts")
    p.add_argument("--dataset", help="use this dataset's negative prompt (and eval prompts)")
    p.add_argument("--fill", action="append", metavar="SLOT=TEXT",
                   help="fill the dataset's prompt template, e.g. --fill color=red")
    p.add_argument("--lora")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, help="first seed (default: random)")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, choices=sorted(ENDPOINTS))
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="endpoint parameter, e.g. --param aspect_ratio=9:16")
    _image_args(p)
    p.set_defaults(func=cmd_gen)

    p = sub.add_parser("generations", aliases=["gens"],
                       help="list, show, cancel or retake generations")
    p.set_defaults(func=cmd_generations, action="list")
    gsub = p.add_subparsers(dest="action", metavar="ACTION")
    for parser in (p, gsub.add_parser("list")):  # `lorad gens` lists, like `lorad gens list`
        parser.add_argument("--sweep", help="only this sweep")
        parser.add_argument("--status", action="append", help="only these (repeatable)")
        parser.add_argument("--json", action="store_true")
    a = gsub.add_parser("show", help="one generation with its parameters and status history")
    a.add_argument("id", type=int)
    a = gsub.add_parser("cancel", help="cancel it (on fal too, if submitted)")
    a.add_argument("id", type=int)
    a = gsub.add_parser("retake", help="the same parameters with a new seed (or --scale)")
    a.add_argument("id", type=int)
    a.add_argument("--seed", type=int)
    a.add_argument("--scale", type=float)

    p = sub.add_parser("sweep", help="LoRAs x scales x prompts x seeds, priced before submitting")
    p.add_argument("--lora", action="append", required=True)
    p.add_argument("--scale", action="append", type=float, required=True)
    p.add_argument("--prompt", action="append", help="repeatable; default: --dataset's eval "
                                                       "prompts")
    p.add_argument("--dataset", help="use this dataset's negative prompt (and eval prompts)")
    p.add_argument("--seed", action="append", type=int, required=True)
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, choices=sorted(ENDPOINTS))
    p.add_argument("--negative")
    p.add_argument("--param", action="append", metavar="NAME=VALUE")
    _image_args(p)
    p.add_argument("--budget", type=float, default=25.0, help="refuse above this ($, default 25)")
    p.add_argument("--yes", action="store_true", help="submit (default: show the plan)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("rate", help="rate a generation, or rank checkpoints by ratings")
    p.set_defaults(func=cmd_rate, action="rank")
    rsub = p.add_subparsers(dest="action", metavar="ACTION")
    a = rsub.add_parser("rank", help="checkpoints (and LoRAs added by URL) by their "
                                     "generations' ratings")
    a.add_argument("--json", action="store_true")
    a = rsub.add_parser("set", help="rate one generation")
    a.add_argument("generation", type=int)
    a.add_argument("--stars", type=int, choices=range(1, 6))
    a.add_argument("--verdict", choices=["approve", "needs_review", "retake"])
    a.add_argument("--tag", action="append")
    a.add_argument("--note")

    p = sub.add_parser("publish", help="upload a checkpoint to the Hugging Face Hub (HF_TOKEN) "
                                       "with a model card, and register it as a LoRA")
    p.add_argument("checkpoint", help="checkpoint id or name, or a .safetensors file")
    p.add_argument("--repo", required=True, help="owner/name on the Hub")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--no-convert", action="store_true",
                   help="upload only musubi-tuner's format (default: also the converted one "
                        "diffusers, ComfyUI and inference services load)")
    p.add_argument("--name", help="LoRA name in the registry (default: the checkpoint's)")
    p.add_argument("--wait", action="store_true", help="follow the upload until it ends")
    p.add_argument("--json", action="store_true", help="with --wait: the result as JSON")
    p.set_defaults(func=cmd_publish)
