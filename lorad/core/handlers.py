"""Job handlers: registered by kind, run by the daemon with a :class:`JobContext`.

A handler is ``async def handler(ctx) -> result``. It reports progress with ``ctx.progress``,
watches ``ctx.cancelled`` (an asyncio.Event) to stop cleanly, raises :class:`TransientError` for
failures worth retrying (network, busy remote) and :class:`PermanentError` (or anything else) for
failures a person must fix; the message is what the person reads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lorad.core import jobs, plugins

HandlerFn = Callable[["JobContext"], Awaitable[Any]]


@dataclass
class Handler:
    kind: str
    fn: HandlerFn
    concurrency: int | None = None  # None: limited only by the daemon's max_concurrent
    process_pool: bool = False  # CPU-bound: gets the daemon's process pool as ctx.process_pool
    # Spends its life waiting on a remote service (a queued generation): bounded by its own
    # concurrency only, so a wall of in-flight requests never starves ingest or training.
    waits: bool = False


_REGISTRY: dict[str, Handler] = {}


def register(kind: str, *, concurrency: int | None = None, process_pool: bool = False,
             waits: bool = False) -> Callable[[HandlerFn], HandlerFn]:
    if waits and concurrency is None:
        raise ValueError(f"{kind}: a waiting handler needs its own concurrency limit")

    def decorate(fn: HandlerFn) -> HandlerFn:
        _REGISTRY[kind] = Handler(kind, fn, concurrency, process_pool, waits)
        return fn

    return decorate


_PERIODIC: list[Callable[[sqlite3.Connection], None]] = []


def periodic(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register a check the daemon runs at start and about once a minute (reconciling the
    store with reality: remote processes, pods)."""
    _PERIODIC.append(fn)
    return fn


def periodic_checks() -> list[Callable[[sqlite3.Connection], None]]:
    return list(_PERIODIC)


def registered() -> dict[str, Handler]:
    return dict(_REGISTRY)


def load_modules() -> list[str]:
    """Import every module that registers job kinds (see lorad.core.plugins)."""
    return plugins.load("jobs")


@dataclass
class JobContext:
    """What a running handler sees: its job, the database, progress and cancel signals."""

    job: jobs.Job
    conn: sqlite3.Connection  # the daemon's connection: use it only on the event loop
    owner: str
    loop: asyncio.AbstractEventLoop
    process_pool: Any = None
    ws: Any = None  # the daemon's Workspace: paths and config
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # the daemon is shutting down
    _on_success: list[Callable[[sqlite3.Connection], None]] = field(default_factory=list)
    _last_progress: float = 0.0

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    def progress(self, fraction: float | None, message: str | None = None, *,
                 force: bool = False) -> None:
        """Report progress; throttled to 5 writes a second. Safe to call from any thread."""
        now = time.monotonic()
        if not force and now - self._last_progress < 0.2 and (fraction or 0) < 1.0:
            return
        self._last_progress = now
        if _in_loop(self.loop):
            self._write_progress(fraction, message)
        else:
            self.loop.call_soon_threadsafe(self._write_progress, fraction, message)

    def _write_progress(self, fraction: float | None, message: str | None) -> None:
        try:
            jobs.set_progress(self.conn, self.job.id, self.owner, fraction, message)
        except sqlite3.OperationalError:  # progress is shown, not kept: a full disk skips it
            pass

    def on_success(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        """Run `fn(conn)` in the transaction that marks the job succeeded: its writes commit
        exactly once, together with the job's success."""
        self._on_success.append(fn)

    async def pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early when the job is cancelled or the daemon stops
        (a handler that waits on a remote service checks both afterwards)."""
        waiters = [asyncio.ensure_future(self.cancelled.wait()),
                   asyncio.ensure_future(self.stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise asyncio.CancelledError

    async def in_process(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run CPU-bound work (media processing) in the daemon's process pool."""
        return await self.loop.run_in_executor(self.process_pool, fn, *args)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
