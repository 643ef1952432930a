"""The `dataset.export` job: a dataset version written by the daemon (the TUI's Export form
queues it; `lorad dataset export` does the same work in the foreground).

Writing is idempotent: the folder is built beside its final name and renamed, and a version is
one row per content hash, so a job that runs again after a crash finds the folder and the row
and adds nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import asdict
from typing import Any

from lorad.core import jobs
from lorad.core.errors import PermanentError
from lorad.core.handlers import JobContext, register
from lorad.datasets import export, preflight
from lorad.media import datasets, profiles

KIND = "dataset.export"


def queue(conn: sqlite3.Connection, dataset: datasets.Dataset, options: export.Options, *,
          force: bool = False, allow_drafts: bool = False) -> int:
    """The export job for this dataset: the one already queued or running, else a new one."""
    active = jobs.active_with(conn, KIND, "dataset_id", dataset.id)
    if active:
        return active[0]
    return jobs.enqueue(conn, KIND, {"dataset_id": dataset.id, "options": asdict(options),
                                     "force": force, "allow_drafts": allow_drafts},
                        max_attempts=2)


@register(KIND, concurrency=1)
async def export_dataset(ctx: JobContext) -> dict[str, Any]:
    conn = ctx.conn
    d = datasets.get_by_id(conn, ctx.payload["dataset_id"])
    profile = profiles.get(d.profile, ctx.ws.config())
    options = export.Options(**ctx.payload["options"])
    report = preflight.check(conn, d, profile, options,
                             allow_drafts=ctx.payload.get("allow_drafts", False))
    refused = export.refusal(report, force=ctx.payload.get("force", False))
    if refused:
        raise PermanentError(refused)
    p = export.plan(conn, d, profile, options)
    ctx.progress(None, f"writing {len(p.items)} clip(s)")
    path = await asyncio.to_thread(export.write, p, export.export_dir(ctx.ws.root, p))
    version = export.record(conn, p, path)
    return {"version_id": version, "content_hash": p.content_hash, "path": str(path),
            "clips": len(p.items), "warnings": len(report.findings) - len(report.errors)}
