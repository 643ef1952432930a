"""Pod jobs the UI and CLI queue: start (bring up), stop, check."""

from __future__ import annotations

import asyncio
import time

from lorad.core import jobs
from lorad.core.errors import PermanentError
from lorad.core.handlers import JobContext, register
from lorad.training import checkpoints, pods, runs, trainers

START, STOP, CHECK = "pod.start", "pod.stop", "pod.check"


def queue(conn, kind: str, pod_name: str, **extra) -> int:
    pod = pods.get(conn, pod_name)
    return jobs.enqueue(conn, kind, {"pod_id": pod.id, **extra})


@register(START, concurrency=4)
async def start(ctx: JobContext):
    ctx.progress(None, "starting the pod and waiting for SSH", force=True)
    settings = ctx.ws.config()["training"]
    pod = await asyncio.to_thread(pods.bring_up, ctx.ws, ctx.payload["pod_id"],
                                  timeout=settings["runpod_start_timeout_seconds"],
                                  poll=settings["runpod_poll_seconds"])
    return {"ssh": f"{pod.ssh_host}:{pod.ssh_port}"}


@register(STOP, concurrency=4)
async def stop(ctx: JobContext):
    conn = ctx.conn
    pod = pods.get_by_id(conn, ctx.payload["pod_id"])
    busy = [r.name for r in runs.on_pod(conn, pod.id, active=True)]
    if busy and ctx.payload.get("if_idle"):
        return {"kept": pod.name, "because": busy}
    pulls = checkpoints.pulls_pending(conn, [r.id for r in runs.on_pod(conn, pod.id)])
    if pulls and ctx.payload.get("if_idle"):
        # checkpoints are still coming down: look again shortly
        jobs.enqueue(conn, STOP, dict(ctx.payload), delay=2.0)
        return {"deferred": pod.name, "pulls": pulls}
    if pod.state in ("stopped", "terminated") and ctx.payload.get("if_idle"):
        return {"already": pod.state}
    if busy and not ctx.payload.get("force"):
        raise PermanentError(f"pod {pod.name} runs {', '.join(busy)}: stop the "
                             "run first (or stop the pod with --force)")
    if pod.provider != "runpod":
        raise PermanentError(f"pod {pod.name} is a plain SSH host: lorad cannot power it off")

    def do_stop():
        from lorad.training.runpod import RunPod

        with RunPod() as api:
            if ctx.payload.get("terminate"):
                api.terminate(pod.provider_id)
            else:
                api.stop(pod.provider_id)

    await asyncio.to_thread(do_stop)
    pods.record_time(conn, pod, time.time())
    state = "terminated" if ctx.payload.get("terminate") else "stopped"
    pods.update(conn, pod.id, state=state, ssh_host=None, ssh_port=None, host_key=None,
                started_at=None)
    conn.execute("INSERT INTO events (at, kind, subject, message) VALUES (?,?,?,?)",
                 (time.time(), "pod.stop", pod.name,
                  f"{state}: {ctx.payload.get('reason', 'by request')}"))
    return {state: pod.name}


@register(CHECK, concurrency=4)
async def check(ctx: JobContext):
    conn = ctx.conn
    pod = pods.get_by_id(conn, ctx.payload["pod_id"])
    options = dict(ctx.payload.get("options", {}))
    if "musubi_dir" in ctx.payload:  # queued before trainers had options
        options["musubi_dir"] = ctx.payload["musubi_dir"]
    checks = pods.checks_for(ctx.payload.get("trainer", trainers.DEFAULT), options)

    def do_check():
        c = ctx.ws.connect()
        try:
            with pods.open_shell(c, pod) as shell:
                return pods.check(shell, pod.remote_dir, checks, ctx.payload.get("models", []))
        finally:
            c.close()

    results = await asyncio.to_thread(do_check)
    pods.update(conn, pod.id, info={r["check"]: r["detail"] for r in results})
    failed = [r for r in results if not r["ok"]]
    if failed:
        raise PermanentError("; ".join(f"{r['check']}: {r['fix']}" for r in failed))
    return results
