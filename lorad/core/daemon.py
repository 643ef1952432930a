"""The daemon: one per workspace, runs durable jobs on an asyncio loop.

Single instance is enforced by an OS lock (flock) on `.lorad/daemon.lock`, which the kernel
releases when the process dies however it dies; the pid written inside is only for display.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import logging
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

from lorad.core import files, handlers, jobs, logs, notify, plugins, store
from lorad.core.errors import LoradError, is_transient
from lorad.core.workspace import Workspace

log = logging.getLogger("lorad.core.daemon")

CANCEL_GRACE = 10.0  # seconds a handler gets to honour ctx.cancelled before it is interrupted
REQUEUE_EVERY = 5.0
RECONCILE_EVERY = 60.0


class DaemonError(LoradError):
    pass


@dataclass
class DaemonStatus:
    running: bool
    pid: int | None = None
    started_at: float | None = None
    ready: bool = False  # up and working (not still reading its config, opening the store)

    @property
    def uptime(self) -> float | None:
        return time.time() - self.started_at if self.running and self.started_at else None


class Lock:
    """Hold the workspace's daemon lock for the life of the process."""

    def __init__(self, ws: Workspace):
        self.path = ws.lock_path
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = _read_lock_info(self.path)
            raise DaemonError(
                f"a daemon is already running for this workspace (pid {info.get('pid', '?')})"
            ) from None
        self.fd = fd
        self._write({"pid": os.getpid(), "started_at": time.time(), "ready": False})

    def mark_ready(self) -> None:
        """Say the daemon is up: its config read, its store open, its plugins loaded."""
        self._write({**_read_lock_info(self.path), "ready": True})

    def _write(self, info: dict) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(info).encode(), 0)
        os.fsync(self.fd)

    # No release: the kernel drops the lock when the process ends, so a daemon that is still
    # finishing (threads in a long call) is still "running" and no second one can start.


def _read_lock_info(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def status(ws: Workspace) -> DaemonStatus:
    """Running means the lock is held by someone: try to take it without blocking."""
    if not ws.lock_path.exists():
        return DaemonStatus(False)
    fd = os.open(ws.lock_path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_lock_info(ws.lock_path)
            return DaemonStatus(True, info.get("pid"), info.get("started_at"),
                                bool(info.get("ready", True)))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return DaemonStatus(False)
    finally:
        os.close(fd)


def nudge(ws: Workspace) -> bool:
    """Tell a running daemon that new jobs wait, so it claims them now instead of at its next
    poll. Best effort: the daemon polls anyway."""
    st = status(ws)
    if not st.running or not st.pid:
        return False
    try:
        os.kill(st.pid, signal.SIGUSR1)
    except OSError:
        return False
    return True


def start(ws: Workspace, *, wait: float = 15.0, env: dict[str, str] | None = None) -> DaemonStatus:
    """Start `lorad daemon run` detached from this terminal and wait until it holds the lock."""
    current = status(ws)
    if current.running:
        raise DaemonError(f"a daemon is already running for this workspace (pid {current.pid})")
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    out_path = ws.state_dir / "daemon.out"
    with open(out_path, "ab") as out:
        said_before = out.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "lorad", "--workspace", str(ws.root), "daemon", "run"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            env=env, cwd=ws.root,
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        current = status(ws)
        if current.running and current.pid == proc.pid and current.ready:
            return current
        if proc.poll() is not None:  # it died at start: say why, as it said it
            raise DaemonError(f"the daemon did not start: {_last_words(out_path, said_before)}"
                              f" (exit code {proc.returncode}; {out_path})")
        time.sleep(0.05)
    raise DaemonError(f"the daemon did not come up within {wait:.0f} s; see {ws.log_path}")


def _last_words(path: Path, since: int) -> str:
    """The error line a daemon that died at start printed (the CLI's `lorad: error: ...`)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(since)
            lines = [ln.strip() for ln in fh.read().decode(errors="replace").splitlines()
                     if ln.strip()]
    except OSError:
        return "no reason given"
    errors = [ln for ln in lines if ln.startswith("lorad: error: ")]
    last = errors[-1] if errors else (lines[-1] if lines else "no reason given")
    return last.removeprefix("lorad: error: ")


def stop(ws: Workspace, *, wait: float | None = None) -> bool:
    """SIGTERM the daemon and wait until its process has ended (its lock goes with it). False
    if none was running."""
    current = status(ws)
    if not current.running or not current.pid:
        return False
    if wait is None:
        wait = ws.config()["daemon"]["shutdown_grace_seconds"] + 10
    try:
        os.kill(current.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not status(ws).running and not _alive(current.pid):
            return True
        time.sleep(0.05)
    raise DaemonError(f"the daemon (pid {current.pid}) did not stop within {wait:.0f} s; it "
                      f"still runs (see {ws.log_path}); `kill {current.pid}` ends it, and its "
                      "jobs go back to the queue when the next daemon starts")


def _alive(pid: int) -> bool:
    """Whether a process still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def ensure_running(ws: Workspace) -> DaemonStatus:
    current = status(ws)
    return current if current.running else start(ws)


class Daemon:
    """The job loop. `serve()` returns when `request_stop()` was called and jobs are settled."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.cfg = ws.config()["daemon"]
        self.concurrency = ws.config().concurrency
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.conn = ws.connect()
        self.db_inode = ws.db_path.stat().st_ino
        self.running: dict[int, tuple[asyncio.Task, handlers.JobContext]] = {}
        self.stopping = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.store_problem: str | None = None  # why the store cannot be written, while so
        self.store_failures = 0
        self.process_pool: concurrent.futures.ProcessPoolExecutor | None = None

    def request_stop(self) -> None:
        log.info("stop requested: no new jobs will be claimed")
        self.stopping.set()
        self.wakeup.set()

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self.process_pool is None:
            workers = self.cfg["media_workers"] or os.cpu_count() or 1
            # spawn, not fork: a forked child would inherit the lock's descriptor and keep the
            # workspace locked after the daemon died.
            self.process_pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"))
        return self.process_pool

    def _working(self) -> int:
        """Running jobs that take a max_concurrent slot (waiting handlers do not)."""
        registry = handlers.registered()
        return sum(1 for _task, ctx in self.running.values() if not registry[ctx.job.kind].waits)

    def _claimable_kinds(self) -> list[str]:
        busy: dict[str, int] = {}
        for _task, ctx in self.running.values():
            busy[ctx.job.kind] = busy.get(ctx.job.kind, 0) + 1
        slots_free = self._working() < self.cfg["max_concurrent"]
        kinds = []
        for kind, handler in handlers.registered().items():
            limit = self.concurrency.get(kind, handler.concurrency)
            if (slots_free or handler.waits) and (limit is None or busy.get(kind, 0) < limit):
                kinds.append(kind)
        return kinds

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        started = False
        last_requeue = last_reconcile = time.monotonic()
        while not self.stopping.is_set():
            if self._workspace_moved():
                break
            try:
                if not started:  # the first write may meet a locked or full store too
                    n = jobs.requeue_orphans(self.conn, self.owner, all_others=True)
                    if n:
                        log.info("requeued %d job(s) left running by a previous daemon", n)
                    started = True
                    self._reconcile()
                    last_requeue = last_reconcile = time.monotonic()
                if time.monotonic() - last_reconcile > RECONCILE_EVERY:
                    self._reconcile()
                    last_reconcile = time.monotonic()
                self._claim_all(loop)
                if time.monotonic() - last_requeue > REQUEUE_EVERY:
                    jobs.requeue_orphans(self.conn, self.owner)
                    last_requeue = time.monotonic()
                self._store_writable()
            except sqlite3.OperationalError as exc:  # a full disk, a lock held too long
                self._store_unwritable(exc)
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), self._pause())
            except TimeoutError:
                pass
        await self._shutdown()

    def _workspace_moved(self) -> bool:
        """Whether the workspace folder was moved or deleted under the running daemon. Its open
        database still works, but every new file would land in a re-created old folder: stop
        instead, and say where to start again."""
        try:
            same = self.ws.db_path.stat().st_ino == self.db_inode
        except FileNotFoundError:
            same = False
        if not same:
            log.error("the workspace was moved or deleted while the daemon ran (%s is gone): "
                      "stopping; start the daemon again from the workspace's new place "
                      "(lorad -w NEW_PATH daemon start)", self.ws.db_path)
            self.request_stop()
        return not same

    def _claim_all(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self.stopping.is_set():
            kinds = self._claimable_kinds()
            job = jobs.claim(self.conn, self.owner, kinds, self.cfg["lease_seconds"])
            if job is None:
                return
            wants_pool = handlers.registered()[job.kind].process_pool
            ctx = handlers.JobContext(job, self.conn, self.owner, loop,
                                      process_pool=self._pool() if wants_pool else None,
                                      ws=self.ws, stopping=self.stopping)
            if job.cancel_requested:  # asked while it waited (a released job, say)
                ctx.cancelled.set()
            task = asyncio.create_task(self._run(ctx), name=f"job-{job.id}")
            self.running[job.id] = (task, ctx)

    # -- a store that cannot be written: pause, say why, go on when it can -----------------------
    def _store_unwritable(self, exc: BaseException) -> None:
        if self.store_problem is None:
            log.error("the store cannot be written (%s): no new work is claimed until it can "
                      "(is the disk full? is another program holding the database?); running "
                      "jobs keep what they have", exc)
        self.store_problem = str(exc)
        self.store_failures += 1

    def _store_writable(self) -> None:
        if self.store_problem is not None:
            log.info("the store can be written again: claiming work")
        self.store_problem = None
        self.store_failures = 0

    def _pause(self) -> float:
        if self.store_problem is None:
            return self.cfg["poll_interval"]
        return min(10.0, 0.5 * 2 ** min(self.store_failures, 5))

    async def _written(self, fn, *args, **kwargs):
        """A job's end written to the store, however long the store refuses it."""
        while True:
            try:
                result = fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                self._store_unwritable(exc)
                await asyncio.sleep(self._pause())
                continue
            self._store_writable()
            return result

    def _reconcile(self) -> None:
        for check in handlers.periodic_checks():
            try:
                check(self.conn)
            except Exception:  # noqa: BLE001 - a failing check must not stop the daemon
                log.exception("periodic check %s failed", check.__name__)

    async def _shutdown(self) -> None:
        if self.running:
            grace = self.cfg["shutdown_grace_seconds"]
            log.info("waiting up to %.0f s for %d running job(s)", grace, len(self.running))
            tasks = [t for t, _ in self.running.values()]
            await asyncio.wait(tasks, timeout=grace)
        leftover = list(self.running.items())
        for job_id, (task, _ctx) in leftover:
            task.cancel()  # its handler hands the job back (see _run)
            with contextlib.suppress(sqlite3.OperationalError):  # else: an orphan, requeued
                jobs.release(self.conn, job_id, self.owner)
        await asyncio.gather(*(task for _id, (task, _ctx) in leftover), return_exceptions=True)
        if self.process_pool is not None:
            self.process_pool.shutdown(wait=True, cancel_futures=True)
        self.conn.close()
        log.info("daemon stopped")

    async def _run(self, ctx: handlers.JobContext) -> None:
        job = ctx.job
        handler = handlers.registered()[job.kind]
        heartbeat = asyncio.create_task(self._heartbeat(ctx, asyncio.current_task()))
        log.info("job %d (%s) started, attempt %d", job.id, job.kind, job.attempts)
        try:
            result = await handler.fn(ctx)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                await self._written(jobs.mark_cancelled, self.conn, job.id, self.owner)
                log.info("job %d cancelled", job.id)
            elif self.stopping.is_set():
                with contextlib.suppress(sqlite3.OperationalError):  # else: an orphan, requeued
                    jobs.release(self.conn, job.id, self.owner)  # the next daemon resumes it
                log.info("job %d released back to the queue", job.id)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
            transient = is_transient(exc)
            message = logs.redact(str(exc) or exc.__class__.__name__)
            if not isinstance(exc, LoradError):  # a bug or an unforeseen failure: keep the trace
                log.error("job %d (%s) raised:\n%s", job.id, job.kind, traceback.format_exc())
                if not transient:
                    message = f"{exc.__class__.__name__}: {message} (details in {self.ws.log_path})"
            state = await self._written(jobs.fail, self.conn, job.id, self.owner, message,
                                        transient=transient,
                                        retry_base=self.cfg["retry_base_seconds"],
                                        retry_cap=self.cfg["retry_max_seconds"])
            log.info("job %d %s: %s", job.id, "will retry" if state == "queued" else state, message)
        else:
            effects = ctx._on_success

            def apply(conn):
                for fn in effects:
                    fn(conn)

            if await self._written(jobs.succeed, self.conn, job.id, self.owner, result,
                                   also=apply):
                log.info("job %d succeeded", job.id)
            else:
                log.warning("job %d finished but its lease was lost; result discarded", job.id)
        finally:
            heartbeat.cancel()
            self.running.pop(job.id, None)
            self.wakeup.set()

    async def _heartbeat(self, ctx: handlers.JobContext, task: asyncio.Task | None) -> None:
        """Renew the lease and watch for a cancel request while the job runs."""
        lease = self.cfg["lease_seconds"]
        last_renew = time.monotonic()
        cancel_seen_at = None
        while True:
            await asyncio.sleep(min(1.0, lease / 3))
            if time.monotonic() - last_renew >= lease / 3:
                try:
                    renewed = jobs.renew(self.conn, ctx.job.id, self.owner, lease)
                except sqlite3.OperationalError:  # the store is down: the lease is still ours
                    continue
                if not renewed:
                    log.warning("job %d lost its lease; stopping it", ctx.job.id)
                    if task:
                        task.cancel()
                    return
                last_renew = time.monotonic()
            if cancel_seen_at is None and self._cancel_asked(ctx.job.id):
                cancel_seen_at = time.monotonic()
                ctx.cancelled.set()
            if cancel_seen_at is not None and time.monotonic() - cancel_seen_at > CANCEL_GRACE:
                if task:
                    task.cancel()
                return


    def _cancel_asked(self, job_id: int) -> bool:
        try:
            return jobs.cancel_requested(self.conn, job_id)
        except sqlite3.OperationalError:  # asked again at the next beat
            return False


def run_foreground(ws: Workspace, *, verbose: bool = False) -> int:
    """`lorad daemon run`: hold the lock, serve until SIGTERM/SIGINT, exit 0."""
    # A nudge (SIGUSR1) may come as soon as the lock is visible; its default action would kill
    # us before the event loop installs the real handler, so ignore it until then.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    lock = Lock(ws)
    lock.acquire()  # held until the process ends (see Lock)
    cfg = ws.config()["daemon"]  # a broken config ends the daemon here, and start() says why
    notify.check(ws.config())
    logs.setup(ws.log_path, max_bytes=cfg["log_max_bytes"], backups=cfg["log_backups"],
               also_stderr=verbose)
    loaded = plugins.load_all()  # job kinds, and every implementation they may ask for
    daemon = Daemon(ws)  # opens (and migrates) the store: a newer or broken one ends it here
    removed, size = files.remove_leftover_parts(ws.media_dir(), ws.downloads_dir())
    if removed:
        log.info("removed %d unfinished file(s) (%d bytes) that a crash left behind", removed,
                 size)
    log.info("daemon pid %d started for %s (plugin modules: %s)", os.getpid(), ws.root,
             ", ".join(m for m in loaded if m not in plugins.failures()))
    lock.mark_ready()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.request_stop)
        loop.add_signal_handler(signal.SIGUSR1, daemon.wakeup.set)  # see nudge()
        await daemon.serve()

    # Not asyncio.run: at its end it joins the default executor's threads, and a call blocking
    # one (a service that does not answer) would keep the process, and its lock, alive for
    # minutes after the jobs were settled (finished, or handed back to the queue).
    loop = asyncio.new_event_loop()
    code = 0
    try:
        loop.run_until_complete(main())
    except BaseException as exc:  # noqa: BLE001 - logged, then the process ends with an error
        if store.is_damage(exc):
            reason = str(store.damaged(ws.db_path, str(exc)))
            log.error("the daemon stopped: %s", reason)
        else:
            reason = f"{exc.__class__.__name__}: {exc}"
            log.exception("the daemon stopped on an unexpected error")
        notify.send(ws.config(), "daemon_error", f"lorad: the daemon of {ws.name} stopped",
                    f"{logs.redact(reason)}\nits log: {ws.log_path}")
        code = 1
    logging.shutdown()
    os._exit(code)
