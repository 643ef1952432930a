"""Pod jobs the UI and CLI queue: start (bring up), stop, check."""

from __future__ import annotations

import asyncio

from lorad.core import jobs, notify
from lorad.core.errors import PermanentError
from lorad.core.handlers import JobContext, register
from lorad.training import checkpoints, pods, providers, runs, trainers


@register(pods.START_KIND, concurrency=4)
async def start(ctx: JobContext):
    ctx.progress(None, "starting the pod and waiting for SSH", force=True)
    settings = ctx.ws.config()["training"]
    pod = await asyncio.to_thread(pods.bring_up, ctx.ws, ctx.payload["pod_id"],
                                  timeout=settings["runpod_start_timeout_seconds"],
                                  poll=settings["runpod_poll_seconds"])
    return {"ssh": f"{pod.ssh_host}:{pod.ssh_port}"}


@register(pods.STOP_KIND, concurrency=4)
async def stop(ctx: JobContext):
    conn = ctx.conn
    pod = pods.get_by_id(conn, ctx.payload["pod_id"])
    if_idle = ctx.payload.get("if_idle")
    busy = [r.name for r in runs.on_pod(conn, pod.id, active=True)] + sorted(pod.holds)
    if busy and if_idle:
        return {"kept": pod.name, "because": busy}
    pulls = checkpoints.pulls_pending(conn, [r.id for r in runs.on_pod(conn, pod.id)])
    if pulls and if_idle:
        # checkpoints are still coming down: look again shortly
        jobs.enqueue(conn, pods.STOP_KIND, dict(ctx.payload), delay=2.0)
        return {"deferred": pod.name, "pulls": pulls}
    if pod.state in ("stopped", "terminated") and if_idle:
        return {"already": pod.state}
    if busy and not ctx.payload.get("force"):
        raise PermanentError(f"pod {pod.name} runs {', '.join(busy)}: stop the run first (or "
                             "stop the pod with --force)")
    provider = providers.get(pod.provider)
    terminate = bool(ctx.payload.get("terminate"))
    await asyncio.to_thread(provider.terminate if terminate else provider.stop, pod)
    reason = ctx.payload.get("reason", "by request")
    state = pods.power_off(conn, pod, terminate=terminate, reason=reason)
    await asyncio.to_thread(notify.send, ctx.ws.config(), "pod_stopped",
                            f"lorad: pod {pod.name} {state}", f"{state}: {reason}; its time is "
                            "booked in the cost ledger and no longer billed")
    return {state: pod.name}


@register(pods.CHECK_KIND, concurrency=4)
async def check(ctx: JobContext):
    conn = ctx.conn
    pod = pods.get_by_id(conn, ctx.payload["pod_id"])
    options = dict(ctx.payload.get("options", {}))
    if "musubi_dir" in ctx.payload:  # queued before trainers had options
        options["musubi_dir"] = ctx.payload["musubi_dir"]

    def do_check():
        c = ctx.ws.connect()
        try:
            return pods.run_checks(c, pod, trainer=ctx.payload.get("trainer", trainers.DEFAULT),
                                   options=options, models=ctx.payload.get("models", []))
        finally:
            c.close()

    results = await asyncio.to_thread(do_check)
    failed = [r for r in results if not r["ok"]]
    if failed:
        raise PermanentError("; ".join(f"{r['check']}: {r['fix']}" for r in failed))
    return results
