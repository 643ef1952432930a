"""The `gen.run` job: one generation's life on its service's queue (fal, ...), from submit to
a checked output.

The request id and the handle the service returns are stored the moment the submit answers,
so a daemon that dies while a request is in flight resumes polling it on restart instead of
paying for it twice. The result is fetched as soon as the request is done (fal keeps it only
minutes), the output is downloaded under a name lorad chooses, probed, checked and given a
filmstrip, and the generation's cost goes into the ledger. The job knows no service: it
speaks lorad.generation.services' interface.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from lorad.captions import versions
from lorad.core import ledger, notify
from lorad.core.errors import PermanentError, is_transient
from lorad.core.files import sha256_file
from lorad.core.handlers import JobContext, periodic, register
from lorad.generation import drafting, endpoints, generations, loras, manifests, services
from lorad.generation.services import RequestStatus, ServiceSession
from lorad.media import convert, outputcheck

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 8  # default; [daemon.concurrency] "gen.run" = N overrides it
POLL_GROWTH = 1.5
# service calls block a thread for as long as a client's retries last (minutes in an outage):
# they get threads of their own, so in-flight generations never starve other jobs' threads.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="gen")


async def _call(fn, *args, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(
        _POOL, functools.partial(fn, *args, **kwargs))


def record_submitted(conn: sqlite3.Connection, gen_id: int, request: services.Request) -> None:
    generations.set_status(conn, gen_id, "submitted", request_id=request.request_id,
                           handle=json.dumps(request.handle), submitted_at=time.time(),
                           error=None)


def sweep_done_notice(conn: sqlite3.Connection, config, sweep_id: str) -> None:
    """When this was the sweep's last generation to end, say so (writes serialize, so of two
    ending at once exactly one sees the other done)."""
    counts = generations.sweep_counts(conn, sweep_id)
    if counts.get("pending"):
        return
    flagged = counts.get("flagged", 0)
    notify.soon(config, "generations_done", f"lorad: sweep {sweep_id} done",
                f"{counts.get('completed', 0)} completed, {counts.get('failed', 0)} failed, "
                f"{flagged} flagged by the checks; rate them on the Generations screen (4)")


def check_limits(settings: dict[str, Any], asked: dict[str, Any]) -> dict[str, Any]:
    """The output checks' thresholds: what the generation asked for, else the workspace's."""
    return outputcheck.thresholds(asked.get("check_profile") or settings["check_profile"],
                                  asked.get("min_frame_diff", settings["min_frame_diff"]))


def _output_dir(ws) -> Path:
    return ws.downloads_dir() / "generations"


def finish_output(path: Path, expected: dict[str, Any], media: str,
                  limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """Checks and a filmstrip for a downloaded output (runs in the media process pool);
    `expected`: what the endpoint makes of the request (`Endpoint.expected_output`); `limits`:
    the check thresholds (`outputcheck.thresholds`)."""
    try:
        facts = convert.probe(path)  # once, for the checks and the filmstrip
    except convert.MediaError:
        facts = None
    checks = outputcheck.check(path, expected, probe=facts, media=media, limits=limits)
    if facts is not None:
        convert.filmstrip(path, path.with_suffix(".strip.jpg"), facts)
    return checks


async def _cancel_remote(ctx: JobContext, client: ServiceSession,
                         g: generations.Generation) -> None:
    outcome = await _call(client.cancel, g.handle)
    log.info("generation %d: cancel asked of %s: %s", g.id, g.service, outcome)
    generations.set_status(ctx.conn, g.id, "cancelled", finished_at=time.time(),
                           error=f"cancelled by you ({g.service}: {outcome})")


async def _cancel_remote_whatever_happens(ctx: JobContext, service: services.GenerationService,
                                         gen_id: int) -> None:
    """The job was cancelled in the middle of a call (a slow or hung one: the daemon ran out of
    patience): the request keeps running, and billing, unless the service hears of it. A fresh
    session (the old one may be stuck) sends the cancel, shielded from a second interruption."""
    g = generations.get(ctx.conn, gen_id)
    if not g.request_id or g.status in generations.DONE:
        return

    def cancel_on_a_fresh_session() -> str:
        client = service.open(ctx.ws.config()["generations"], ctx.ws)
        try:
            return client.cancel(g.handle)
        finally:
            client.close()

    async def cancel_and_record() -> None:
        try:
            outcome = await _call(cancel_on_a_fresh_session)
        except Exception as exc:  # noqa: BLE001 - said on the generation; the person acts
            log.warning("generation %d: could not cancel request %s: %s", g.id, g.request_id,
                        exc)
            generations.set_status(ctx.conn, g.id, "cancelled", finished_at=time.time(),
                                   error=f"cancelled here, but {g.service} could not be told "
                                         f"({exc}): cancel request {g.request_id} there")
            return
        generations.set_status(ctx.conn, g.id, "cancelled", finished_at=time.time(),
                               error=f"cancelled by you ({g.service}: {outcome})")

    await asyncio.shield(asyncio.ensure_future(cancel_and_record()))


async def _poll(ctx: JobContext, client: ServiceSession,
                g: generations.Generation) -> RequestStatus:
    cfg = ctx.ws.config()["generations"]
    delay = float(cfg["poll_seconds"])
    shown = None
    while True:
        status = await _call(client.status, g.handle)
        if status.done:
            return status
        state = "in_progress" if status.state == "running" else "submitted"
        if state != shown:
            generations.set_status(ctx.conn, g.id, state)
            shown = state
        if status.state == "queued":
            ahead = status.queue_position
            ctx.progress(None, f"queued on {g.service}" + (f", {ahead} ahead" if ahead else ""))
        else:
            ctx.progress(None, f"generating on {g.service}")
        await ctx.pause(delay)
        if ctx.cancelled.is_set():
            await _cancel_remote(ctx, client, g)
            raise asyncio.CancelledError
        if ctx.stopping.is_set():  # the request stays there; the next daemon resumes polling
            raise asyncio.CancelledError
        delay = min(delay * POLL_GROWTH, float(cfg["poll_max_seconds"]))


async def _submit(ctx: JobContext, client: ServiceSession, g: generations.Generation) -> None:
    """Submit and record the request id, as one step nothing interrupts: a submit cut off after
    the service accepted it would be paid for, lost, and sent again by the next attempt.

    The intent is written first: an attempt that finds it with no request id (the daemon died
    in between) knows the request may have been sent, and does not send it again."""

    async def submit_and_record() -> None:
        generations.mark_submitting(ctx.conn, g.id)
        try:
            request = await _call(client.submit, g.endpoint, g.params)
        except services.SubmitUnknown as exc:
            generations.mark_unknown(ctx.conn, g.id, str(exc))
            raise
        except Exception:  # answered no, or never sent: the intent is void
            generations.set_status(ctx.conn, g.id, "queued")
            raise
        await record_durably(ctx, g.id, request)

    step = asyncio.ensure_future(submit_and_record())
    try:
        await asyncio.shield(step)
    except asyncio.CancelledError:  # the daemon stops, or a cancel ran out of patience
        try:
            await step
        except Exception:  # noqa: BLE001 - nothing was submitted: nothing to undo
            raise asyncio.CancelledError from None
        if ctx.cancelled.is_set():
            await _cancel_remote(ctx, client, generations.get(ctx.conn, g.id))
        raise


async def record_durably(ctx: JobContext, gen_id: int, request: services.Request,
                         first_wait: float = 0.5, max_wait: float = 10.0) -> None:
    """Record an accepted request, however long the store refuses the write (a full disk):
    the request id is the only thing that keeps it from being paid for twice, so it is held
    here and written as soon as the store takes it."""
    wait = first_wait
    while True:
        try:
            record_submitted(ctx.conn, gen_id, request)
            return
        except sqlite3.OperationalError as exc:
            log.warning("generation %d: %s accepted request %s, but the store cannot record it "
                        "(%s); trying again in %.1f s", gen_id, request.handle.get("endpoint_id",
                        "the service"), request.request_id, exc, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, max_wait)


_UPLOAD_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}
_UPLOADED: dict[tuple[str, str], str] = {}  # (service, sha256) -> URL, until a row records it


async def _upload_inputs(ctx: JobContext, client: ServiceSession,
                         g: generations.Generation) -> generations.Generation:
    """Local files named in the parameters (`--image`) go to the service's storage first; the
    parameters then hold their URLs, and `inputs` which file each was."""
    def is_local(v: Any) -> bool:
        return isinstance(v, str) and v.startswith(generations.LOCAL)

    local = {k: v[len(generations.LOCAL):] for k, v in g.params.items() if is_local(v)}
    # a list of files (a captioner's video_urls / image_urls): each uploaded, as `name.N`
    listed = {f"{k}.{i}": item[len(generations.LOCAL):] for k, v in g.params.items()
              if isinstance(v, list) for i, item in enumerate(v) if is_local(item)}
    if not local and not listed:
        return g
    params, inputs = dict(g.params), dict(g.inputs)
    params.update({k: list(v) for k, v in params.items() if isinstance(v, list)})
    for name, path in {**local, **listed}.items():
        if not Path(path).is_file():
            raise PermanentError(f"{name}: {path} is not there any more; put it back, or "
                                 "generate again with another --image")
        ctx.progress(None, f"uploading {Path(path).name} to {g.service}", force=True)
        digest = await _call(sha256_file, Path(path))
        key = (id(asyncio.get_running_loop()), digest)  # a lock belongs to one event loop
        async with _UPLOAD_LOCKS.setdefault(key, asyncio.Lock()):  # a sweep's jobs at once
            known = (g.service, digest)
            url = generations.uploaded_url(ctx.conn, digest, g.service) or _UPLOADED.get(known)
            if url is None:
                url = _UPLOADED[known] = await _call(client.upload, Path(path))
        field_name, _, index = name.partition(".")
        if index:
            params[field_name][int(index)] = url
        else:
            params[name] = url
        inputs[name] = {"path": path, "sha256": digest, "url": url}
    generations.set_inputs(ctx.conn, g.id, params, inputs)
    return generations.get(ctx.conn, g.id)


async def _run(ctx: JobContext, service: services.GenerationService, client: ServiceSession,
               g: generations.Generation) -> dict[str, Any]:
    conn = ctx.conn
    if not g.request_id:
        g = await _upload_inputs(ctx, client, g)
        if ctx.cancelled.is_set():
            generations.set_status(conn, g.id, "cancelled", finished_at=time.time())
            raise asyncio.CancelledError
        ctx.progress(None, f"submitting to {g.endpoint}", force=True)
        await _submit(ctx, client, g)
        g = generations.get(conn, g.id)
    status = await _poll(ctx, client, g)
    if status.failed:
        raise services.RequestFailed(f"{g.service} finished request {g.request_id} with an "
                                     f"error: {status.error} ({status.error_type or 'no type'})",
                                     status.error_type)
    ctx.progress(None, "fetching the result", force=True)
    try:
        result = await _call(client.result, g.handle)
    except services.ResultGone as exc:
        if g.clip_id is not None:
            raise services.ResultGone(f"{exc}. Draft it again (`lorad captions draft` with "
                                      f"--clip {g.clip_id})") from None
        raise services.ResultGone(f"{exc}. Retake it (r on the Generations screen) to generate "
                                  "it again") from None
    config = ctx.ws.config()  # read once: the download, the checks and the notice use it
    if endpoints.get(g.endpoint).media == "text":
        return _finish_caption(ctx, service, g, result, config)
    url = service.output_url(result)
    max_bytes = int(config["generations"]["max_output_mb"]) * 1_000_000
    ctx.progress(None, "downloading the output", force=True)
    path = await _call(client.download, url, _output_dir(ctx.ws), max_bytes=max_bytes,
                       stem=f"gen-{g.id:06d}")
    endpoint = endpoints.get(g.endpoint)
    expected = endpoint.expected_output(g.params)  # fal's defaults (interpolation) included
    limits = check_limits(config["generations"], g.check_settings)
    checks = await ctx.in_process(finish_output, path, expected, endpoint.media, limits)
    metrics = status.metrics or {}
    inference = metrics.get("inference_time")
    inference = float(inference) if isinstance(inference, (int, float)) else None
    seed = result.get("seed") if isinstance(result.get("seed"), int) else g.seed
    cost, book = charged(service, result, g.cost)
    scores = getattr(service, "metrics_of", lambda _r: {})(result)
    if inference is None and isinstance(result.get("seconds"), (int, float)):
        inference = float(result["seconds"])

    usable = checks.get("usable", True)

    made = replace(g, seed=seed, output_path=str(path), checks=checks)
    manifest = manifests.for_generation(made, loras.get_by_id(conn, g.lora_id) if g.lora_id
                                        else None, checks, expected)
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def record(c: sqlite3.Connection) -> None:
        now = time.time()
        done = {"output_path": str(path), "checks": json.dumps(checks),
                "inference_time": inference, "finished_at": now, "seed": seed,
                "manifest": json.dumps(manifest, sort_keys=True), "cost": cost,
                "metrics": json.dumps(scores) if scores else None}
        detail = f"{g.endpoint} request {g.request_id}"
        if usable:
            generations.set_status(c, g.id, "completed", error=None, **done)
        else:  # paid for, and good for nothing: a failed generation, its cost spent
            problem = "; ".join(checks.get("problems", [])) or "unusable output"
            generations.set_status(c, g.id, "failed", **done, error=(
                f"bad output ({problem}); ${cost or 0:.2f} was spent on it: retake it"))
            detail = f"bad output: {detail}"
        if cost and book:
            ledger.book(c, ledger.GENERATION, cost, detail, generation_id=g.id, at=now)
        if g.sweep_id:
            sweep_done_notice(c, config, g.sweep_id)

    ctx.on_success(record)
    return {"generation_id": g.id, "output": str(path), "ok": checks.get("ok")}


def charged(service: services.GenerationService, result: dict[str, Any],
            estimate: float | None) -> tuple[float | None, bool]:
    """What a request cost and whether the ledger books it: the service's word when only the
    result can say (a command's pod time; not booked when a RunPod pod's uptime already is),
    else `estimate` (the price before it was sent, or what the result said it charged)."""
    charge = getattr(service, "charge", None)
    return charge(result) if charge is not None else (estimate, True)


def _finish_caption(ctx: JobContext, service: services.GenerationService,
                    g: generations.Generation, result: dict[str, Any], config
                    ) -> dict[str, Any]:
    """A caption draft's answer: kept as a file beside the generations' outputs (the raw text,
    whatever becomes of it), written as the clip's draft caption when it may be, and its cost,
    as charged when the service says, booked; all in the job's success transaction, so a crash
    can neither lose it nor write it twice."""
    text, said = service.output_text(result)
    path = _output_dir(ctx.ws) / f"gen-{g.id:06d}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    cost, book = charged(service, result, said if said is not None else g.cost)

    def record(c: sqlite3.Connection) -> None:
        now = time.time()
        outcome = drafting.record(c, g, text)
        generations.set_status(c, g.id, "completed" if text.strip() else "failed",
                               output_path=str(path), finished_at=now, cost=cost,
                               error=None if text.strip() else outcome,
                               checks=json.dumps({"draft": outcome}))
        if cost and book:
            ledger.book(c, ledger.CAPTION_DRAFT, cost, f"{g.endpoint} request {g.request_id} "
                        f"(clip {g.clip_id})", generation_id=g.id, at=now)
        if g.dataset_id is not None and not generations.drafts_pending(c, g.dataset_id):
            waiting = len(versions.unreviewed_drafts(c, g.dataset_id))  # the batch is done
            notify.soon(config, "generations_done", "lorad: captions drafted",
                        f"{waiting} drafted caption(s) wait for review in the Captions screen "
                        "(2); y accepts one as it is")

    ctx.on_success(record)
    return {"generation_id": g.id, "clip_id": g.clip_id, "output": str(path)}


@register(generations.JOB_KIND, concurrency=MAX_IN_FLIGHT, waits=True, process_pool=True)
async def run(ctx: JobContext) -> dict[str, Any]:
    conn = ctx.conn
    g = generations.get(conn, ctx.payload["generation_id"])
    if g.status in ("completed", "cancelled", generations.UNKNOWN):  # a failed one: tried again
        return {"generation_id": g.id, "status": g.status}
    if g.status == "submitting" and not g.request_id:
        generations.mark_unknown(conn, g.id, "an earlier attempt was sending it when it was cut "
                                 "off (the daemon stopped, or its answer was lost): the service "
                                 "may have it")
        return {"generation_id": g.id, "status": generations.UNKNOWN}
    service = services.get(g.service)
    try:  # off the event loop: a client loads its TLS setup, the config is a file read
        client = await _call(lambda: service.open(ctx.ws.config()["generations"], ctx.ws))
    except services.ServiceError as exc:
        message = str(exc)
        if g.request_id:
            message += (f"; request {g.request_id} is still on {g.service}: with the key "
                        f"exported, `lorad jobs retry {ctx.job.id}` collects it (fal keeps "
                        "results for minutes to an hour)")
        generations.set_status(conn, g.id, "failed", error=message, finished_at=time.time())
        raise services.CredentialsMissing(message) from None
    try:
        return await _run(ctx, service, client, g)
    except asyncio.CancelledError:
        if ctx.cancelled.is_set():  # a cancel must reach the service, even mid-call
            await _cancel_remote_whatever_happens(ctx, service, g.id)
        raise
    except services.SubmitUnknown:
        return {"generation_id": g.id, "status": generations.UNKNOWN}  # said; nothing to retry
    except Exception as exc:
        last_try = ctx.job.attempts >= ctx.job.max_attempts
        if not is_transient(exc) or last_try:
            generations.set_status(conn, g.id, "failed", error=str(exc), finished_at=time.time())
        else:
            log.info("generation %d: %s (will retry)", g.id, exc)
        raise
    finally:
        await _call(client.close)


@periodic
def settle_generations(conn: sqlite3.Connection) -> None:
    """A generation whose job ended without it (cancelled while queued, failed by hand) takes
    the job's end state, so nothing shows as in flight forever."""
    rows = conn.execute(
        "SELECT g.id, j.state, j.error FROM generations g JOIN jobs j ON j.id = g.job_id"
        " WHERE g.status NOT IN ('completed', 'failed', 'cancelled', 'draft', 'unknown')"
        " AND j.state IN ('failed', 'cancelled', 'succeeded')").fetchall()
    for row in rows:
        status = "cancelled" if row["state"] == "cancelled" else "failed"
        generations.set_status(
            conn, row["id"], status, finished_at=time.time(),
            error=row["error"] or f"its job ended ({row['state']}) without a result")
