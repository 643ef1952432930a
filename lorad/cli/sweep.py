"""`lorad sweep`: LoRAs x scales x prompts x seeds, priced before anything is submitted."""

from __future__ import annotations

import argparse

from lorad.cli.common import EXIT_OK, opened


def add_parser(sub) -> None:
    from lorad.cli.gen import request_options

    p = sub.add_parser("sweep", help="LoRAs x scales x prompts x seeds, priced before submitting")
    p.add_argument("--lora", action="append", required=True)
    p.add_argument("--scale", action="append", type=float, required=True)
    p.add_argument("--prompt", action="append", help="repeatable; default: --dataset's eval "
                                                       "prompts")
    p.add_argument("--dataset", help="use this dataset's negative prompt (and eval prompts)")
    p.add_argument("--seed", action="append", type=int, required=True)
    request_options(p)
    p.add_argument("--budget", type=float, default=25.0, help="refuse above this ($, default 25)")
    p.add_argument("--yes", action="store_true", help="submit (default: show the plan)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.cli.gen import check_settings, extra_params, local_files
    from lorad.cli.lora import warn_private
    from lorad.core import daemon
    from lorad.generation import generations
    from lorad.generation.endpoints import price_caveat

    with opened(args) as (ws, conn):
        plan = generations.plan_sweep(conn, args.endpoint, lora_names=args.lora,
                                      scales=args.scale, prompts=args.prompt or [],
                                      seeds=args.seed, extra=extra_params(args),
                                      dataset=args.dataset, files=local_files(args),
                                      checks=check_settings(args))
        prompts = len({c["prompt"] for c in plan.cells})
        print(f"sweep {plan.sweep_id}: {len(args.lora)} LoRA(s) x {len(args.scale)} scale(s) x "
              f"{prompts} prompt(s) x {len(args.seed)} seed(s) = {len(plan.cells)} "
              f"generations, about ${plan.cost:.2f}{price_caveat(plan.endpoint_id)}")
        if not args.yes:
            print("add --yes to submit")
            return EXIT_OK
        warn_private(conn, args.lora)
        generations.submit_sweep(conn, plan, budget=args.budget)
        daemon.nudge(ws)
    print("submitted; rate them in the Generations screen (4)")
    return EXIT_OK
