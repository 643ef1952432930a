"""`lorad gen`: queue generations with a LoRA (the daemon submits them)."""

from __future__ import annotations

import argparse
import random

from lorad.cli.common import EXIT_OK, CliError, key_values, opened

DEFAULT_ENDPOINT = "fal-ai/wan/v2.2-a14b/text-to-video/lora"


def add_parser(sub) -> None:
    p = sub.add_parser("gen", help="generate with a LoRA on fal (queued; the daemon submits)")
    p.add_argument("prompt", nargs="?", help="default: the --dataset's eval prompts")
    p.add_argument("--dataset", help="use this dataset's negative prompt (and eval prompts)")
    p.add_argument("--fill", action="append", metavar="SLOT=TEXT",
                   help="fill the dataset's prompt template, e.g. --fill color=red")
    p.add_argument("--lora")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--service", choices=["fal", "pod"],
                   help="pod: run the checkpoint's trainer's inference command on a pod "
                        "(declared in [trainers.NAME.inference]); needs --checkpoint")
    p.add_argument("--checkpoint", help="a checkpoint (id or file name) to evaluate on a pod")
    p.add_argument("--pod", help="the pod to run it on (default: where its run trained)")
    p.add_argument("--seed", type=int, help="first seed (default: random)")
    p.add_argument("--count", type=int, default=1)
    request_options(p)
    p.set_defaults(func=run)


def request_options(p) -> None:
    """What `gen` and `sweep` both send: endpoint, negative prompt, parameters, images."""
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT,
                   help=f"the service's endpoint (default {DEFAULT_ENDPOINT}; an unknown one "
                        "is refused with the list)")
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="endpoint parameter, e.g. --param aspect_ratio=9:16")
    p.add_argument("--image", metavar="PATH", help="image-to-video: a local start image "
                                                   "(uploaded to fal's storage by the daemon)")
    p.add_argument("--end-image", metavar="PATH", help="image-to-video: a local end image")
    p.add_argument("--check-profile", choices=["quality", "smoke"],
                   help="output checks (default: [generations] check_profile): smoke does not "
                        "flag frozen clips")
    p.add_argument("--min-frame-diff", type=float, metavar="X",
                   help="flag as frozen below this mean frame difference (0-1)")


def check_settings(args) -> dict:
    """--check-profile / --min-frame-diff: the output checks this run asks for."""
    out: dict = {}
    if args.check_profile:
        out["check_profile"] = args.check_profile
    if args.min_frame_diff is not None:
        if not 0 <= args.min_frame_diff <= 1:
            raise CliError("--min-frame-diff is a fraction of the full range, 0 to 1 (the "
                           "quality profile uses 0.003)")
        out["min_frame_diff"] = args.min_frame_diff
    return out


def extra_params(args) -> dict:
    extra = key_values(args.param, "--param")
    if args.negative:
        extra["negative_prompt"] = args.negative
    return extra


def local_files(args) -> dict:
    """--image / --end-image: local images the job uploads before submitting."""
    files = {}
    if args.image:
        files["image_url"] = args.image
    if args.end_image:
        files["end_image_url"] = args.end_image
    return files


def pod_wanted(args) -> bool:
    return args.service == "pod" or args.endpoint.startswith("pod/")


def on_pod(conn, args) -> tuple[str, dict, int]:
    """(endpoint, parameters, checkpoint id) of a request to a pod command."""
    from lorad.evaluation import requests

    if not args.checkpoint:
        raise CliError("--service pod runs a checkpoint: give --checkpoint ID|FILE (`lorad "
                       "train status RUN --json` lists them)")
    if args.lora:
        raise CliError("--service pod takes --checkpoint, not --lora")
    if args.service == "fal":
        raise CliError(f"{args.endpoint} is a pod command: drop --service fal")
    checkpoint = requests.find_checkpoint(conn, args.checkpoint)
    endpoint = (args.endpoint if args.endpoint.startswith("pod/")
                else requests.endpoint_for(conn, checkpoint))
    params = key_values(args.param, "--param")
    if args.negative:
        raise CliError("--negative: a pod command takes its own parameters (--param NAME=VALUE)")
    return endpoint, requests.pod_request(conn, endpoint, checkpoint, pod_name=args.pod,
                                          params=params), checkpoint.id


def run(args: argparse.Namespace) -> int:
    from lorad.cli.lora import warn_private
    from lorad.core import daemon
    from lorad.generation import generations
    from lorad.generation.endpoints import price_caveat

    with opened(args) as (ws, conn):
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
        endpoint, extra, checkpoint_id = on_pod(conn, args) if pod_wanted(args) else (
            args.endpoint, extra_params(args), None)
        ids = [generations.create(conn, endpoint, prompt, lora=args.lora, scale=args.scale,
                                  seed=s, extra=extra, dataset=args.dataset,
                                  files=local_files(args), checks=check_settings(args),
                                  checkpoint_id=checkpoint_id)
               for prompt in prompts for s in seeds]
        warn_private(conn, [args.lora] if args.lora else [])
        daemon.nudge(ws)
        cost = sum(generations.get(conn, i).cost or 0 for i in ids)
    print(f"{len(ids)} generation(s) queued (ids {', '.join(map(str, ids))}), about ${cost:.2f}"
          f"{price_caveat(endpoint)}")
    return EXIT_OK
