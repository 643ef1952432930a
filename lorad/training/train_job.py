"""The `train.run` job: upload a dataset version, run musubi-tuner's three stages detached on the
pod, and follow the training log until the end, surviving dropped connections and daemon
restarts.

Everything the job needs to continue is in the run row (stage, remote pid, log offset), so a
new attempt of the job (after a crash, or a reconnect budget spent) picks up where the last one
stopped: a stage whose exit file exists is done, a live pid is followed, otherwise the stage is
started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import time
from pathlib import Path

from lorad.core import jobs, store
from lorad.core.errors import PermanentError, TransientError, is_transient
from lorad.core.handlers import JobContext, periodic, register
from lorad.training import pods, runs, trainconfig, trainlog
from lorad.training.ssh import Shell, SshUnavailable

log = logging.getLogger("lorad.training.train_job")

TAIL_LINES = 30


def remote_layout(run: runs.Run, pod: pods.Pod, manifest: dict) -> dict[str, str]:
    root = manifest["remote_root"]
    run_dir = posixpath.join(pod.remote_dir, "runs", run.name)
    return {"dataset": root, "run": run_dir, "output": posixpath.join(run_dir, "output"),
            "logs": posixpath.join(run_dir, "logs"),
            "toml": posixpath.join(root, "dataset.toml"),
            "prompts": posixpath.join(root, "sample_prompts.txt")}


def stage_files(layout: dict[str, str], stage: str) -> tuple[str, str]:
    return (posixpath.join(layout["logs"], f"{stage}.log"),
            posixpath.join(layout["logs"], f"{stage}.exit"))


class Session:
    """A shell that reconnects with backoff; SSH work runs in a thread, off the event loop."""

    def __init__(self, ws, pod_id: int, ctx: JobContext) -> None:
        self.ws = ws
        self.pod_id = pod_id
        self.ctx = ctx
        self.shell: Shell | None = None
        settings = ws.config()["training"]
        self.poll_seconds = settings["poll_seconds"]
        self.reconnect_budget = settings["reconnect_budget_seconds"]

    def _open(self) -> Shell:
        conn = self.ws.connect()
        try:
            return pods.open_shell(conn, pods.get_by_id(conn, self.pod_id))
        finally:
            conn.close()

    async def call(self, fn_name: str, *args, **kw):
        delay, spent = 1.0, 0.0
        while True:
            try:
                if self.shell is None:
                    self.shell = await asyncio.to_thread(self._open)
                return await asyncio.to_thread(getattr(self.shell, fn_name), *args, **kw)
            except SshUnavailable as exc:
                if self.shell is not None:
                    await asyncio.to_thread(self.shell.close)
                    self.shell = None
                if spent >= self.reconnect_budget:
                    raise TransientError(f"pod unreachable for {spent:.0f} s: {exc}") from None
                self.ctx.progress(None, f"connection lost, reconnecting in {delay:.0f} s: {exc}",
                                  force=True)
                await asyncio.sleep(delay)
                spent += delay
                delay = min(delay * 2, 30.0)

    async def close(self) -> None:
        if self.shell is not None:
            await asyncio.to_thread(self.shell.close)
            self.shell = None


@register(runs.JOB_KIND, concurrency=8)
async def train_run(ctx: JobContext):
    conn = ctx.conn
    run = runs.get_by_id(conn, ctx.payload["run_id"])
    pod = pods.get_by_id(conn, run.pod_id)
    version = conn.execute("SELECT manifest, export_path FROM dataset_versions WHERE id = ?",
                           (run.dataset_version_id,)).fetchone()
    if version is None or not version["export_path"]:
        raise PermanentError(f"run {run.name}: its dataset version has no export folder; run "
                             "`lorad dataset export` first")
    manifest = json.loads(version["manifest"])
    layout = remote_layout(run, pod, manifest)
    cfg = run.train_config
    runs.update(conn, run.id, state="running", started_at=run.started_at or time.time(),
                remote_dir=layout["run"])
    ctx.progress(0.0, f"bringing up pod {pod.name}", force=True)
    settings = ctx.ws.config()["training"]
    await asyncio.to_thread(pods.bring_up, ctx.ws, pod.id,
                            timeout=settings["runpod_start_timeout_seconds"],
                            poll=settings["runpod_poll_seconds"])
    session = Session(ctx.ws, pod.id, ctx)
    outcome = "failure"
    try:
        if run.stage in (None, "upload"):
            runs.update(conn, run.id, stage="upload")
            await upload(ctx, session, Path(version["export_path"]), layout["dataset"])
            runs.update(conn, run.id, stage="latents", remote_pid=None)
        await session.call("mkdirs", layout["logs"])
        if run.parent_run_id and run.stage == "train" and not run.remote_pid \
                and "--resume" not in cfg.extra_args:
            cfg = await resolve_resume(ctx, session, run, pod, manifest)
            run = runs.get_by_id(conn, run.id)
        commands = trainconfig.stage_commands(
            cfg, dataset_config=layout["toml"], output_dir=layout["output"],
            output_name=run.output_name, sample_prompts=layout["prompts"])
        for stage in ("latents", "text", "train"):
            run = runs.get_by_id(conn, run.id)
            if STAGE_ORDER[run.stage] > STAGE_ORDER[stage]:
                continue
            await run_stage(ctx, session, run, stage, commands[stage], layout, cfg)
            runs.update(conn, run.id, stage=NEXT[stage], remote_pid=None,
                        log_offset=0 if stage != "train" else runs.get_by_id(conn, run.id)
                        .log_offset)
        await pull_samples(ctx, session, run, layout)
        runs.update(conn, run.id, state="succeeded", ended_at=time.time(), stage="done")
        outcome = "finish"
        ctx.progress(1.0, "training finished", force=True)
        return {"run": run.name}
    except asyncio.CancelledError:
        if ctx.cancelled.is_set():
            await stop_remote(session, runs.get_by_id(conn, run.id))
            runs.update(conn, run.id, state="stopped", ended_at=time.time(),
                        error="stopped by request")
        raise
    except BudgetExceeded as exc:
        await stop_remote(session, runs.get_by_id(conn, run.id))
        runs.update(conn, run.id, state="stopped", ended_at=time.time(), error=str(exc))
        raise
    except Exception as exc:
        if not is_transient(exc):  # transient: the job retries and the run goes on
            runs.update(conn, run.id, state="failed", ended_at=time.time(), error=str(exc))
        raise
    finally:
        await session.close()
        if runs.get_by_id(conn, run.id).state in ("succeeded", "failed", "stopped"):
            done = await asyncio.to_thread(pods.apply_policy, ctx.ws, pod.id, outcome)
            log.info("run %s ended (%s); pod %s policy: %s", run.name, outcome, pod.name, done)


@periodic
def reconcile(conn) -> None:
    """A run shown queued or running must have a live job following it; otherwise (the job
    failed while the pod was unreachable, or was cancelled behind the run's back) queue a new
    one, which finds the remote process or its exit code and corrects the run."""
    for row in conn.execute(
            "SELECT r.id, r.name, j.state FROM runs r LEFT JOIN jobs j ON j.id = r.job_id"
            " WHERE r.state IN ('queued','running')").fetchall():
        if row["state"] not in jobs.ACTIVE:
            log.info("run %s has no live job (job %s); following it again", row["name"],
                     row["state"])
            runs.start(conn, row["id"])


STAGE_ORDER = {None: 0, "upload": 0, "latents": 1, "text": 2, "train": 3, "done": 4}
NEXT = {"latents": "text", "text": "train", "train": "done"}


async def resolve_resume(ctx: JobContext, session: Session, run: runs.Run, pod: pods.Pod,
                         manifest: dict) -> trainconfig.TrainConfig:
    """Find the parent's last saved state on the pod; continue from it with the remaining
    epochs (or steps) and a step offset so the loss chart goes on at the right step."""
    conn = ctx.conn
    parent = runs.get_by_id(conn, run.parent_run_id)
    out = remote_layout(parent, pod, manifest)["output"]
    names = await session.call("listdir", out)
    prefix = parent.output_name
    states = []
    for name in names:
        if not name.endswith("-state") or not name.startswith(prefix + "-"):
            continue
        mark = name[len(prefix) + 1:-len("-state")]
        if mark.startswith("step") and mark[4:].isdigit():
            states.append((int(mark[4:]), "step", name))
        elif mark.isdigit():
            states.append((int(mark), "epoch", name))
    if not states:
        raise PermanentError(f"run {parent.name} saved no state on the pod ({out}); start a new "
                             "run instead (save_state is on by default for new runs)")
    cfg = parent.train_config
    total = parent.total_steps or 0
    epochs = cfg.max_train_epochs
    steps_per_epoch = total // epochs if epochs and total else None
    number, kind, name = max(states, key=lambda s: (s[0] * (steps_per_epoch or 1)
                                                     if s[1] == "epoch" else s[0]))
    if kind == "epoch":
        done_steps = number * (steps_per_epoch or 0)
        if epochs:
            cfg.max_train_epochs = max(1, epochs - number)
    else:
        done_steps = number
        if cfg.max_train_steps:
            cfg.max_train_steps = max(1, cfg.max_train_steps - number)
    cfg.extra_args = [*cfg.extra_args, "--resume", posixpath.join(out, name)]
    offset = parent.step_offset + done_steps
    runs.update(conn, run.id, config=json.dumps(cfg.as_dict()), step_offset=offset)
    ctx.progress(0.2, f"resuming {parent.name} from {name} (step {offset})", force=True)
    return cfg


async def upload(ctx: JobContext, session: Session, export_dir: Path, remote_root: str) -> None:
    """Send the export folder (skipping identical files, resuming broken ones, verified)."""
    files = sorted(p for p in export_dir.rglob("*") if p.is_file())
    pairs = [(p, posixpath.join(remote_root, p.relative_to(export_dir).as_posix()))
             for p in files]
    ctx.progress(0.01, f"uploading {len(pairs)} files", force=True)

    def report(done, total):
        ctx.progress(min(0.99, done / total if total else 1) * 0.1, "uploading dataset")

    await session.call("upload_tree", pairs, report)


async def pull_samples(ctx: JobContext, session: Session, run: runs.Run,
                       layout: dict[str, str]) -> list[Path]:
    """Sample videos/images the trainer wrote under output/sample/ come down with the run."""
    remote = posixpath.join(layout["output"], "sample")
    local_dir = ctx.ws.downloads_dir() / run.name / "sample"
    pulled = []
    for name in await session.call("listdir", remote):
        target = local_dir / name
        if not target.exists():
            await session.call("download", posixpath.join(remote, name), target)
        pulled.append(target)
    return pulled


def full_log(ws, run: runs.Run, stage: str = "train", limit: int = 8 << 20) -> str:
    """The whole remote log of a stage (blocking: CLI, or a TUI worker thread)."""
    conn = ws.connect()
    try:
        pod = pods.get_by_id(conn, run.pod_id)
        with pods.open_shell(conn, pod) as shell:
            data = shell.read_from(posixpath.join(run.remote_dir or "", "logs", f"{stage}.log"),
                                   0, limit)
    finally:
        conn.close()
    return data.decode("utf-8", errors="replace")


async def stop_remote(session: Session, run: runs.Run) -> None:
    if run.remote_pid:
        try:
            await session.call("kill_group", run.remote_pid)
        except TransientError:
            log.warning("run %s: could not reach the pod to stop pid %s", run.name,
                        run.remote_pid)


async def run_stage(ctx: JobContext, session: Session, run: runs.Run, stage: str, command: str,
                    layout: dict[str, str], cfg: trainconfig.TrainConfig) -> None:
    conn = ctx.conn
    log_path, exit_path = stage_files(layout, stage)
    code = await session.call("exit_code", exit_path)
    if code is None and not (run.remote_pid and await session.call("alive", run.remote_pid)):
        pid = await session.call("start_detached", cfg.musubi_dir, command, log=log_path,
                                 exit_file=exit_path, env=cfg.env)
        runs.update(conn, run.id, remote_pid=pid, stage=stage,
                    log_offset=0 if stage == "train" else run.log_offset)
        run = runs.get_by_id(conn, run.id)
    label = {"latents": "caching latents", "text": "caching text encoder outputs",
             "train": "training"}[stage]
    base = {"latents": 0.1, "text": 0.15, "train": 0.2}[stage]
    ctx.progress(base, label, force=True)
    parser = trainlog.LogParser(run.log_offset if stage == "train" else 0)
    tail: list[str] = []
    offset = parser.offset  # bytes handed to the parser; it persists only complete lines
    while True:
        data = await session.call("read_from", log_path, offset)
        if data:
            offset += len(data)
            events = parser.feed(data)
            tail = (tail + data.decode("utf-8", errors="replace").replace("\r", "\n")
                    .splitlines())[-TAIL_LINES:]
            if stage == "train":
                await apply_events(ctx, session, run, events, layout, cfg)
                runs.update(conn, run.id, log_offset=parser.offset,
                            log_tail="\n".join(tail))
        check_budget(conn, runs.get_by_id(conn, run.id))
        code = await session.call("exit_code", exit_path)
        if code is None and not await session.call("alive", runs.get_by_id(conn, run.id)
                                                   .remote_pid or 0):
            # gone without writing its exit code: killed (OOM killer, a reboot, by hand)
            code = await session.call("exit_code", exit_path)  # it may have just finished
            if code is None:
                raise PermanentError(f"{label}: the process on the pod is gone without an exit "
                                     "code (killed?). Last lines:\n" + "\n".join(tail)[-1500:])
        if code is not None:
            rest = await session.call("read_from", log_path, offset)
            if rest and stage == "train":
                await apply_events(ctx, session, run, parser.feed(rest), layout, cfg)
                runs.update(conn, run.id, log_offset=parser.offset)
            if code != 0:
                text = "\n".join(tail)
                reason = failure_reason(text) or f"exit code {code}"
                raise PermanentError(f"{label} failed: {reason}. Last lines:\n{text[-1500:]}")
            return
        try:
            await asyncio.wait_for(ctx.cancelled.wait(), session.poll_seconds)
        except TimeoutError:
            pass
        if ctx.cancelled.is_set():
            raise asyncio.CancelledError


def cost_so_far(conn, run: runs.Run) -> float:
    pod = pods.get_by_id(conn, run.pod_id)
    if not run.started_at or not pod.cost_per_hour:
        return 0.0
    return (time.time() - run.started_at) / 3600 * pod.cost_per_hour


def check_budget(conn, run: runs.Run) -> None:
    if run.budget is not None and cost_so_far(conn, run) > run.budget:
        raise BudgetExceeded(f"budget ${run.budget:.2f} reached: the run was stopped (raise it "
                             f"with a new run, or resume with `lorad train resume {run.name}`)")


class BudgetExceeded(PermanentError):
    pass


def failure_reason(text: str) -> str | None:
    if trainlog.OOM in text:
        return "CUDA out of memory (lower resolution or frames, add blocks_to_swap or fp8_base)"
    if "No training items found" in text:
        return "no training items: every clip is shorter than the target frames, or caches " \
               "are missing"
    if "Traceback (most recent call last)" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return f"the trainer crashed: {last.strip()}"
    return None


async def apply_events(ctx: JobContext, session: Session, run: runs.Run, events: list,
                       layout: dict[str, str], cfg: trainconfig.TrainConfig) -> None:
    conn = ctx.conn
    now = time.time()
    last: trainlog.Progress | None = None
    with store.transaction(conn):
        for event in events:
            if isinstance(event, trainlog.Progress):
                if event.step > 0:
                    runs.add_loss(conn, run, event.step, event.avr_loss, now)
                last = event
                if trainlog.is_nan(event.avr_loss) and not cfg.env.get("LORAD_ALLOW_NAN"):
                    nan_step = event.step
                    break
            elif isinstance(event, trainlog.TotalSteps):
                runs.update(conn, run.id, total_steps=event.total)
            elif isinstance(event, trainlog.Epoch):
                runs.update(conn, run.id, epoch=event.epoch)
            elif isinstance(event, trainlog.Checkpoint):
                record_checkpoint(conn, run, event.path)
        else:
            nan_step = None
        if last is not None:
            runs.update(conn, run.id, step=last.step, total_steps=last.total,
                        avr_loss=None if trainlog.is_nan(last.avr_loss) else last.avr_loss,
                        rate=last.rate, remaining=last.remaining)
    if last is not None and last.total:
        ctx.progress(0.2 + 0.8 * last.step / last.total,
                     f"step {last.step}/{last.total}, loss {last.avr_loss}")
    if nan_step is not None:
        await stop_remote(session, runs.get_by_id(conn, run.id))
        raise PermanentError(f"loss became NaN at step {nan_step}: training stopped (lower the "
                             "learning rate, or check the dataset for broken clips)")


def record_checkpoint(conn, run: runs.Run, remote_path: str) -> None:
    name = posixpath.basename(remote_path)
    step = epoch = None
    stem = name.removesuffix(".safetensors")
    tail = stem.rsplit("-", 1)[-1]
    if tail.startswith("step") and tail[4:].isdigit():
        step = int(tail[4:])
    elif tail.isdigit():
        epoch = int(tail)
    cur = conn.execute(
        "INSERT OR IGNORE INTO checkpoints (run_id, remote_path, name, step, epoch, state,"
        " created_at) VALUES (?,?,?,?,?,'remote',?)",
        (run.id, remote_path, name, step, epoch, time.time()))
    if cur.rowcount:
        jobs.enqueue(conn, runs.PULL_KIND, {"checkpoint_id": cur.lastrowid}, max_attempts=20)
