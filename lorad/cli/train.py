"""`lorad train start|stop|resume|status|log`: training runs."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from lorad.cli.common import EXIT_OK, CliError, key_values, opened, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="training runs: start, stop, resume, status, log")
    p.set_defaults(func=run, action="status", name=None, json=False)
    tsub = p.add_subparsers(dest="action", metavar="ACTION")
    a = tsub.add_parser("start", help="train a dataset version on a pod")
    a.add_argument("name", help="run name (names the LoRA files)")
    a.add_argument("--dataset", required=True)
    a.add_argument("--version", help="dataset version id or hash prefix (default: the newest)")
    a.add_argument("--pod", required=True)
    a.add_argument("--trainer", help="which trainer runs it (default musubi; `lorad trainers` "
                                     "lists them)")
    a.add_argument("--config", help="TOML or JSON file of training options ([training] table)")
    a.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a training option, e.g. --set task=t2v-14B --set network_dim=32")
    a.add_argument("--budget", type=float, help="stop the run when its pod cost passes this ($)")
    tsub.add_parser("stop", help="stop a run (its remote process too)").add_argument("name")
    a = tsub.add_parser("resume", help="continue a run where it stopped, optionally with "
                                       "changed settings")
    a.add_argument("name")
    a.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a training option on the way, e.g. --set learning_rate=1e-4")
    a = tsub.add_parser("log", help="the run's log from the pod (progress bars collapsed)")
    a.add_argument("name")
    a.add_argument("--stage", help="which stage's log (default: the training stage; musubi's "
                                   "are latents, text, train)")
    a.add_argument("--tail", action="store_true", help="only the last lines lorad kept")
    a.add_argument("--all-progress", action="store_true", help="every progress-bar update")
    a = tsub.add_parser("status", help="runs with stage, step, loss and ETA")
    a.add_argument("name", nargs="?")
    a.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    actions = {"start": start, "stop": stop, "resume": resume, "log": show_log,
               "status": status}
    with opened(args) as (ws, conn):
        return actions[args.action](args, ws, conn)


def config_from(args) -> dict:
    """The training options: a --config file's ([training] table or the whole file), then
    each --set on top."""
    data: dict = {}
    if args.config:
        path = Path(args.config)
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        data = data.get("training", data)
    return {**data, **key_values(args.set, "--set")}


def start(args, ws, conn) -> int:
    from lorad.core import daemon
    from lorad.datasets import export
    from lorad.media import datasets
    from lorad.training import pods, runs, trainers

    d = datasets.get(conn, args.dataset)
    version = export.find_version(conn, d, args.version)
    if version is None:
        raise CliError(f"dataset {d.name} has no exported version"
                       + (f" matching {args.version}" if args.version else "")
                       + f": `lorad dataset export {d.name}` first")
    pod = pods.get(conn, args.pod)
    r = runs.create(conn, args.name, version, pod.id, config_from(args),
                    trainer=args.trainer or trainers.DEFAULT, budget=args.budget)
    job = runs.start(conn, r.id)
    daemon.nudge(ws)
    print(f"run {r.name} queued (job {job}); follow it with `lorad train status {r.name}` or "
          "the TUI")
    if not daemon.status(ws).running:
        print("the daemon is not running: `lorad daemon start`")
    return EXIT_OK


def stop(args, ws, conn) -> int:
    from lorad.core import daemon
    from lorad.training import runs

    r = runs.get(conn, args.name)
    outcome = runs.request_stop(conn, r.id)
    if outcome == "stopping" and not daemon.status(ws).running:
        print(f"run {r.name}: stopping when the daemon runs (it stops the run's process on "
              "the pod): `lorad daemon start`")
    else:
        daemon.nudge(ws)
        print(f"run {r.name}: {outcome}")
    return EXIT_OK


def resume(args, ws, conn) -> int:
    from lorad.core import daemon
    from lorad.training import runs

    r = runs.resume(conn, args.name, key_values(args.set, "--set"))
    daemon.nudge(ws)
    if r.name == args.name:
        print(f"run {r.name} continues from stage {r.stage}")
    else:
        print(f"run {r.name} resumes {args.name} from its last saved state (new checkpoint "
              "names; the loss continues at the right step)")
    return EXIT_OK


def show_log(args, ws, conn) -> int:
    from lorad.training import runs, train_job

    r = runs.get(conn, args.name)
    if args.tail or not r.remote_dir:
        print(r.log_tail or "(no log yet)")
        return EXIT_OK
    if args.all_progress:
        print(train_job.full_log(ws, r, args.stage))
    else:
        print("\n".join(train_job.readable_log(ws, r, args.stage)))
    return EXIT_OK


def status(args, ws, conn) -> int:
    from lorad.core import fmt
    from lorad.training import runs

    listed = [runs.get(conn, args.name)] if args.name else runs.list_all(conn)
    evals = {r.id: runs.eval_points(conn, r.id) for r in listed}
    if args.json:
        from lorad.training import checkpoints

        print_json([{**r.__dict__, "loss_points": len(runs.loss_points(conn, r.id)),
                     "eval_losses": evals[r.id],
                     "checkpoints": [{"id": c.id, "name": c.name, "step": c.step,
                                      "epoch": c.epoch, "state": c.state}
                                     for c in checkpoints.for_run(conn, r.id)]}
                    for r in listed])
        return EXIT_OK
    table = [[r.name, r.trainer, r.state, r.stage or "-", f"{r.step or 0}/{r.total_steps or '?'}",
              f"{r.avr_loss:.4g}" if r.avr_loss is not None else "-",
              f"{evals[r.id][-1][1]:.4g}" if evals[r.id] and evals[r.id][-1][1] is not None
              else "-",
              fmt.duration(r.remaining) if r.remaining else "-", (r.error or "")[:50]]
             for r in listed]
    print(fmt.table(["RUN", "TRAINER", "STATE", "STAGE", "STEP", "LOSS", "EVAL", "ETA", "ERROR"],
                    table)
          if table else "no runs: `lorad train start NAME --dataset D --pod P ...`")
    return EXIT_OK
