"""`lorad pod add|list|check|trust`: the GPU machines runs train on."""

from __future__ import annotations

import argparse
from pathlib import Path

from lorad.cli.common import EXIT_ERROR, EXIT_OK, key_values, opened, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("pod", help="GPU pods: add, list, check, trust")
    p.set_defaults(func=run, action="list", json=False)
    psub = p.add_subparsers(dest="action", metavar="ACTION")
    a = psub.add_parser("add", help="an SSH host (--host) or a RunPod pod (--runpod-id)")
    a.add_argument("name")
    a.add_argument("--provider", help="who runs the pod (default: runpod with --runpod-id, "
                                      "else ssh; `lorad pod providers` lists them)")
    a.add_argument("--provider-id", help="the pod's id at its provider")
    a.add_argument("--host")
    a.add_argument("--port", type=int, default=22)
    a.add_argument("--user", default="root")
    a.add_argument("--key", help="private key file")
    a.add_argument("--runpod-id", help="RunPod pod id (needs RUNPOD_API_KEY)")
    a.add_argument("--remote-dir", default="/workspace/lorad", help="lorad's folder on the pod")
    a.add_argument("--cost-per-hour", type=float, default=0.0, help="for SSH hosts you pay for")
    a = psub.add_parser("list", help="pods with state, cost and host key")
    a.add_argument("--json", action="store_true")
    a = psub.add_parser("check", help="GPU, disk, Python, the trainer, model files")
    a.add_argument("name")
    a.add_argument("--trainer", help="the trainer to check for (default musubi; `lorad "
                                     "trainers` lists them)")
    a.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a trainer option that says where things are, e.g. musubi_dir=/opt/m")
    a.add_argument("--musubi-dir", help="musubi-tuner's folder (= --set musubi_dir=DIR)")
    a.add_argument("--model", action="append", help="a model file the run needs (repeatable)")
    a.add_argument("--json", action="store_true")
    a = psub.add_parser("trust", help="forget the pinned host key (after re-creating a pod)")
    a.add_argument("name")
    psub.add_parser("providers", help="who can run a pod: plain SSH hosts, RunPod, plugins")


def run(args: argparse.Namespace) -> int:
    actions = {"add": add, "trust": trust, "check": check, "list": list_pods,
               "providers": list_providers}
    with opened(args) as (ws, conn):
        return actions[args.action](args, ws, conn)


def add(args, ws, conn) -> int:
    from lorad.training import pods

    provider = args.provider or ("runpod" if args.runpod_id else "ssh")
    pod = pods.add(conn, args.name, provider=provider, host=args.host, port=args.port,
                   user=args.user, key_file=str(Path(args.key).expanduser()) if args.key else None,
                   provider_id=args.provider_id or args.runpod_id, remote_dir=args.remote_dir,
                   cost_per_hour=args.cost_per_hour)
    print(f"pod {pod.name} added; `lorad pod check {pod.name}` looks at what it has")
    return EXIT_OK


def trust(args, ws, conn) -> int:
    from lorad.training import pods

    pods.trust(conn, args.name)
    print(f"pod {args.name}: host key pin cleared; the next connection pins the new key")
    return EXIT_OK


def check(args, ws, conn) -> int:
    from lorad.core import daemon
    from lorad.training import pods, trainers

    options = key_values(args.set, "--set")
    if args.musubi_dir:
        options["musubi_dir"] = args.musubi_dir
    results = pods.run_checks(conn, pods.get(conn, args.name),
                              trainer=args.trainer or trainers.DEFAULT, options=options,
                              models=args.model)
    if args.json:
        print_json(results)
    else:
        for r in results:
            mark = "ok " if r["ok"] else "FAIL"
            print(f"{mark} {r['check']:<28} {r['detail']}"
                  + (f"\n     fix: {r['fix']}" if r["fix"] else ""))
    daemon.nudge(ws)
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_ERROR


def list_pods(args, ws, conn) -> int:
    from lorad.core import fmt
    from lorad.training import pods

    listed = pods.list_all(conn)
    if args.json:
        print_json([p.__dict__ for p in listed])
        return EXIT_OK
    rows = [[p.name, p.provider, p.state, f"${p.cost_per_hour:.2f}/h",
             f"{p.ssh_user}@{p.ssh_host}:{p.ssh_port}" if p.ssh_host else "-",
             "pinned" if p.host_key else "-", fmt.age(p.last_seen)] for p in listed]
    print(fmt.table(["NAME", "PROVIDER", "STATE", "COST", "SSH", "HOST KEY", "SEEN"], rows)
          if rows else "no pods: `lorad pod add NAME`")
    return EXIT_OK


def list_providers(args, ws, conn) -> int:
    from lorad.training import providers

    for name, p in providers.PROVIDERS.items():
        power = "starts and stops it" if p.can_power_off else "never powers it on or off"
        print(f"{name:10} {p.title}: lorad {power}")
    return EXIT_OK
