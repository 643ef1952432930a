"""CLI commands for pods and training runs (`lorad pod ...`, `lorad train ...`)."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from lorad.cli import EXIT_ERROR, EXIT_OK, CliError, _print_json, _ws


def cmd_pod(args: argparse.Namespace) -> int:
    from lorad.core import daemon, fmt
    from lorad.training import pods

    ws = _ws(args)
    conn = ws.connect()
    try:
        if args.action == "add":
            pod = pods.add(conn, args.name, provider="runpod" if args.runpod_id else "ssh",
                           host=args.host, port=args.port, user=args.user,
                           key_file=str(Path(args.key).expanduser()) if args.key else None,
                           provider_id=args.runpod_id, remote_dir=args.remote_dir,
                           cost_per_hour=args.cost_per_hour)
            print(f"pod {pod.name} added; `lorad pod check {pod.name}` looks at what it has")
        elif args.action == "trust":
            pods.trust(conn, args.name)
            print(f"pod {args.name}: host key pin cleared; the next connection pins the new key")
        elif args.action == "check":
            pod = pods.get(conn, args.name)
            with pods.open_shell(conn, pod) as shell:
                results = pods.check(shell, pod.remote_dir, args.musubi_dir, args.model or [])
            pods.update(conn, pod.id, info={r["check"]: r["detail"] for r in results})
            if args.json:
                _print_json(results)
            else:
                for r in results:
                    mark = "ok " if r["ok"] else "FAIL"
                    print(f"{mark} {r['check']:<28} {r['detail']}" + (f"\n     fix: {r['fix']}"
                                                                        if r["fix"] else ""))
            daemon.nudge(ws)
            return EXIT_OK if all(r["ok"] for r in results) else EXIT_ERROR
        else:
            listed = pods.list_all(conn)
            if args.json:
                _print_json([p.__dict__ for p in listed])
            else:
                rows = [[p.name, p.provider, p.state, f"${p.cost_per_hour:.2f}/h",
                         f"{p.ssh_user}@{p.ssh_host}:{p.ssh_port}" if p.ssh_host else "-",
                         "pinned" if p.host_key else "-", fmt.age(p.last_seen)] for p in listed]
                print(fmt.table(["NAME", "PROVIDER", "STATE", "COST", "SSH", "HOST KEY",
                                 "SEEN"], rows) if rows else "no pods: `lorad pod add NAME`")
        return EXIT_OK
    finally:
        conn.close()


def _config_from(args) -> dict:
    data: dict = {}
    if args.config:
        path = Path(args.config)
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        data = data.get("training", data)
    for item in args.set or []:
        key, _, value = item.partition("=")
        if not _:
            raise CliError(f"--set {item!r}: use key=value")
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    return data


def cmd_train(args: argparse.Namespace) -> int:
    from lorad.core import daemon, fmt
    from lorad.media import datasets
    from lorad.training import runs

    ws = _ws(args)
    conn = ws.connect()
    try:
        a = args.action
        if a == "start":
            from lorad.training import pods

            d = datasets.get(conn, args.dataset)
            sql = "SELECT id FROM dataset_versions WHERE dataset_id = ?"
            params: list = [d.id]
            if args.version:
                sql += " AND (content_hash LIKE ? OR CAST(id AS TEXT) = ?)"
                params += [args.version + "%", args.version]
            row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
            if row is None:
                raise CliError(f"dataset {d.name} has no exported version"
                               + (f" matching {args.version}" if args.version else "")
                               + f": `lorad dataset export {d.name}` first")
            pod = pods.get(conn, args.pod)
            run = runs.create(conn, args.name, row["id"], pod.id, _config_from(args),
                              budget=args.budget)
            job = runs.start(conn, run.id)
            daemon.nudge(ws)
            print(f"run {run.name} queued (job {job}); follow it with `lorad train status "
                  f"{run.name}` or the TUI")
            if not daemon.status(ws).running:
                print("the daemon is not running: `lorad daemon start`")
            return EXIT_OK
        if a == "stop":
            run = runs.get(conn, args.name)
            print(f"run {run.name}: {runs.request_stop(conn, run.id)}")
            return EXIT_OK
        if a == "resume":
            run = runs.resume(conn, args.name)
            daemon.nudge(ws)
            if run.name == args.name:
                print(f"run {run.name} continues from stage {run.stage}")
            else:
                print(f"run {run.name} resumes {args.name} from its last saved state (new "
                      "checkpoint names; the loss continues at the right step)")
            return EXIT_OK
        if a == "log":
            run = runs.get(conn, args.name)
            if args.tail or not run.remote_dir:
                print(run.log_tail or "(no log yet)")
                return EXIT_OK
            from lorad.training import train_job
            from lorad.training.trainlog import readable

            text = train_job.full_log(ws, run, args.stage)
            print(text if args.all_progress else "\n".join(readable(text)))
            return EXIT_OK
        listed = [runs.get(conn, args.name)] if args.name else runs.list_all(conn)
        if args.json:
            _print_json([{**r.__dict__, "loss_points": len(runs.loss_points(conn, r.id))}
                         for r in listed])
            return EXIT_OK
        table = [[r.name, r.state, r.stage or "-",
                  f"{r.step or 0}/{r.total_steps or '?'}",
                  f"{r.avr_loss:.4g}" if r.avr_loss is not None else "-",
                  fmt.duration(r.remaining) if r.remaining else "-", (r.error or "")[:60]]
                 for r in listed]
        print(fmt.table(["RUN", "STATE", "STAGE", "STEP", "LOSS", "ETA", "ERROR"], table)
              if table else "no runs: `lorad train start NAME --dataset D --pod P ...`")
        return EXIT_OK
    finally:
        conn.close()


def add_parsers(sub) -> None:
    p = sub.add_parser("pod", help="GPU pods: add, list, check, trust")
    p.set_defaults(func=cmd_pod, action="list", json=False)
    psub = p.add_subparsers(dest="action", metavar="ACTION")
    a = psub.add_parser("add", help="an SSH host (--host) or a RunPod pod (--runpod-id)")
    a.add_argument("name")
    a.add_argument("--host")
    a.add_argument("--port", type=int, default=22)
    a.add_argument("--user", default="root")
    a.add_argument("--key", help="private key file")
    a.add_argument("--runpod-id", help="RunPod pod id (needs RUNPOD_API_KEY)")
    a.add_argument("--remote-dir", default="/workspace/lorad", help="lorad's folder on the pod")
    a.add_argument("--cost-per-hour", type=float, default=0.0, help="for SSH hosts you pay for")
    a = psub.add_parser("list", help="pods with state, cost and host key")
    a.add_argument("--json", action="store_true")
    a = psub.add_parser("check", help="GPU, disk, Python, musubi-tuner, model files")
    a.add_argument("name")
    a.add_argument("--musubi-dir", default="/workspace/musubi-tuner")
    a.add_argument("--model", action="append", help="a model file the run needs (repeatable)")
    a.add_argument("--json", action="store_true")
    a = psub.add_parser("trust", help="forget the pinned host key (after re-creating a pod)")
    a.add_argument("name")

    p = sub.add_parser("train", help="training runs: start, stop, resume, status, log")
    p.set_defaults(func=cmd_train, action="status", name=None, json=False)
    tsub = p.add_subparsers(dest="action", metavar="ACTION")
    a = tsub.add_parser("start", help="train a dataset version on a pod")
    a.add_argument("name", help="run name (names the LoRA files)")
    a.add_argument("--dataset", required=True)
    a.add_argument("--version", help="dataset version id or hash prefix (default: the newest)")
    a.add_argument("--pod", required=True)
    a.add_argument("--config", help="TOML or JSON file of training options ([training] table)")
    a.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a training option, e.g. --set task=t2v-14B --set network_dim=32")
    a.add_argument("--budget", type=float, help="stop the run when its pod cost passes this ($)")
    for name, text in (("stop", "stop a run (its remote process too)"),
                       ("resume", "continue a run where it stopped")):
        tsub.add_parser(name, help=text).add_argument("name")
    a = tsub.add_parser("log", help="the run's log from the pod (progress bars collapsed)")
    a.add_argument("name")
    a.add_argument("--stage", default="train", choices=["latents", "text", "train"])
    a.add_argument("--tail", action="store_true", help="only the last lines lorad kept")
    a.add_argument("--all-progress", action="store_true", help="every progress-bar update")
    a = tsub.add_parser("status", help="runs with stage, step, loss and ETA")
    a.add_argument("name", nargs="?")
    a.add_argument("--json", action="store_true")
