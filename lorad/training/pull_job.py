"""The `checkpoint.pull` job: bring a checkpoint down once the pod has written all of it,
verify it and record it."""

from __future__ import annotations

import posixpath
import time

from lorad.core.errors import TransientError
from lorad.core.handlers import JobContext, register
from lorad.training import checkpoints, pods, runs
from lorad.training.session import Session


@register(checkpoints.PULL_KIND, concurrency=2)
async def pull(ctx: JobContext):
    conn = ctx.conn
    ckpt = checkpoints.get(conn, ctx.payload["checkpoint_id"])
    run = runs.get_by_id(conn, ckpt.run_id)
    pod = pods.get_by_id(conn, run.pod_id)
    session = Session(ctx.ws, pod.id, ctx)
    remote = ckpt.remote_path
    try:
        head = await session.call("read_from", remote, 0, 1 << 20)
        size = await session.call("size", remote)
        want = checkpoints.expected_size(head)
        if want is None or size is None or size < want:
            raise TransientError(f"{posixpath.basename(remote)} is still being written")
        local = ctx.ws.downloads_dir() / run.name / posixpath.basename(remote)

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
