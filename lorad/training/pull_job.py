"""The `checkpoint.pull` job: bring a checkpoint down once the pod has written all of it,
verify it and record it."""

from __future__ import annotations

import posixpath
import shlex
import time

from lorad.core.errors import TransientError
from lorad.core.handlers import JobContext, register
from lorad.training import checkpoints, pods, runs
from lorad.training.session import Session


async def settled(session: Session, remote: str, seconds: float) -> None:
    """A file whose header does not give its size (a torch `.pt`) is whole once it has not
    changed for a while, by the pod's own clock."""
    code, out, _err = await session.call(
        "run", f"stat -c %Y {shlex.quote(remote)} && date +%s", check=False)
    numbers = out.split()
    if code != 0 or len(numbers) != 2:
        raise TransientError(f"{posixpath.basename(remote)} is not on the pod (yet)")
    changed, now = int(numbers[0]), int(numbers[1])
    if now - changed < seconds:
        raise TransientError(f"{posixpath.basename(remote)} is still being written (changed "
                             f"{now - changed} s ago)")


@register(checkpoints.PULL_KIND, concurrency=2)
async def pull(ctx: JobContext):
    conn = ctx.conn
    ckpt = checkpoints.get(conn, ctx.payload["checkpoint_id"])
    run = runs.get_by_id(conn, ckpt.run_id)
    pod = pods.get_by_id(conn, run.pod_id)
    session = Session(ctx.ws, pod.id, ctx)
    remote = ckpt.remote_path
    try:
        if checkpoints.is_safetensors(remote):
            head = await session.call("read_from", remote, 0, 1 << 20)
            size = await session.call("size", remote)
            want = checkpoints.expected_size(head)
            if want is None or size is None or size < want:
                raise TransientError(f"{posixpath.basename(remote)} is still being written")
        else:
            await settled(session, remote,
                          ctx.ws.config()["training"]["checkpoint_settle_seconds"])
        local = ctx.ws.downloads_dir() / run.name / (ckpt.name or posixpath.basename(remote))

        def report(done, total):
            ctx.progress(done / total if total else None, f"pulling {local.name}")

        digest = await session.call("download", remote, local, report)
    finally:
        await session.close()
    metadata = checkpoints.verify(local)
    step, epoch = run.trainer_impl.metadata_mark(metadata, ckpt.step, ckpt.epoch)
    ctx.on_success(lambda c: checkpoints.mark_pulled(c, ckpt.id, local, digest, metadata,
                                                     step=step, epoch=epoch))
    return {"checkpoint": local.name, "sha256": digest, "at": time.time()}
