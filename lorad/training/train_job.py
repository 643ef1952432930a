"""The `train.run` job: upload a dataset version, run the trainer's stages detached on the pod,
and follow the training log until the end, surviving dropped connections and daemon restarts.

The job knows no trainer: the run's trainer (``lorad.training.trainers``) gives the stages, reads
the log and names checkpoints and saved states. Everything the job needs to continue is in the
run row (stage, remote pid, log offset), so a new attempt of the job (after a crash, or a
reconnect budget spent) picks up where the last one stopped: a stage whose exit file exists is
done, a live pid is followed, otherwise the stage is started.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import posixpath
import shlex
import time
from pathlib import Path

from lorad.core import jobs, notify, store
from lorad.core.errors import PermanentError, TransientError, is_transient
from lorad.core.handlers import JobContext, periodic, register
from lorad.datasets import export
from lorad.training import (
    checkpoints,
    gpus,
    logparse,
    pods,
    run_manifest,
    runs,
    samples,
    trainers,
)
from lorad.training.session import Session
from lorad.training.trainers import RunPaths, Stage, Trainer

log = logging.getLogger(__name__)

TAIL_LINES = 30
UPLOAD_SHARE = 0.1  # of the progress bar: upload, then the stages before training
SETUP_SHARE = 0.1


def remote_paths(run: runs.Run, pod: pods.Pod, dataset_root: str) -> RunPaths:
    run_dir = posixpath.join(pod.remote_dir, "runs", run.name)
    return RunPaths(dataset=dataset_root, run=run_dir, output=posixpath.join(run_dir, "output"),
                    logs=posixpath.join(run_dir, "logs"), output_name=run.output_name or run.name,
                    gpus=len(pod.gpus or []) or 1)


LOG_HEAD_BYTES = 1 << 16  # where a trainer prints its schedule (batches per epoch...)


def stage_files(paths: RunPaths, stage: str) -> tuple[str, str]:
    return (posixpath.join(paths.logs, f"{stage}.log"),
            posixpath.join(paths.logs, f"{stage}.exit"))


@register(runs.JOB_KIND, concurrency=8)
async def train_run(ctx: JobContext):
    conn = ctx.conn
    run = runs.get_by_id(conn, ctx.payload["run_id"])
    pod = pods.get_by_id(conn, run.pod_id)
    version = export.get_version(conn, run.dataset_version_id)
    if not version.export_path:
        raise PermanentError(f"run {run.name}: its dataset version has no export folder; run "
                             "`lorad dataset export` first")
    trainer = run.trainer_impl
    paths = remote_paths(run, pod, version.remote_root)
    runs.update(conn, run.id, state="running", started_at=run.started_at or time.time(),
                remote_dir=paths.run)
    ctx.progress(0.0, f"bringing up pod {pod.name}", force=True)
    settings = ctx.ws.config()["training"]
    await asyncio.to_thread(pods.bring_up, ctx.ws, pod.id,
                            timeout=settings["runpod_start_timeout_seconds"],
                            poll=settings["runpod_poll_seconds"])
    session = Session(ctx.ws, pod.id, ctx)
    outcome = "failure"
    try:
        if ctx.cancelled.is_set():  # stopped while it waited: stop what runs on the pod
            raise asyncio.CancelledError
        if run.stage in (None, "upload"):
            await check_gpu(conn, session, run, pod, trainer)
            pod = pods.get_by_id(conn, pod.id)  # the GPUs as found now
            paths = remote_paths(run, pod, version.remote_root)
            runs.update(conn, run.id, stage="upload")
            await upload(ctx, session, Path(version.export_path), paths.dataset)
            first = trainer.stages(run.train_config, paths)[0].name
            runs.update(conn, run.id, stage=first, remote_pid=None)
        await session.call("mkdirs", paths.logs)
        run = runs.get_by_id(conn, run.id)
        if run.parent_run_id and run.stage == trainer.train_stage and not run.remote_pid \
                and not run.resume_from:
            run = await resolve_resume(ctx, session, run, pod, trainer)
        stages = trainer.stages(run.train_config, paths)  # the config as resumed
        if not run.manifest:
            await write_manifest(ctx, session, run, trainer, version, pod, stages)
        order = [s.name for s in stages]
        for n, stage in enumerate(stages):
            run = runs.get_by_id(conn, run.id)
            if run.stage in (runs.PULLING, "done") or (run.stage in order
                                                   and order.index(run.stage) > n):
                continue
            await run_stage(ctx, session, run, stage, paths, trainer, n, len(stages))
            training = stage.name == trainer.train_stage
            runs.update(conn, run.id, stage=order[n + 1] if n + 1 < len(order) else runs.PULLING,
                        remote_pid=None,
                        log_offset=runs.get_by_id(conn, run.id).log_offset if training else 0)
        await pull_samples(ctx, session, run, trainer.sample_dir(paths))
        missing = await wait_for_pulls(ctx, run.id)
        runs.update(conn, run.id, state="succeeded", ended_at=time.time(), stage="done",
                    error=f"{missing} checkpoint(s) could not be pulled: `lorad jobs --kind "
                          "checkpoint.pull --state failed` says why" if missing else None)
        outcome = "finish"
        ctx.progress(1.0, "training finished", force=True)
        return {"run": run.name}
    except asyncio.CancelledError:
        if ctx.cancelled.is_set():
            await stop_and_drain(ctx, session, run.id, trainer, paths)
            runs.update(conn, run.id, state="stopped", ended_at=time.time(),
                        error="stopped by request")
        raise
    except BudgetExceeded as exc:
        await stop_and_drain(ctx, session, run.id, trainer, paths)
        runs.update(conn, run.id, state="stopped", ended_at=time.time(), error=str(exc))
        raise
    except Exception as exc:
        if not is_transient(exc):  # transient: the job retries and the run goes on
            runs.update(conn, run.id, state="failed", ended_at=time.time(), error=str(exc))
        raise
    finally:
        await session.close()
        ended = runs.get_by_id(conn, run.id)
        if ended.state in runs.ENDED:
            done = await asyncio.to_thread(pods.stop_after_run, ctx.ws, pod.id, outcome)
            log.info("run %s ended (%s); pod %s policy: %s", run.name, outcome, pod.name, done)
            await asyncio.to_thread(notify_end, ctx.ws.config(), ended, pod.name, done)


async def check_gpu(conn, session: Session, run: runs.Run, pod: pods.Pod, trainer) -> None:
    """Before anything is uploaded: the pod's GPUs now (a pod never checked, or one whose GPU
    another process took since) against what the trainer needs. What is found is the pod's
    GPUs from now on (a trainer that uses them all launches one process each)."""
    code, out, err = await session.call("run", gpus.QUERY, check=False)
    found = gpus.parse(out) if code == 0 else []
    if found:
        pods.record_gpus(conn, pod.id, found)
    judge = getattr(trainer, "gpu_problem", None)
    count = len(found) if found else len(pod.gpus or []) or 1
    problem = judge(run.config, count) if judge is not None else None
    if problem:
        raise PermanentError(f"pod {pod.name}: {problem}")
    need = trainers.gpu_memory_gb(trainer, run.config)
    if not need:
        return
    short = gpus.shortfall(found, need, trainer.title)
    if short:
        said = "" if code == 0 else f" (nvidia-smi: {(err or out).strip()[:120]})"
        raise PermanentError(f"pod {pod.name}: {short}{said}")


RUN_EVENTS = {"succeeded": ("run_finished", "finished"), "failed": ("run_failed", "failed"),
              "stopped": ("run_stopped", "stopped")}


def notify_end(config, run: runs.Run, pod_name: str, pod_policy: str) -> None:
    event, said = RUN_EVENTS.get(run.state, (None, None))
    if event is None:
        return
    loss = f", loss {run.avr_loss:.4g}" if run.avr_loss is not None else ""
    body = (f"run {run.name} {said} at step {run.step or 0}/{run.total_steps or '?'}{loss}. "
            f"Pod {pod_name}: " + ("left as it is" if pod_policy == "none" else pod_policy)
            + "." + (f"\n{run.error}" if run.error else ""))
    notify.send(config, event, f"lorad: run {run.name} {said}", body)


@periodic
def reconcile(conn) -> None:
    """A run shown queued or running must have a live job following it; otherwise (the job
    failed while the pod was unreachable, or was cancelled behind the run's back) queue a new
    one, which finds the remote process or its exit code and corrects the run."""
    for run in runs.unfollowed(conn):
        log.info("run %s has no live job; following it again", run.name)
        runs.start(conn, run.id)


async def write_manifest(ctx: JobContext, session: Session, run: runs.Run, trainer: Trainer,
                         version, pod: pods.Pod, stages) -> None:
    """Record how the run is made, the trainer's version read on the pod, before it trains."""
    command = trainer.version_command(run.train_config)
    found = None
    if command:
        code, out, _err = await session.call("run", command, check=False)
        found = " ".join(out.split()) or None if code == 0 else None
    manifest = run_manifest.build(run, trainer, found, version, pod, stages)
    folder = ctx.ws.downloads_dir() / run.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    runs.update(ctx.conn, run.id, manifest=manifest)


async def resolve_resume(ctx: JobContext, session: Session, run: runs.Run, pod: pods.Pod,
                         trainer: Trainer) -> runs.Run:
    """Find the parent's last saved state on the pod; the trainer says how to continue from it
    (the rest of the schedule), and the step offset keeps the loss chart at the right step."""
    conn = ctx.conn
    parent = runs.get_by_id(conn, run.parent_run_id)
    version = export.get_version(conn, parent.dataset_version_id)
    out = remote_paths(parent, pod, version.remote_root).output
    states = getattr(trainer, "state_glob", None)
    if states is not None:  # states deeper than the output folder (Lightning's .ckpt files)
        names = [rel for rel in await list_output(session, out) or {}
                 if glob_matches(states, rel)]
    else:
        names = await session.call("listdir", out)
    parent_paths = remote_paths(parent, pod, version.remote_root)
    log_head = await session.call("read_from", stage_files(parent_paths, trainer.train_stage)[0],
                                  0, LOG_HEAD_BYTES)
    plan = trainer.resume(run.train_config, parent.train_config, out, names,
                          parent.output_name or parent.name, parent.total_steps,
                          log_head=(log_head or b"").decode("utf-8", "replace"))
    if plan is None:
        raise PermanentError(f"run {parent.name} saved no state {trainer.title} can resume from "
                             f"on the pod ({out}); start a new run instead")
    offset = parent.step_offset + plan.done_steps
    runs.update(conn, run.id, config=plan.config, step_offset=offset, resume_from=plan.state)
    ctx.progress(0.2, f"resuming {parent.name} from {posixpath.basename(plan.state)} (step "
                      f"{offset})", force=True)
    return runs.get_by_id(conn, run.id)


async def upload(ctx: JobContext, session: Session, export_dir: Path, remote_root: str) -> None:
    """Send the export folder (skipping identical files, resuming broken ones, verified)."""
    files = sorted(p for p in export_dir.rglob("*") if p.is_file())
    pairs = [(p, posixpath.join(remote_root, p.relative_to(export_dir).as_posix()))
             for p in files]
    ctx.progress(0.01, f"uploading {len(pairs)} files", force=True)

    def report(done, total):
        ctx.progress(min(0.99, done / total if total else 1) * UPLOAD_SHARE, "uploading dataset")

    await session.call("upload_tree", pairs, report)


async def pull_samples(ctx: JobContext, session: Session, run: runs.Run,
                       remote: str | None) -> list[Path]:
    """Sample videos/images the trainer wrote during training come down with the run."""
    if remote is None:
        return []
    local_dir = ctx.ws.downloads_dir() / run.name / "sample"
    pulled = []
    for name in await session.call("listdir", remote):
        target = local_dir / name
        if not target.exists():
            await session.call("download", posixpath.join(remote, name), target)
        pulled.append(target)
    return pulled


def full_log(ws, run: runs.Run, stage: str | None = None, limit: int = 8 << 20) -> str:
    """The whole remote log of a stage, by default the training one (blocking: CLI, or a TUI
    worker thread)."""
    stage = stage or run.trainer_impl.train_stage
    conn = ws.connect()
    try:
        pod = pods.get_by_id(conn, run.pod_id)
        with pods.open_shell(conn, pod) as shell:
            data = shell.read_from(posixpath.join(run.remote_dir or "", "logs", f"{stage}.log"),
                                   0, limit)
    finally:
        conn.close()
    return data.decode("utf-8", errors="replace")


async def wait_for_pulls(ctx: JobContext, run_id: int, every: float = 1.0) -> int:
    """A run is done when its checkpoints are here: until their pulls end it stays running
    ("pulling checkpoints (2 of 4)"), so nothing notifies or stops the pod before. Returns
    how many could not be pulled."""
    conn = ctx.conn
    while True:
        saved = checkpoints.for_run(conn, run_id)
        here = sum(1 for c in saved if c.state == "local")
        if not checkpoints.pulls_pending(conn, [run_id]):
            return len(saved) - here
        ctx.progress(0.99, f"pulling checkpoints ({here} of {len(saved)})")
        await ctx.pause(every)
        if ctx.cancelled.is_set() or ctx.stopping.is_set():
            raise asyncio.CancelledError


def readable_log(ws, run: runs.Run, stage: str | None = None) -> list[str]:
    """The stage's log for people: progress updates collapsed as the run's trainer reads them."""
    return logparse.readable(full_log(ws, run, stage),
                             parser_for(run.trainer_impl, run, 0).events_in)


async def stop_remote(session: Session, run: runs.Run) -> None:
    if run.remote_pid:
        try:
            await session.call("kill_group", run.remote_pid)
        except TransientError:
            log.warning("run %s: could not reach the pod to stop pid %s", run.name,
                        run.remote_pid)


async def stop_and_drain(ctx: JobContext, session: Session, run_id: int, trainer: Trainer,
                         paths: RunPaths, patience: float = 5.0) -> None:
    """Stop the remote process, then read what it printed up to its end, so every step it
    reached is stored (a stopped run lost its last second of progress: 236 steps printed,
    231 stored, and a state saved past the last stored step)."""
    run = runs.get_by_id(ctx.conn, run_id)
    await stop_remote(session, run)
    if run.stage != trainer.train_stage or not run.remote_pid:
        return
    try:
        deadline = time.monotonic() + patience
        while await session.call("alive", run.remote_pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        log_path, _exit = stage_files(paths, run.stage)
        rest = await session.call("read_from", log_path, run.log_offset)
        if rest:  # the last line may lack its end (a progress bar): end it
            parser = parser_for(trainer, run, run.log_offset)
            record_events(ctx.conn, run, parser.feed(rest + b"\n"), trainer)
        await find_checkpoints(ctx.conn, session, run, trainer, paths)
    except (TransientError, OSError) as exc:
        log.warning("run %s: could not read the end of its log after the stop: %s", run.name,
                    exc)


async def run_stage(ctx: JobContext, session: Session, run: runs.Run, stage: Stage,
                    paths: RunPaths, trainer: Trainer, index: int, count: int) -> None:
    conn = ctx.conn
    training = stage.name == trainer.train_stage
    log_path, exit_path = stage_files(paths, stage.name)
    code = await session.call("exit_code", exit_path)
    if code is None and not (run.remote_pid and await session.call("alive", run.remote_pid)):
        pid = await session.call("start_detached", stage.cwd, stage.command, log=log_path,
                                 exit_file=exit_path, env=stage.env)
        runs.update(conn, run.id, remote_pid=pid, stage=stage.name,
                    log_offset=0 if training else run.log_offset)
        run = runs.get_by_id(conn, run.id)
    base = UPLOAD_SHARE + SETUP_SHARE * (1 if training else index / max(1, count - 1))
    ctx.progress(base, stage.label, force=True)
    parser = parser_for(trainer, run, run.log_offset if training else 0)
    tail: list[str] = []
    offset = parser.offset  # bytes handed to the parser; it persists only complete lines
    next_listing = time.monotonic() + LIST_EVERY_SECONDS
    while True:
        data = await session.call("read_from", log_path, offset)
        if data:
            offset += len(data)
            events = parser.feed(data)
            tail = logparse.as_terminal(tail, data.decode("utf-8", errors="replace"),
                                        TAIL_LINES)
            if training:
                await apply_events(ctx, session, run, events, trainer, stage, base)
                runs.update(conn, run.id, log_offset=parser.offset, log_tail="\n".join(tail))
        code = await session.call("exit_code", exit_path)
        if code is None:  # a finished stage is not stopped by a budget met while unreachable
            check_budget(conn, runs.get_by_id(conn, run.id))
        if code is None and not await session.call("alive", runs.get_by_id(conn, run.id)
                                                   .remote_pid or 0):
            # gone without writing its exit code: killed (OOM killer, a reboot, by hand)
            code = await session.call("exit_code", exit_path)  # it may have just finished
            if code is None:
                raise PermanentError(f"{stage.label}: the process on the pod is gone without "
                                     "an exit code (killed?). Last lines:\n"
                                     + "\n".join(tail)[-1500:])
        if code is not None:
            rest = await session.call("read_from", log_path, offset)
            if rest and training:
                await apply_events(ctx, session, run, parser.feed(rest), trainer, stage, base)
                runs.update(conn, run.id, log_offset=parser.offset)
            if training:
                await find_checkpoints(conn, session, run, trainer, paths)
            text = "\n".join(tail)
            reason = stage_problem(trainer, stage.name, code, text)
            if reason:
                raise PermanentError(f"{stage.label} failed: {reason}. Last lines:\n"
                                     f"{text[-1500:]}")
            return
        if training and time.monotonic() >= next_listing:
            await find_checkpoints(conn, session, run, trainer, paths)
            next_listing = time.monotonic() + LIST_EVERY_SECONDS
        try:
            await asyncio.wait_for(ctx.cancelled.wait(), session.poll_seconds)
        except TimeoutError:
            pass
        if ctx.cancelled.is_set():
            raise asyncio.CancelledError


def parser_for(trainer: Trainer, run: runs.Run, offset: int) -> logparse.LineParser:
    """The trainer's log parser; one that needs the run's settings to count steps (Lightning's
    bar counts batches of the epoch) gets them (`config_parser(config, offset)`)."""
    with_config = getattr(trainer, "config_parser", None)
    if with_config is not None:
        return with_config(run.train_config, offset)
    return trainer.parser(offset)


LIST_EVERY_SECONDS = 10.0  # checkpoints found by a glob: one listing this often, and at the end


def stage_problem(trainer: Trainer, stage: str, code: int, log_tail: str) -> str | None:
    """Why a stage that ended failed (None: it succeeded); the trainer may say otherwise than
    "any exit code but 0" (declared exit codes, a success marker)."""
    judge = getattr(trainer, "stage_problem", None)
    if judge is not None:
        return judge(stage, code, log_tail)
    if code != 0:
        return trainer.failure_reason(log_tail) or f"exit code {code}"
    return None


def glob_matches(pattern: str, path: str) -> bool:
    """`path` matches the glob `pattern` folder by folder (`*` never crosses a `/`; a `**`
    folder stands for any number of folders)."""
    return _match(pattern.split("/"), path.split("/"))


def _match(parts: list[str], names: list[str]) -> bool:
    if not parts:
        return not names
    if parts[0] == "**":
        return any(_match(parts[1:], names[n:]) for n in range(len(names) + 1))
    return bool(names) and fnmatch.fnmatchcase(names[0], parts[0]) and _match(parts[1:],
                                                                             names[1:])


async def list_output(session: Session, output: str) -> dict[str, int] | None:
    """Every file under a run's output folder (relative path -> size); None while there is
    no such folder."""
    code, out, _err = await session.call(
        "run", f"cd {shlex.quote(output)} 2>/dev/null && find . -type f -printf '%s %p\\n'",
        check=False)
    if code != 0:
        return None
    sizes = {}
    for line in out.splitlines():
        size, _, name = line.partition(" ")
        if name.startswith("./") and size.isdigit():
            sizes[name[2:]] = int(size)
    return sizes


async def find_checkpoints(conn, session: Session, run: runs.Run, trainer: Trainer,
                           paths: RunPaths) -> None:
    """What a trainer's log does not name, found by its globs in the output folder (one
    listing): checkpoints (a file still being written is pulled once whole), TensorBoard
    event files, the samples it makes by itself."""
    checkpoint_glob = getattr(trainer, "checkpoint_glob", None)
    scalar_glob = getattr(trainer, "scalar_glob", None)
    sample_glob = getattr(trainer, "sample_glob", None)
    if checkpoint_glob is None and scalar_glob is None and sample_glob is None:
        return
    sizes = await list_output(session, paths.output)
    if sizes is None:
        return  # no output folder yet
    if scalar_glob is not None:
        await read_scalar_files(conn, session, run, trainer, paths, sizes, scalar_glob)
    if checkpoint_glob is not None:
        marked = sorted(((trainer.checkpoint_mark(rel, run.output_name), rel) for rel in sizes
                         if glob_matches(checkpoint_glob, rel)),
                        key=lambda m: (m[0][0] is None, m[0][0] or 0, m[1]))  # in step order
        naming = getattr(trainer, "checkpoint_name", None)
        with store.transaction(conn):
            for (step, epoch), rel in marked:
                name = naming(rel, run.output_name) if naming else None
                checkpoints.record(conn, run.id, posixpath.join(paths.output, rel), step=step,
                                   epoch=epoch, name=name or rel.replace("/", "-"))
    if sample_glob is not None:  # after the checkpoints: a sample joins the one of its step
        await pull_train_samples(conn, session, run, trainer, paths, sorted(sizes),
                                 sample_glob)


async def pull_train_samples(conn, session: Session, run: runs.Run, trainer: Trainer,
                             paths: RunPaths, found: list[str], pattern: str) -> None:
    """What the trainer made by itself at a step (ACE-Step's eval audio) comes down under
    downloads/RUN/samples/ and is recorded; the `training.samples` job makes each a rateable
    generation of the checkpoint saved at that step."""
    have = samples.known(conn, run.id)
    new = [rel for rel in found if glob_matches(pattern, rel)
           and posixpath.join(paths.output, rel) not in have]
    for rel in new:
        remote = posixpath.join(paths.output, rel)
        local = Path(session.ws.downloads_dir()) / run.name / "samples" / rel.replace("/", "-")
        try:
            await session.call("download", remote, local)
        except (TransientError, OSError) as exc:  # still being written: next listing
            log.info("run %s: sample %s not pulled this time: %s", run.name, rel, exc)
            continue
        step, prompt = trainer.sample_mark(rel)
        samples.record(conn, run.id, remote, local, step=step, name=local.name, prompt=prompt)
    if new:
        jobs.enqueue(conn, samples.REGISTER_KIND, {"run_id": run.id})


async def read_scalar_files(conn, session: Session, run: runs.Run, trainer: Trainer,
                            paths: RunPaths, sizes: dict[str, int], pattern: str) -> None:
    """A trainer whose eval loss is only in TensorBoard event files: what each file gained
    since the last listing is appended to its copy under downloads/RUN/tensorboard/ (a
    TensorBoard file only grows; its records carry their own CRC), and the trainer reads the
    new events (`read_scalars` keeps its place in a file it read before)."""
    folder = Path(session.ws.downloads_dir()) / run.name / "tensorboard"
    folder.mkdir(parents=True, exist_ok=True)
    for rel, size in sorted(sizes.items()):
        if not glob_matches(pattern, rel):
            continue
        local = folder / rel.replace("/", "-")
        have = local.stat().st_size if local.exists() else 0
        if have > size:  # not the file we copied (the pod's output was made again)
            local.unlink()
            have = 0
        if have == size:
            continue
        remote = posixpath.join(paths.output, rel)
        try:
            while have < size:
                chunk = await session.call("read_from", remote, have, size - have)
                if not chunk:
                    break
                with local.open("ab") as fh:
                    fh.write(chunk)
                have += len(chunk)
        except (TransientError, OSError) as exc:  # what came is kept; the rest next time
            log.info("run %s: %s not read to its end this time: %s", run.name, rel, exc)
        events = await asyncio.to_thread(trainer.read_scalars, local)
        record_events(conn, runs.get_by_id(conn, run.id), events, trainer)


def check_budget(conn, run: runs.Run) -> None:
    if run.budget is not None and runs.cost(conn, run).spent > run.budget:
        raise BudgetExceeded(f"budget ${run.budget:.2f} reached: the run was stopped (raise it "
                             f"with a new run, or resume with `lorad train resume {run.name}`)")


class BudgetExceeded(PermanentError):
    pass


def record_events(conn, run: runs.Run, events: list, trainer: Trainer, *,
                  stop_at_nan: bool = False) -> tuple[logparse.Progress | None, int | None]:
    """Store what the log said: loss points, totals, epoch, checkpoints (their pulls queued),
    the latest figures. Returns the last progress and, with `stop_at_nan`, the step whose loss
    became NaN (nothing after it is stored)."""
    now = time.time()
    last: logparse.Progress | None = None
    nan_step = None
    points: list[tuple[int, float | None]] = []
    evals: list[tuple[int, float | None]] = []
    with store.transaction(conn):
        for event in events:
            if isinstance(event, logparse.Progress):
                if event.step > 0:
                    points.append((event.step, event.avr_loss))
                last = event
                if stop_at_nan and logparse.is_nan(event.avr_loss):
                    nan_step = event.step
                    break
            elif isinstance(event, logparse.EvalLoss):
                evals.append((event.step, event.loss))
            elif isinstance(event, logparse.TotalSteps):
                runs.update(conn, run.id, total_steps=event.total)
            elif isinstance(event, logparse.Epoch):
                runs.update(conn, run.id, epoch=event.epoch)
            elif isinstance(event, logparse.Checkpoint):
                step, epoch = trainer.checkpoint_mark(posixpath.basename(event.path),
                                                      run.output_name)
                checkpoints.record(conn, run.id, event.path, step=step, epoch=epoch)
        runs.add_losses(conn, run, points, now)
        if evals:
            runs.add_eval_losses(conn, run, evals, now)
        if last is not None:
            figures = {"step": last.step, "rate": last.rate, "remaining": last.remaining,
                       "avr_loss": None if logparse.is_nan(last.avr_loss) else last.avr_loss}
            if last.total:  # a trainer that prints no total said it once (TotalSteps)
                figures["total_steps"] = last.total
            runs.update(conn, run.id, **figures)
    return last, nan_step


async def apply_events(ctx: JobContext, session: Session, run: runs.Run, events: list,
                       trainer: Trainer, stage: Stage, base: float) -> None:
    conn = ctx.conn
    last, nan_step = record_events(conn, run, events, trainer,
                                   stop_at_nan=not stage.env.get("LORAD_ALLOW_NAN"))
    total = (last.total or runs.get_by_id(conn, run.id).total_steps) if last else None
    if last is not None and total:
        ctx.progress(base + (1 - base) * min(1.0, last.step / total),
                     f"step {last.step}/{total}, loss {last.avr_loss}")
    if nan_step is not None:
        await stop_remote(session, runs.get_by_id(conn, run.id))
        raise PermanentError(f"loss became NaN at step {nan_step}: training stopped (lower the "
                             "learning rate, or check the dataset for broken clips)")

