"""Pod jobs the UI and CLI queue: start (bring up), stop, check."""

from __future__ import annotations

import asyncio

from lorad.core import jobs
from lorad.core.errors import PermanentError
from lorad.core.handlers import JobContext, register
from lorad.training import checkpoints, pods, providers, runs, trainers

START, STOP, CHECK = pods.START_KIND, pods.STOP_KIND, pods.CHECK_KIND


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
    if_idle = ctx.payload.get("if_idle")
    busy = [r.name for r in runs.on_pod(conn, pod.id, active=True)]
    if busy and if_idle:
        return {"kept": pod.name, "because": busy}
    pulls = checkpoints.pulls_pending(conn, [r.id for r in runs.on_pod(conn, pod.id)])
    if pulls and if_idle:
        # checkpoints are still coming down: look again shortly
        jobs.enqueue(conn, STOP, dict(ctx.payload), delay=2.0)
        return {"deferred": pod.name, "pulls": pulls}
    if pod.state in ("stopped", "terminated") and if_idle:
        return {"already": pod.state}
    if busy and not ctx.payload.get("force"):
        raise PermanentError(f"pod {pod.name} runs {', '.join(busy)}: stop the run first (or "
                             "stop the pod with --force)")
    provider = providers.get(pod.provider)
    terminate = bool(ctx.payload.get("terminate"))
    await asyncio.to_thread(provider.terminate if terminate else provider.stop, pod)
    state = pods.power_off(conn, pod, terminate=terminate,
                           reason=ctx.payload.get("reason", "by request"))
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
