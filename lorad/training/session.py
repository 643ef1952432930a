"""A pod session for jobs: an SSH shell that reconnects with backoff, its calls run in a thread
so the daemon's event loop never waits on the network."""

from __future__ import annotations

import asyncio
import time

from lorad.core.errors import TransientError
from lorad.core.handlers import JobContext
from lorad.training import pods
from lorad.training.ssh import Shell, SshUnavailable


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


class Session:
    def __init__(self, ws, pod_id: int, ctx: JobContext) -> None:
        self.ws = ws
        self.pod_id = pod_id
        self.ctx = ctx
        self.shell: Shell | None = None
        settings = ws.config()["training"]
        self.poll_seconds = settings["poll_seconds"]
        self.reconnect_budget = settings["reconnect_budget_seconds"]
        self.unreachable_since: float | None = None

    def _open(self) -> Shell:
        conn = self.ws.connect()
        try:
            return pods.open_shell(conn, pods.get_by_id(conn, self.pod_id))
        finally:
            conn.close()

    async def call(self, fn_name: str, *args, **kw):
        """`Shell.<fn_name>(...)`; an unreachable pod is retried until the reconnect budget is
        spent, then the job retries later (TransientError)."""
        delay = 1.0
        while True:
            try:
                if self.shell is None:
                    self.shell = await asyncio.to_thread(self._open)
                result = await asyncio.to_thread(getattr(self.shell, fn_name), *args, **kw)
                self.unreachable_since = None
                return result
            except SshUnavailable as exc:
                if self.shell is not None:
                    await asyncio.to_thread(self.shell.close)
                    self.shell = None
                now = time.time()
                since = self.unreachable_since = self.unreachable_since or now
                if now - since >= self.reconnect_budget:
                    raise TransientError(f"pod unreachable since {_clock(since)} "
                                         f"({now - since:.0f} s): {exc}") from None
                self.ctx.progress(None, f"pod unreachable since {_clock(since)}, reconnecting "
                                        f"in {delay:.0f} s: {exc}", force=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def close(self) -> None:
        if self.shell is not None:
            await asyncio.to_thread(self.shell.close)
            self.shell = None
