"""Job kinds used by the tests, loaded into a daemon through LORAD_HANDLER_MODULES."""

from __future__ import annotations

import asyncio

from lorad.core.errors import LoradError, PermanentError, TransientError
from lorad.core.handlers import register


def _record_effect(job_id: int):
    def write(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS test_effects (job_id INTEGER, n INTEGER)")
        conn.execute("INSERT INTO test_effects (job_id, n) VALUES (?, 1)", (job_id,))

    return write


@register("test.effect")
async def effect(ctx):
    """Sleep a little, reporting progress; its effect commits with the job's success."""
    seconds = ctx.payload.get("seconds", 0.05)
    steps = 5
    for i in range(steps):
        await asyncio.sleep(seconds / steps)
        ctx.progress((i + 1) / steps, f"step {i + 1} of {steps}")
    ctx.on_success(_record_effect(ctx.job.id))
    return {"ok": ctx.job.id}


@register("test.wait_cancel")
async def wait_cancel(ctx):
    ctx.progress(0.1, "waiting to be cancelled", force=True)
    await ctx.cancelled.wait()
    ctx.check_cancelled()


@register("test.flaky")
async def flaky(ctx):
    if ctx.job.attempts <= ctx.payload.get("failures", 1):
        raise TransientError("remote busy")
    return {"attempts": ctx.job.attempts}


@register("test.broken")
async def broken(ctx):
    raise PermanentError("caption file missing: add clip_001.txt")


@register("test.crash")
async def crash(ctx):
    raise ValueError("unexpected")


class _ClientRefused(LoradError):
    """What a client of an outside system raises: a LoradError, neither transient nor marked
    permanent."""


@register("test.refused")
async def refused(ctx):
    raise _ClientRefused("the pod refused the key: check the pod's user and key file")


@register("test.hang")
async def hang(ctx):
    """A call that does not come back (a service that stopped answering): a thread blocked in
    it cannot be cancelled."""
    import time

    ctx.progress(0.1, "waiting on a call that hangs", force=True)
    await asyncio.to_thread(time.sleep, ctx.payload.get("seconds", 60))
