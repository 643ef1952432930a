"""The gen.run job against the loopback fal queue double: sweeps end to end, restarts with
requests in flight, each error class, cancels, hostile file names and broken outputs."""

from __future__ import annotations

import json
import signal

import pytest
from fal_double import Latency
from helpers import WAN22, run_jobs, wait_for
from helpers import queue_generation as gen

from lorad.core import jobs
from lorad.generation import generations, loras, ratings

FLUX = "fal-ai/flux-lora"


def events(conn, gen_id):
    return [r[0] for r in conn.execute(
        "SELECT status FROM generation_events WHERE generation_id = ? ORDER BY id", (gen_id,))]


def test_a_sweep_runs_end_to_end(ws, conn, fal, truck, notices):
    plan = generations.plan_sweep(conn, WAN22, lora_names=["truck-e4", "truck-e8"],
                                  scales=[0.6, 1.0], prompts=["TRK, a parked truck"],
                                  seeds=[11, 12], extra={"num_frames": 17})
    ids = generations.submit_sweep(conn, plan, budget=10.0)
    run_jobs(ws)
    gens = generations.list_all(conn, sweep_id=plan.sweep_id)
    assert [g.id for g in gens] == ids
    assert {g.status for g in gens} == {"completed"}
    assert fal.submits[WAN22] == 8
    sent = sorted((r.body["loras"][0]["path"], r.body["loras"][0]["scale"], r.body["seed"],
                   r.body["loras"][0]["transformer"]) for r in fal.calls("POST", WAN22))
    assert sent == sorted((lo.url, s, seed, lo.expert) for lo in loras.list_all(conn)
                          for s in (0.6, 1.0) for seed in (11, 12))
    out_dir = ws.downloads_dir() / "generations"
    for g in gens:
        path = out_dir / f"gen-{g.id:06d}.mp4"
        assert g.output_path == str(path) and path.stat().st_size > 1000
        assert path.with_suffix(".strip.jpg").exists()
        # 17 frames at 16 fps asked: fal's default interpolation doubles both
        assert g.checks["ok"] and g.checks["frames"] == 33 and g.checks["width"] == 160
        assert g.checks["expected"] == {"frames": 33, "fps": 32.0}
        assert g.request_id and set(g.handle) == {"request_id", "endpoint_id", "status_url",
                                                  "response_url", "cancel_url"}
        assert events(conn, g.id)[:2] == ["draft", "queued"] and events(conn, g.id)[-1] == \
            "completed"
    assert generations.spent(conn) == pytest.approx(plan.cost)
    # one notice when the last of the 8 ended, whichever it was
    wait_for(lambda: notices.titles(), message="the sweep's notice")
    assert notices.titles() == [f"lorad: sweep {plan.sweep_id} done"]
    assert notices.received[0]["message"].startswith("8 completed, 0 failed")


@pytest.mark.parametrize("extra,frames,fps", [
    ({}, 33, 32.0),  # fal's defaults: film interpolation, one frame between each pair
    ({"interpolator_model": "none"}, 17, 16.0),
    ({"num_interpolated_frames": 0}, 17, 16.0),
    ({"num_interpolated_frames": 2, "adjust_fps_for_interpolation": False}, 49, 16.0),
])
def test_wan22_outputs_are_checked_against_what_fal_makes_of_the_request(ws, conn, fal, truck,
                                                                        extra, frames, fps):
    """Every default Wan 2.2 output used to be flagged: more frames and fps than asked."""
    gen_id = gen(conn, extra={"num_frames": 17, **extra})
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "completed" and g.checks["problems"] == [] and g.checks["ok"]
    assert (g.checks["frames"], g.checks["fps"]) == (frames, fps)
    assert g.checks["expected"] == {"frames": frames, "fps": fps}


def test_a_flux_image_sent_back_as_a_data_uri_is_saved(ws, conn, fal):
    from pathlib import Path

    from fal_double import media

    loras.add(conn, "style", "https://hf.example/style.safetensors", base_model="flux-dev")
    fal.plan_next(output="image")
    gen_id = generations.create(conn, FLUX, "a style", lora="style", seed=3, extra={
        "sync_mode": True, "image_size": {"width": 1280, "height": 720}, "acceleration": "regular"})
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "completed" and g.output_path.endswith(f"gen-{gen_id:06d}.png")
    assert Path(g.output_path).read_bytes() == media()["image"] and g.checks["kind"] == "image"
    assert fal.calls("GET", "/files/") == []  # the bytes came inline
    assert g.cost == pytest.approx(0.035 * 1280 * 720 / 1e6, abs=1e-6)


def test_static_output_is_flagged_before_anyone_looks(ws, conn, fal, truck):
    fal.plan_next(output="static")
    gen_id = gen(conn)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "completed" and not g.checks["ok"]
    assert any("frozen" in p for p in g.checks["problems"])


@pytest.mark.parametrize("output,problem", [
    ("image", "the endpoint makes a video, but the output is a image"),
    ("broken", "unreadable output"),
])
def test_a_video_endpoint_that_returns_no_video_is_a_failed_generation_paid_for(
        ws, conn, fal, truck, output, problem):
    """A PNG (or an unreadable file) from a video endpoint used to pass as `completed`."""
    fal.plan_next(output=output)
    gen_id = gen(conn)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "failed" and problem in g.error and "was spent on it" in g.error
    assert not g.checks["usable"]
    spent = [dict(r) for r in conn.execute(
        "SELECT amount, detail FROM cost_entries WHERE generation_id = ?", (gen_id,))]
    assert spent == [{"amount": g.cost, "detail": f"bad output: {WAN22} request {g.request_id}"}]
    assert jobs.get(conn, g.job_id).state == "succeeded"  # not retried: the result is final


def test_image_endpoint_output_is_downloaded_as_png(ws, conn, fal):
    loras.add(conn, "style", "https://hf.example/style.safetensors", base_model="flux-dev")
    fal.plan_next(output="image")
    gen_id = generations.create(conn, FLUX, "a style", lora="style", seed=3)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "completed" and g.output_path.endswith(f"gen-{gen_id:06d}.png")
    assert g.checks["kind"] == "image"


def test_hostile_file_name_cannot_escape_the_download_folder(ws, conn, fal, truck, tmp_path):
    fal.plan_next(file_name="../../../../escaped.mp4")
    gen_id = gen(conn)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    out_dir = ws.downloads_dir() / "generations"
    assert g.status == "completed"
    assert [p.name for p in out_dir.iterdir() if p.suffix == ".mp4"] == [f"gen-{gen_id:06d}.mp4"]
    assert not list(tmp_path.rglob("escaped*"))


def test_daemon_killed_with_requests_in_flight_collects_every_result_once(
        ws, conn, fal, truck, daemon_proc, monkeypatch, fault_report):
    fal.latency = Latency(queue_polls=10**9)  # everything waits in the queue until released
    ids = [gen(conn, seed=100 + i) for i in range(6)]
    proc = daemon_proc.start()
    wait_for(lambda: all(generations.get(conn, i).request_id for i in ids), timeout=60,
             message="all six requests submitted")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert {generations.get(conn, i).status for i in ids} <= {"submitted", "in_progress"}
    with fal.lock:  # release the queue: every request runs for one poll, then completes
        for job in fal.jobs.values():
            job.latency = Latency(queue_polls=0, run_polls=1)
    daemon_proc.start()
    wait_for(lambda: {generations.get(conn, i).status for i in ids} == {"completed"},
             timeout=60, message="all six completed after the restart")
    fault_report("kill -9 with 6 fal requests in flight", counted="paid requests vs "
                 "generations", expected=6, observed=fal.submits[WAN22],
                 daemon_alive=daemon_proc.proc.poll() is None)
    assert fal.submits[WAN22] == 6
    assert len({generations.get(conn, i).request_id for i in ids}) == 6
    assert conn.execute("SELECT COUNT(*) FROM cost_entries WHERE kind = 'generation'"
                        ).fetchone()[0] == 6


def test_validation_error_fails_that_generation_with_the_field_and_no_retry(ws, conn, fal,
                                                                          truck):
    bad = gen(conn)
    conn.execute("UPDATE generations SET params = ? WHERE id = ?",
                 (json.dumps({"seed": 1}), bad))  # no prompt: fal answers 422
    good = gen(conn, seed=8)
    run_jobs(ws)
    b = generations.get(conn, bad)
    assert b.status == "failed" and "prompt" in b.error and "field required" in b.error
    assert jobs.get(conn, b.job_id).attempts == 1
    assert generations.get(conn, good).status == "completed"


def test_completed_with_error_is_a_failure_with_its_type(ws, conn, fal, truck):
    fal.plan_next(error="Runner disconnected", error_type="runner_disconnected")
    gen_id = gen(conn)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "failed"
    assert "Runner disconnected" in g.error and "runner_disconnected" in g.error
    assert generations.spent(conn) == 0


def test_rate_limits_ingress_errors_and_dropped_connections_are_retried(ws, conn, fal, truck):
    fal.fail_next(429, 2, match="POST")
    fal.fail_next(503, 1, match="/status")
    fal.drop_next(1, match="/status")
    gen_id = gen(conn)
    run_jobs(ws)
    assert generations.get(conn, gen_id).status == "completed"
    assert fal.submits[WAN22] == 1
    assert [r.status for r in fal.calls("POST")][:3] == [429, 429, 200]


def test_runner_503_is_left_to_the_job_backoff_not_the_client(ws, conn, fal, truck):
    """fal_client retries a 503 only from the ingress; a runner's 503 ends the call, and the
    job tries again after its backoff."""
    fal.fail_next(503, 1, ingress=False, match="POST",
                  headers={"X-Fal-Error-Type": "runner_scheduling_failure"},
                  body={"detail": "no runner", "error_type": "runner_scheduling_failure"})
    gen_id = gen(conn)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert [r.status for r in fal.calls("POST")] == [503, 200]
    assert g.status == "completed" and jobs.get(conn, g.job_id).attempts == 2
    assert fal.submits[WAN22] == 1


def test_expired_result_fails_with_advice(ws, conn, fal, truck, monkeypatch):
    from lorad.generation.services import fal as fal_mod

    real = fal_mod.Fal.result

    def expire_then_fetch(self, request):
        fal.expire(request["response_url"].rsplit("/", 1)[-1])
        return real(self, request)

    monkeypatch.setattr(fal_mod.Fal, "result", expire_then_fetch)
    gen_id = gen(conn)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "failed" and "retake" in g.error.lower()


def test_missing_key_fails_clearly_without_sending_anything(ws, conn, fal, truck, monkeypatch):
    monkeypatch.delenv("FAL_KEY")
    gen_id = gen(conn)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "failed" and "FAL_KEY" in g.error
    assert fal.requests == []


def test_cancel_while_queued_cancels_on_fal(ws, conn, fal, truck):
    fal.latency = Latency(queue_polls=10**9)
    gen_id = gen(conn)
    job_id = generations.get(conn, gen_id).job_id

    import threading

    def cancel_when_submitted():
        wait_for(lambda: generations.get(conn2, gen_id).request_id, timeout=30)
        jobs.request_cancel(conn2, job_id)

    conn2 = ws.connect()
    t = threading.Thread(target=cancel_when_submitted)
    t.start()
    try:
        run_jobs(ws)
    finally:
        t.join()
        conn2.close()
    g = generations.get(conn, gen_id)
    assert g.status == "cancelled" and jobs.get(conn, job_id).state == "cancelled"
    assert len(fal.calls("PUT", "/cancel")) == 1
    assert fal.jobs[g.request_id].state == "COMPLETED"  # removed from fal's queue


def test_retake_of_a_rated_generation_runs_and_links_back(ws, conn, fal, truck):
    first = gen(conn)
    run_jobs(ws)
    ratings.rate(conn, first, stars=2, verdict="retake", tags=["spinning tires"])
    again = generations.retake(conn, first, scale=0.6)
    run_jobs(ws)
    g = generations.get(conn, again)
    assert g.status == "completed" and g.parent_id == first
    assert fal.calls("POST", WAN22)[-1].body["loras"][0]["scale"] == 0.6
    assert ratings.current(conn, first).verdict == "retake"


def test_daemon_stopped_with_requests_in_flight_hands_them_to_the_next_one(
        ws, conn, fal, truck, daemon_proc):
    fal.latency = Latency(queue_polls=10**9)
    ids = [gen(conn, seed=200 + i) for i in range(3)]
    proc = daemon_proc.start()
    wait_for(lambda: all(generations.get(conn, i).request_id for i in ids), timeout=60,
             message="all three requests submitted")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    job_states = {jobs.get(conn, generations.get(conn, i).job_id).state for i in ids}
    assert job_states == {"queued"}  # released, not failed, not left running
    with fal.lock:
        for job in fal.jobs.values():
            job.latency = Latency(queue_polls=0, run_polls=0)
    run_jobs(ws)
    assert {generations.get(conn, i).status for i in ids} == {"completed"}
    assert fal.submits[WAN22] == 3


def test_a_stop_during_a_slow_submit_still_records_the_request(ws, conn, fal, truck,
                                                              monkeypatch):
    """fal accepted the request but its answer is still on the way when the daemon's shutdown
    grace runs out and it interrupts the job: the job must wait for the answer and keep the
    id, or the next daemon pays for the same generation again."""
    import threading

    from lorad.generation.services import fal as fal_mod

    real_submit, real_release = fal_mod.Fal.submit, jobs.release
    answer = threading.Event()

    def answer_held_back(self, *args, **kwargs):
        out = real_submit(self, *args, **kwargs)  # fal has it (and bills it)
        assert answer.wait(30), "the daemon never interrupted the job"
        return out

    def release_then_answer(*args, **kwargs):  # _shutdown: the job was just interrupted
        real_release(*args, **kwargs)
        answer.set()

    monkeypatch.setattr(fal_mod.Fal, "submit", answer_held_back)
    monkeypatch.setattr(jobs, "release", release_then_answer)
    ws.config_path.write_text(ws.config_path.read_text().replace(
        "[daemon]\n", "[daemon]\nshutdown_grace_seconds = 0\n", 1))
    gen_id = gen(conn)
    run_jobs(ws, until=lambda c: fal.submits[WAN22] == 1)
    assert answer.is_set()  # the answer came only after the interruption
    g = generations.get(conn, gen_id)
    assert g.request_id and jobs.get(conn, g.job_id).state == "queued"
    monkeypatch.setattr(fal_mod.Fal, "submit", real_submit)
    run_jobs(ws)
    assert generations.get(conn, gen_id).status == "completed"
    assert fal.submits[WAN22] == 1


def test_cancelling_a_handed_back_generation_cancels_it_on_fal(ws, conn, fal, truck,
                                                               monkeypatch):
    fal.latency = Latency(queue_polls=10**9)
    gen_id = gen(conn)
    run_jobs(ws, until=lambda c: generations.get(c, gen_id).request_id)
    g = generations.get(conn, gen_id)
    assert g.status == "submitted" and jobs.get(conn, g.job_id).state == "queued"
    assert generations.cancel_job(conn, g.job_id) == "cancelling"  # `lorad jobs cancel` too
    run_jobs(ws)
    assert generations.get(conn, gen_id).status == "cancelled"
    assert len(fal.calls("PUT", "/cancel")) == 1
    assert fal.jobs[g.request_id].state == "COMPLETED"  # taken off fal's queue
    assert jobs.get(conn, g.job_id).state == "cancelled"


def test_retrying_a_failed_generation_collects_its_request(ws, conn, fal, truck, monkeypatch):
    fal.latency = Latency(queue_polls=10**9)
    gen_id = gen(conn)
    run_jobs(ws, until=lambda c: generations.get(c, gen_id).request_id)
    monkeypatch.delenv("FAL_KEY")
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "failed" and f"lorad jobs retry {g.job_id}" in g.error
    monkeypatch.setenv("FAL_KEY", fal.key)
    with fal.lock:
        fal.jobs[g.request_id].latency = Latency(queue_polls=0, run_polls=0)
    jobs.retry(conn, g.job_id)
    run_jobs(ws)
    assert generations.get(conn, gen_id).status == "completed"
    assert fal.submits[WAN22] == 1


def test_image_to_video_uploads_the_local_start_image_once(ws, conn, fal, truck, tmp_path):
    from fal_double import media

    start = tmp_path / "start frame.png"
    start.write_bytes(media()["image"])
    i2v = "fal-ai/wan/v2.2-a14b/image-to-video/lora"
    plan = generations.plan_sweep(conn, i2v, lora_names=["truck-e8"], scales=[0.6, 1.0],
                                  prompts=["TRK, parked"], seeds=[1],
                                  extra={"num_frames": 17}, files={"image_url": start})
    ids = generations.submit_sweep(conn, plan, budget=None)
    run_jobs(ws)
    gens = [generations.get(conn, i) for i in ids]
    assert {g.status for g in gens} == {"completed"}
    assert len(fal.uploads) == 1  # the same file goes up once for the whole sweep
    url = gens[0].params["image_url"]
    assert all(g.params["image_url"] == url for g in gens) and url.startswith(fal.url)
    assert {r.body["image_url"] for r in fal.calls("POST", i2v)} == {url}
    assert gens[1].inputs["image_url"]["path"] == str(start)
    assert len(gens[1].inputs["image_url"]["sha256"]) == 64
    import httpx

    assert httpx.get(url).content == start.read_bytes()


def test_a_start_image_gone_before_upload_fails_that_generation_clearly(ws, conn, fal, truck,
                                                                       tmp_path):
    from fal_double import media

    start = tmp_path / "start.png"
    start.write_bytes(media()["image"])
    gen_id = gen(conn, endpoint="fal-ai/wan/v2.2-a14b/image-to-video/lora",
                 files={"image_url": start})
    start.unlink()
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "failed" and "is not there any more" in g.error
    assert fal.submits == {} and fal.uploads == []
    with pytest.raises(generations.GenerationError, match="no such file"):
        gen(conn, endpoint="fal-ai/wan/v2.2-a14b/image-to-video/lora",
            files={"image_url": start})


def test_a_smoke_run_does_not_flag_a_frozen_clip_and_every_output_says_what_made_it(
        ws, conn, fal, truck, capsys):
    """The frozen check's threshold follows the run's check profile and is recorded, with the
    tools and effective parameters, in the generation's manifest and beside its output."""
    from pathlib import Path

    from lorad.cli import main

    for _ in range(2):
        fal.plan_next(output="static")
    args = ["-w", str(ws.root), "gen", "TRK, a parked truck", "--lora", "truck-e8",
            "--endpoint", WAN22, "--param", "num_frames=17", "--seed", "3"]
    assert main([*args, "--check-profile", "smoke"]) == 0
    assert main(args) == 0  # the workspace's default: quality
    run_jobs(ws)
    smoke, quality = sorted(generations.list_all(conn), key=lambda g: g.id)
    assert smoke.checks["ok"] and smoke.checks["thresholds"]["profile"] == "smoke"
    assert not quality.checks["ok"] and "frozen" in quality.checks["problems"][0]
    m = quality.manifest
    assert m["checks"]["thresholds"] == {"profile": "quality", "min_frame_diff": 0.003,
                                         "min_frame_diff_from": "profile"}
    assert m["tools"]["ffmpeg"] and m["endpoint"] == WAN22 and m["seed"] == 3
    assert m["params_effective"]["num_interpolated_frames"] == 1  # fal's default, recorded
    assert m["lora"]["url"] == "https://hf.example/o/truck/resolve/main/e8.safetensors"
    assert json.loads(Path(quality.output_path).with_suffix(".json").read_text()) == m
