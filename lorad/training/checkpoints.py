"""Checkpoints: pulled from the pod once complete, verified (safetensors header and metadata,
SHA-256 against the pod's), and recorded with their step, epoch and training metadata."""

from __future__ import annotations

import json
import posixpath
import struct
import time
from pathlib import Path

from safetensors import safe_open

from lorad.core.errors import PermanentError, TransientError
from lorad.core.handlers import JobContext, register
from lorad.training import pods, runs
from lorad.training.train_job import Session


def expected_size(header_bytes: bytes) -> int | None:
    """Full file size a safetensors file will have, from its first bytes (None if the header
    is not all there yet)."""
    if len(header_bytes) < 8:
        return None
    (n,) = struct.unpack("<Q", header_bytes[:8])
    if len(header_bytes) < 8 + n:
        return None
    try:
        header = json.loads(header_bytes[8:8 + n])
    except ValueError:
        return None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
              default=0)
    return 8 + n + end


def verify(path: Path) -> dict:
    """Open with the safetensors library; returns the metadata (all strings)."""
    try:
        with safe_open(str(path), framework="numpy") as fh:
            metadata = fh.metadata() or {}
            if not list(fh.keys()):
                raise PermanentError(f"{path.name}: no tensors inside")
    except PermanentError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means a broken file
        raise PermanentError(f"{path.name} is not a valid safetensors file: {exc}") from None
    return metadata


@register(runs.PULL_KIND, concurrency=2)
async def pull(ctx: JobContext):
    conn = ctx.conn
    row = conn.execute("SELECT * FROM checkpoints WHERE id = ?",
                       (ctx.payload["checkpoint_id"],)).fetchone()
    run = runs.get_by_id(conn, row["run_id"])
    pod = pods.get_by_id(conn, run.pod_id)
    session = Session(ctx.ws, pod.id, ctx)
    remote = row["remote_path"]
    try:
        head = await session.call("read_from", remote, 0, 1 << 20)
        size = await session.call("size", remote)
        want = expected_size(head)
        if want is None or size is None or size < want:
            raise TransientError(f"{posixpath.basename(remote)} is still being written")
        local = ctx.ws.downloads_dir() / run.name / posixpath.basename(remote)

        def report(done, total):
            ctx.progress(done / total if total else None, f"pulling {local.name}")

        digest = await session.call("download", remote, local, report)
    finally:
        await session.close()
    metadata = verify(local)
    step = row["step"]
    epoch = row["epoch"]
    if step is None and metadata.get("ss_steps", "").isdigit():
        step = int(metadata["ss_steps"])
    if epoch is None and metadata.get("ss_epoch", "").isdigit():
        epoch = int(metadata["ss_epoch"])

    def record(c):
        c.execute("UPDATE checkpoints SET local_path = ?, sha256 = ?, size = ?, metadata = ?,"
                  " step = ?, epoch = ?, state = 'local' WHERE id = ?",
                  (str(local), digest, local.stat().st_size, json.dumps(metadata, sort_keys=True),
                   step, epoch, row["id"]))

    ctx.on_success(record)
    return {"checkpoint": local.name, "sha256": digest, "at": time.time()}
