"""`lorad sweep`: LoRAs x scales x prompts x seeds, priced before anything is submitted."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, CliError, opened


def add_parser(sub) -> None:
    from lorad.cli.gen import request_options

    p = sub.add_parser("sweep", help="LoRAs x scales x prompts x seeds (or, on a pod, "
                                     "checkpoints x prompts x seeds), priced before submitting")
    p.add_argument("--lora", action="append")
    p.add_argument("--scale", action="append", type=float)
    p.add_argument("--service", choices=["fal", "pod"],
                   help="pod: each --checkpoint through its trainer's inference command on a pod")
    p.add_argument("--checkpoint", action="append",
                   help="with --service pod: a checkpoint (id, file name or RUN:stepN); repeatable")
    p.add_argument("--pod", help="with --service pod: the pod (default: where each trained)")
    p.add_argument("--prompt", action="append", help="repeatable; default: --dataset's eval "
                                                       "prompts")
    p.add_argument("--dataset", help="use this dataset's negative prompt (and eval prompts)")
    p.add_argument("--seed", action="append", type=int, required=True)
    request_options(p)
    p.add_argument("--budget", type=float, default=25.0, help="refuse above this ($, default 25)")
    p.add_argument("--yes", action="store_true", help="submit (default: show the plan)")
    p.set_defaults(func=run)


def pod_plan(conn, args):
    """Checkpoints x prompts x seeds through their trainer's inference command on a pod."""
    from lorad.cli.common import key_values
    from lorad.cli.gen import check_settings
    from lorad.evaluation import requests
    from lorad.generation import generations

    if not args.checkpoint or args.lora:
        raise CliError("a sweep on a pod takes --checkpoint (repeatable), not --lora")
    found = [requests.find_checkpoint(conn, ref) for ref in args.checkpoint]
    endpoint = (args.endpoint if args.endpoint.startswith("pod/")
                else requests.endpoint_for(conn, found[0]))
    params = key_values(args.param, "--param")
    targets = [(c.label, c.id, requests.pod_request(conn, endpoint, c, pod_name=args.pod,
                                                    params=params)) for c in found]
    return generations.plan_checkpoint_sweep(conn, endpoint, checkpoints=targets,
                                             prompts=args.prompt or [], seeds=args.seed,
                                             dataset=args.dataset, checks=check_settings(args))


def run(args: argparse.Namespace) -> int:
    from lorad.cli.gen import check_settings, extra_params, local_files
    from lorad.cli.lora import warn_private
    from lorad.core import daemon
    from lorad.generation import generations
    from lorad.generation.endpoints import price_caveat

    with opened(args) as (ws, conn):
        if args.service == "pod" or args.endpoint.startswith("pod/"):
            plan = pod_plan(conn, args)
            prompts = len({c["prompt"] for c in plan.cells})
            print(f"sweep {plan.sweep_id}: {len(args.checkpoint)} checkpoint(s) x {prompts} "
                  f"prompt(s) x {len(args.seed)} seed(s) = {len(plan.cells)} runs on a pod, "
                  f"about ${plan.cost:.2f}{price_caveat(plan.endpoint_id)}")
        else:
            if not args.lora or not args.scale:
                raise CliError("a sweep needs --lora and --scale (or --service pod with "
                               "--checkpoint)")
            plan = generations.plan_sweep(conn, args.endpoint, lora_names=args.lora,
                                          scales=args.scale, prompts=args.prompt or [],
                                          seeds=args.seed, extra=extra_params(args),
                                          dataset=args.dataset, files=local_files(args),
                                          checks=check_settings(args))
            prompts = len({c["prompt"] for c in plan.cells})
            print(f"sweep {plan.sweep_id}: {len(args.lora)} LoRA(s) x {len(args.scale)} "
                  f"scale(s) x {prompts} prompt(s) x {len(args.seed)} seed(s) = "
                  f"{len(plan.cells)} generations, about ${plan.cost:.2f}"
                  f"{price_caveat(plan.endpoint_id)}")
        if not args.yes:
            print("add --yes to submit")
            return EXIT_OK
        warn_private(conn, args.lora or [])
        generations.submit_sweep(conn, plan, budget=args.budget)
        daemon.nudge(ws)
    print("submitted; rate them in the Generations screen (4)")
    return EXIT_OK
