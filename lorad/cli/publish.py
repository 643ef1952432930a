"""`lorad publish`: a checkpoint to the Hugging Face Hub, with a model card."""

from __future__ import annotations

import argparse
import time

from lorad.cli.common import EXIT_OK, CliError, opened, print_json, warn


def add_parser(sub) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lorad.core import daemon
    from lorad.publish import publish_job

    with opened(args) as (ws, conn):
        job_id = publish_job.enqueue(conn, args.checkpoint, args.repo, private=args.private,
                                     convert=not args.no_convert, name=args.name)
        daemon.nudge(ws)
        print(f"publishing to {args.repo} (job {job_id}; `lorad jobs show {job_id}`)")
        if not args.wait:
            return EXIT_OK
        job = follow(conn, job_id)
    if job.state != "succeeded":
        raise CliError(f"publishing failed: {job.error}")
    result = job.result or {}
    if args.json:
        print_json(result)
    else:
        print(f"published: {result.get('commit_url')}")
        for path, url in sorted((result.get("files") or {}).items()):
            print(f"  {path:40} {url}")
        if result.get("notice"):
            warn(result["notice"])
    return EXIT_OK


def follow(conn, job_id: int):
    """Wait for a job, printing its progress messages as they change."""
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
