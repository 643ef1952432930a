"""Pod jobs the UI and CLI queue: start (bring up), stop, check."""

from __future__ import annotations

import asyncio
import time

from . import jobs, pods
from .handlers import JobContext, PermanentError, register

START, STOP, CHECK = "pod.start", "pod.stop", "pod.check"


def queue(conn, kind: str, pod_name: str, **extra) -> int:
    pod = pods.get(conn, pod_name)
    return jobs.enqueue(conn, kind, {"pod_id": pod.id, **extra})


@register(START, concurrency=4)
async def start(ctx: JobContext):
    ctx.progress(None, "starting the pod and waiting for SSH", force=True)
    pod = await asyncio.to_thread(pods.bring_up, ctx.ws, ctx.payload["pod_id"])
    return {"ssh": f"{pod.ssh_host}:{pod.ssh_port}"}


@register(STOP, concurrency=4)
async def stop(ctx: JobContext):
    conn = ctx.conn
    pod = pods.get_by_id(conn, ctx.payload["pod_id"])
    busy = conn.execute("SELECT name FROM runs WHERE pod_id = ? AND state IN ('queued',"
                        "'running')", (pod.id,)).fetchall()
    if busy and not ctx.payload.get("force"):
        raise PermanentError(f"pod {pod.name} runs {', '.join(r[0] for r in busy)}: stop the "
                             "run first (or stop the pod with --force)")
    if pod.provider != "runpod":
        raise PermanentError(f"pod {pod.name} is a plain SSH host: lorad cannot power it off")

    def do_stop():
        from .runpod import RunPod

        with RunPod() as api:
            api.stop(pod.provider_id)

    await asyncio.to_thread(do_stop)
    pods.record_time(conn, pod, time.time())
    pods.update(conn, pod.id, state="stopped", ssh_host=None, ssh_port=None, host_key=None,
                started_at=None)
    return {"stopped": pod.name}


@register(CHECK, concurrency=4)
async def check(ctx: JobContext):
    conn = ctx.conn
    pod = pods.get_by_id(conn, ctx.payload["pod_id"])

    def do_check():
        c = ctx.ws.connect()
        try:
            with pods.open_shell(c, pod) as shell:
                return pods.check(shell, pod.remote_dir,
                                  ctx.payload.get("musubi_dir", "/workspace/musubi-tuner"),
                                  ctx.payload.get("models", []))
        finally:
            c.close()

    results = await asyncio.to_thread(do_check)
    pods.update(conn, pod.id, info={r["check"]: r["detail"] for r in results})
    failed = [r for r in results if not r["ok"]]
    if failed:
        raise PermanentError("; ".join(f"{r['check']}: {r['fix']}" for r in failed))
    return results
