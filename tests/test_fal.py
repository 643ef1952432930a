"""The fal queue client against the loopback double: no network, retries record their waits."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import subprocess

import httpx
import pytest
from fal_double import FLUX, WAN21_I2V, WAN21_T2V, WAN22_I2V, WAN22_T2V, Latency, fal_double, media

from lorad.core.errors import LoradError, PermanentError, is_transient
from lorad.generation.services.fal import (
    CDN_URL,
    QUEUE_URL,
    REST_URL,
    UPLOAD_LIMIT,
    Fal,
    FalAuthError,
    FalDownloadError,
    FalError,
    FalGone,
    FalRequestFailed,
    FalSubmitUnknown,
    FalTransient,
    FalValidationError,
    Submitted,
    app_path,
    safe_name,
    should_retry,
    upload_name,
)

KEY = "fal_SECRET_9c1e:77b2a4f0d3e5c6b8"
WAN = {"prompt": "a corgi surfing", "num_frames": 17, "resolution": "480p", "seed": 7,
       "loras": [{"path": "https://v3.fal.media/files/x/lora.safetensors", "scale": 1.0,
                  "transformer": "both"}]}


@pytest.fixture
def fal(monkeypatch):
    monkeypatch.setenv("FAL_KEY", KEY)
    for name in ("FAL_QUEUE_URL", "FAL_QUEUE_RUN_HOST", "FAL_RUN_HOST", "FAL_REST_URL"):
        monkeypatch.delenv(name, raising=False)
    with fal_double(key=KEY, latency=Latency(queue_polls=1, run_polls=1)) as double:
        yield double


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fal, sleeps):
    with Fal(fal.url, sleep=sleeps.append) as c:
        yield c


def statuses(fal, method=None, contains=""):
    return [r.status for r in fal.calls(method, contains)]


# -- the happy path ----------------------------------------------------------------------------------------

def test_submit_poll_result(fal, client):
    sub = client.submit(WAN22_T2V, WAN)
    base = f"{fal.url}/fal-ai/wan/requests/{sub.request_id}"  # owner/app only, not the endpoint path
    assert (sub.status_url, sub.response_url, sub.cancel_url) == (f"{base}/status", base, f"{base}/cancel")
    assert sub.endpoint_id == WAN22_T2V and fal.submits == {WAN22_T2V: 1}
    assert fal.requests[0].body == WAN and fal.requests[0].path == f"/{WAN22_T2V}"

    first, second, third = (client.status(sub) for _ in range(3))
    assert (first.state, first.queue_position, first.done) == ("IN_QUEUE", 0, False)
    assert (second.state, second.logs, second.raw["logs"]) == ("IN_PROGRESS", [], None)
    assert (third.state, third.done, third.failed, third.error) == ("COMPLETED", True, False, None)
    assert third.metrics == {"inference_time": 1.5}
    assert statuses(fal, "GET", "/status") == [202, 202, 200]

    out = client.result(sub)
    assert out["seed"] == 7 and out["prompt"] == "a corgi surfing"
    assert out["video"]["content_type"] == "video/mp4" and out["video"]["url"].startswith(f"{fal.url}/files/")
    assert all(r.authorized for r in fal.requests) and fal.submits == {WAN22_T2V: 1}


def test_logs_only_when_asked(fal, client):
    sub = client.submit(WAN22_T2V, WAN)
    client.status(sub)
    running = client.status(sub, logs=True)
    assert [line["message"] for line in running.logs] == ["Loading LoRA weights", "Sampling step 1"]
    assert {"level", "source", "timestamp"} <= set(running.logs[0])
    assert fal.requests[-1].path.endswith("/status?logs=1")
    done = client.status(sub, logs=True)
    assert done.logs[-1]["message"] == "Writing video" and len(done.logs) == 3


def test_queue_position_counts_the_requests_ahead(fal, client):
    subs = [client.submit(WAN22_T2V, WAN) for _ in range(3)]
    assert [client.status(s).queue_position for s in reversed(subs)] == [2, 1, 0]
    assert fal.submits == {WAN22_T2V: 3}


def test_wait_backs_off_and_fetches_the_result_as_soon_as_completed(fal, client, sleeps):
    fal.latency = Latency(queue_polls=2, run_polls=2)
    sub = client.submit(WAN22_I2V, {**WAN, "image_url": "https://example.com/a.png"})
    seen = []
    out = client.wait(sub, on_status=lambda s: seen.append(s.state))
    assert seen == ["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    assert sleeps == [2.0, 3.0, 4.5, 6.75]
    assert out["video"]["file_size"] > 0
    assert [(r.method, r.status) for r in fal.requests[-2:]] == [("GET", 200), ("GET", 200)]
    assert fal.requests[-1].path == f"/fal-ai/wan/requests/{sub.request_id}"


def test_wait_gives_up_as_transient(fal, client, sleeps):
    fal.latency = Latency(queue_polls=100)
    sub = client.submit(WAN22_T2V, WAN)
    with pytest.raises(FalTransient, match=f"fal request {sub.request_id} still IN_QUEUE after 0.5 s"):
        client.wait(sub, timeout=0.5, interval=1)  # the next poll would come after the deadline
    assert sleeps == []


def test_latency_in_seconds(fal):
    fal.latency = Latency(queue_polls=0, run_polls=0, queue_seconds=0.05, run_seconds=0.05)
    seen = []
    with Fal(fal.url) as c:  # real sleeps: wait() is the polling loop
        sub = c.submit(WAN22_T2V, WAN)
        c.wait(sub, interval=0.01, max_interval=0.02, on_status=lambda s: seen.append(s.state))
    assert seen[0] == "IN_QUEUE" and "IN_PROGRESS" in seen and seen[-1] == "COMPLETED"
    assert seen.index("COMPLETED") >= 4


def test_resume_from_a_stored_request(fal, client):
    sub = client.submit(WAN22_T2V, WAN)
    stored = json.loads(json.dumps(dataclasses.asdict(sub)))
    assert client.status(stored).state == "IN_QUEUE"
    bare = client.handle(WAN22_T2V, sub.request_id)  # only the id was kept: owner/app URLs
    assert bare == sub
    assert client.status({"endpoint_id": WAN22_T2V, "request_id": sub.request_id}).state == "IN_PROGRESS"
    assert app_path("workflows/me/flow/x") == "workflows/me/flow" and app_path(FLUX) == "fal-ai/flux-lora"


def test_the_double_also_serves_full_endpoint_urls(fal, client):
    sub = client.submit(WAN22_T2V, WAN)
    full = f"{fal.url}/{WAN22_T2V}/requests/{sub.request_id}"
    by_full_id = Submitted(sub.request_id, f"{full}/status", full, f"{full}/cancel")
    assert client.status(by_full_id).state == "IN_QUEUE"


# -- failures of the request itself ------------------------------------------------------------------------

def test_completed_with_an_error_is_a_failure(fal, client, sleeps):
    fal.plan_next(error="Runner disconnected", error_type="runner_disconnected")
    sub = client.submit(WAN22_T2V, WAN)
    with pytest.raises(FalRequestFailed, match="failed: Runner disconnected") as info:
        client.wait(sub, interval=0.01)
    assert info.value.error_type == "runner_disconnected" and isinstance(info.value, PermanentError)
    status = client.status(sub)
    assert status.state == "COMPLETED" and status.failed and status.error_type == "runner_disconnected"
    with pytest.raises(FalRequestFailed, match="fal answered 503: Runner disconnected") as info:
        client.result(sub)  # the model's error, with x-fal-error-type: not an ingress error, no retry
    assert info.value.error_type == "runner_disconnected"
    assert statuses(fal, "GET", f"requests/{sub.request_id}")[-1] == 503 and len(sleeps) == 2


def test_a_bare_5xx_from_the_result_is_worth_another_try(fal, client, sleeps):
    """No error type: not the model's answer but a hiccup in front of it."""
    sub = client.submit(WAN22_T2V, WAN)
    while not client.status(sub).done:
        pass
    fal.fail_next(500, ingress=False, match=f"GET /fal-ai/wan/requests/{sub.request_id}",
                  body={"detail": "Internal Server Error"})
    with pytest.raises(FalTransient, match="fal failed on result"):
        client.result(sub)
    assert client.result(sub)["seed"] == 7


def test_result_expiry(fal, client):
    sub = client.submit(WAN22_T2V, WAN)
    client.wait(sub, interval=0.01)
    fal.expire(sub.request_id)
    with pytest.raises(FalGone, match=f"fal no longer has request {sub.request_id} .*404.*1 hour"):
        client.result(sub)
    with pytest.raises(FalGone):
        client.status(sub)
    assert statuses(fal, "GET")[-2:] == [404, 404]


def test_result_expires_after_the_ttl(monkeypatch):
    monkeypatch.setenv("FAL_KEY", KEY)
    with fal_double(key=KEY, latency=Latency(0, 0), result_ttl=0.0) as fal, Fal(fal.url) as c:
        sub = c.submit(WAN22_T2V, WAN)
        assert c.status(sub).done
        with pytest.raises(FalGone):
            c.result(sub)


def test_cancel_outcomes(fal, client):
    queued = client.submit(WAN22_T2V, WAN)
    assert client.cancel(queued) == "CANCELLATION_REQUESTED"
    status = client.status(queued)
    assert status.state == "COMPLETED" and status.failed  # a cancelled request is COMPLETED too
    with pytest.raises(FalRequestFailed, match="cancelled"):
        client.wait(queued)

    running = client.submit(WAN22_T2V, WAN)
    client.status(running)
    assert client.status(running).state == "IN_PROGRESS"
    assert client.cancel(running) == "CANCELLATION_REQUESTED"
    assert client.status(running).failed

    done = client.submit(WAN22_T2V, WAN)
    client.wait(done, interval=0)
    assert client.cancel(done) == "ALREADY_COMPLETED"
    assert client.cancel(client.handle(WAN22_T2V, "0b7f3d1e-unknown")) == "NOT_FOUND"
    assert statuses(fal, "PUT") == [202, 202, 400, 404]


# -- input errors ------------------------------------------------------------------------------------------

def test_422_names_the_fields(fal, client, sleeps):
    bad = {**WAN, "num_frames": 200, "resolution": "1080p",
           "loras": [{"path": "x.safetensors", "scale": 5, "transformer": "middle"}]}
    with pytest.raises(FalValidationError) as info:
        client.submit(WAN22_T2V, bad)
    message = str(info.value)
    assert message.startswith(f"fal rejected the input (submit to {WAN22_T2V}): ")
    assert "num_frames: Input should be less than or equal to 161 (got 200)" in message
    assert "resolution: Input should be '480p', '580p', '720p' (got '1080p')" in message
    assert "loras.0.scale: " in message and "loras.0.transformer: " in message
    assert [name for name, _ in info.value.errors] == ["num_frames", "resolution", "loras.0.scale",
                                                       "loras.0.transformer"]
    assert isinstance(info.value, PermanentError)
    assert len(fal.requests) == 1 and sleeps == [] and not fal.submits


def test_422_for_a_missing_required_field(fal, client):
    with pytest.raises(FalValidationError, match="image_url: field required"):
        client.submit(WAN21_I2V, {"prompt": "x", "num_frames": 81})
    with pytest.raises(FalValidationError, match="num_frames: Input should be greater than or equal to 81"):
        client.submit(WAN21_I2V, {"prompt": "x", "image_url": "https://e.com/a.png", "num_frames": 17})


def test_a_bad_endpoint_id_is_refused_before_any_request(fal, client):
    for bad in ("fal-ai", "fal-ai/../admin", "fal-ai//x", "https://evil/x"):
        with pytest.raises(FalError, match="bad fal endpoint id"):
            client.submit(bad, WAN)
    assert fal.requests == []


# -- retries -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [408, 409, 429, 502, 503, 504])
def test_retried_answers(fal, client, sleeps, status):
    fal.fail_next(status, 2)  # 5xx: nginx's HTML without x-fal-request-id
    sub = client.submit(WAN22_T2V, WAN)
    assert statuses(fal) == [status, status, 200] and fal.submits == {WAN22_T2V: 1}
    assert 0.05 <= sleeps[0] <= 0.15 and 0.1 <= sleeps[1] <= 0.3  # 0.1 * 2**(n-1), jitter 0.5-1.5
    fal.fail_next(status, 1, match="/status")
    assert client.status(sub).state == "IN_QUEUE" and statuses(fal)[-2:] == [status, 202]


def test_retries_stop_after_ten_tries(fal, client, sleeps):
    fal.fail_next(429, 50)
    with pytest.raises(FalTransient, match=f"fal answered 429 to submit to {WAN22_T2V} 10 times") as info:
        client.submit(WAN22_T2V, WAN)
    assert len(fal.requests) == 10 and len(sleeps) == 9 and not fal.submits
    assert is_transient(info.value) and not isinstance(info.value, PermanentError)
    assert all(s <= 30 for s in sleeps) and sleeps[-1] >= 12.8  # 0.1 * 2**8 * 0.5


@pytest.mark.parametrize("status, kw, error", [
    (503, {"ingress": False}, FalTransient),  # a runner's error: x-fal-request-id, JSON body
    (502, {"ingress": False}, FalTransient),
    (504, {"headers": {"X-Fal-Request-Timeout-Type": "user"}}, FalTransient),  # nginx body, but asked for
    (503, {"headers": {"x-fal-request-id": "abc"}}, FalTransient),  # nginx body, but from fal's server
    (500, {}, FalTransient),
    (400, {}, FalError),
    (413, {}, FalError),
    (403, {}, FalAuthError),
    (401, {}, FalAuthError),
])
def test_other_answers_are_not_retried(fal, client, sleeps, status, kw, error):
    fal.fail_next(status, 5, **kw)
    with pytest.raises(error, match=f"fal answered {status}"):
        client.submit(WAN22_T2V, WAN)
    assert len(fal.requests) == 1 and sleeps == [] and not fal.submits


def test_should_retry_rule():
    def answer(status, text="", **headers):
        return httpx.Response(status, text=text, headers=headers)

    assert should_retry(answer(503, "<center>nginx</center>"))
    assert not should_retry(answer(503, "upstream connect error"))  # no nginx: maybe the app's own
    assert not should_retry(answer(500, "nginx"))
    assert not should_retry(answer(504, "nginx", **{"X-Fal-Request-Timeout-Type": "user"}))


def test_dropped_connections_are_retried_but_never_a_submit(fal, client, sleeps):
    sub = client.submit(WAN22_T2V, WAN)
    fal.drop_next(1, match="/status")
    assert client.status(sub).state == "IN_QUEUE"
    fal.drop_next(20)
    with pytest.raises(FalTransient, match="fal unreachable for status of .* after 10 tries"):
        client.status(sub)


@pytest.mark.parametrize("applied", [True, False])
def test_a_submit_whose_answer_was_lost_is_not_sent_again(fal, client, sleeps, applied):
    """fal_client sends it again, and fal has no idempotency key: the request would exist (and
    be billed) twice. From the client's side an answer lost after fal accepted the request and
    a connection cut before fal read it look the same, so neither is sent again."""
    fal.drop_next(1, applied=applied)
    with pytest.raises(FalSubmitUnknown, match="answer was lost.*did not send it again"):
        client.submit(WAN22_T2V, WAN)
    assert fal.submits == ({WAN22_T2V: 1} if applied else {}) and len(fal.requests) == 1
    assert not is_transient(FalSubmitUnknown("x")) and sleeps == []


def test_a_submit_that_cannot_connect_is_sent_when_it_can(monkeypatch, sleeps):
    """Nothing left this machine: sending it is safe, and retried as fal_client does."""
    monkeypatch.setenv("FAL_KEY", KEY)
    calls = []

    def answer(request):
        calls.append(request)
        if len(calls) <= 2:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"request_id": "r-1", "status_url": "https://q/s",
                                         "response_url": "https://q/r",
                                         "cancel_url": "https://q/c"})

    with Fal("https://q", transport=httpx.MockTransport(answer), sleep=sleeps.append) as c:
        assert c.submit(WAN22_T2V, WAN).request_id == "r-1"
    assert len(calls) == 3 and len(sleeps) == 2


def test_timeouts_are_retried(monkeypatch, sleeps):
    monkeypatch.setenv("FAL_KEY", KEY)
    calls = []

    def answer(request):
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(202, json={"status": "IN_PROGRESS", "logs": None})

    with Fal("https://queue.test", transport=httpx.MockTransport(answer), sleep=sleeps.append) as c:
        sub = c.handle(WAN22_T2V, "r1")
        assert c.status(sub).state == "IN_PROGRESS" and len(calls) == 2 and len(sleeps) == 1


def test_nothing_listening_is_transient(monkeypatch, sleeps):
    monkeypatch.setenv("FAL_KEY", KEY)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Fal(f"http://127.0.0.1:{port}", max_attempts=2, sleep=sleeps.append) as c:
        with pytest.raises(FalTransient, match="fal unreachable for submit .* after 2 tries"):
            c.submit(WAN22_T2V, WAN)
    assert len(sleeps) == 1


def test_odd_answers(monkeypatch):
    monkeypatch.setenv("FAL_KEY", KEY)
    answers = iter([httpx.Response(200, html="<html>portal</html>"),
                    httpx.Response(200, json={"status": "X"})])
    with Fal("https://queue.test", transport=httpx.MockTransport(lambda r: next(answers))) as c:
        sub = c.handle(WAN22_T2V, "r1")
        with pytest.raises(FalTransient, match="not a JSON object"):
            c.status(sub)
        with pytest.raises(FalError, match="unknown status 'X'"):
            c.status(sub)


# -- downloads ---------------------------------------------------------------------------------------------

def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=width,height,nb_read_frames,r_frame_rate", "-of", "json",
                          str(path)], capture_output=True, check=True, text=True)
    return json.loads(out.stdout)["streams"][0]


def finished(client, fal, endpoint=WAN22_T2V, args=WAN, **plan):
    if plan:
        fal.plan_next(**plan)
    return client.wait(client.submit(endpoint, args), interval=0)


def test_download_a_real_video(fal, client, tmp_path):
    out = finished(client, fal)
    path = client.download(out["video"]["url"], tmp_path / "gen", max_bytes=10_000_000, stem="gen-0001")
    assert path == tmp_path / "gen" / "gen-0001.mp4" and path.stat().st_size == out["video"]["file_size"]
    # 17 frames at 16 fps asked; Wan 2.2 interpolates one frame between each pair by default
    assert probe(path) == {"width": 160, "height": 288, "r_frame_rate": "32/1", "nb_read_frames": "33"}
    assert [p.name for p in (tmp_path / "gen").iterdir()] == ["gen-0001.mp4"]
    assert not fal.requests[-1].auth_sent  # the key never goes to file URLs


def test_static_video_and_image_outputs(fal, client, tmp_path):
    static = finished(client, fal, output="static")
    assert probe(client.download(static["video"]["url"], tmp_path, max_bytes=10**7))["nb_read_frames"] == "33"
    image = finished(client, fal, FLUX, {"prompt": "a cat"}, output="image")
    assert set(image) >= {"images", "seed", "timings", "has_nsfw_concepts"}
    path = client.download(image["images"][0]["url"], tmp_path, max_bytes=10**7, stem="img")
    assert path.name == "img.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("endpoint,extra,frames,fps", [
    (WAN22_T2V, {}, 33, "32/1"),  # fal's defaults: film, 1 frame between each pair, fps adjusted
    (WAN22_T2V, {"interpolator_model": "none"}, 17, "16/1"),
    (WAN22_T2V, {"num_interpolated_frames": 0}, 17, "16/1"),
    (WAN22_T2V, {"interpolator_model": "rife", "num_interpolated_frames": 2,
                 "adjust_fps_for_interpolation": False}, 49, "16/1"),
    (WAN22_I2V, {"image_url": "https://v3.fal.media/files/x/start.png", "frames_per_second": 8}, 33, "16/1"),
    (WAN21_T2V, {"num_frames": 81, "resolution": "480p"}, 81, "16/1"),  # Wan 2.1 does not interpolate
])
def test_the_double_interpolates_wan22_outputs_like_fal(fal, client, tmp_path, endpoint, extra, frames, fps):
    """services.md §6: Wan 2.2 LoRA outputs come back with (N-1)*(k+1)+1 frames at fps*(k+1)."""
    args = {key: value for key, value in {**WAN, **extra}.items() if key != "loras"}
    out = finished(client, fal, endpoint, args)
    path = client.download(out["video"]["url"], tmp_path, max_bytes=10**7)
    assert (probe(path)["nb_read_frames"], probe(path)["r_frame_rate"]) == (str(frames), fps)


def test_flux_takes_an_image_size_object_and_acceleration(fal, client):
    args = {"prompt": "a cat", "image_size": {"width": 1280, "height": 720}, "acceleration": "regular",
            "num_images": 2}
    out = finished(client, fal, FLUX, args, output="image")
    assert len(out["images"]) == 2 and out["has_nsfw_concepts"] == [False, False]
    assert fal.calls("POST", FLUX)[-1].body["image_size"] == {"width": 1280, "height": 720}
    with pytest.raises(FalValidationError) as bad:
        client.submit(FLUX, {"prompt": "a cat", "image_size": {"width": 0, "height": 20000},
                             "acceleration": "high"})
    assert [name for name, _ in bad.value.errors] == ["image_size.width", "image_size.height", "acceleration"]


def test_sync_mode_images_come_back_as_data_uris_and_are_decoded(fal, client, tmp_path):
    out = finished(client, fal, FLUX, {"prompt": "a cat", "sync_mode": True}, output="image")
    url = out["images"][0]["url"]
    assert url.startswith("data:image/png;base64,")
    path = client.download(url, tmp_path / "gen", max_bytes=10**6, stem="gen-0002")
    assert path == tmp_path / "gen" / "gen-0002.png" and path.read_bytes() == media()["image"]
    size = len(media()["image"])
    with pytest.raises(FalDownloadError, match=f"is {size} bytes, over the {size - 1}-byte limit"):
        client.download(url, tmp_path / "small", max_bytes=size - 1)
    with pytest.raises(FalDownloadError, match="is text/html, not video/ or image/"):
        client.download("data:text/html;base64,PGI+aGk8L2I+", tmp_path / "html", max_bytes=10**6)
    with pytest.raises(FalDownloadError, match="not valid base64"):
        client.download("data:image/png;base64,%%%not-base64", tmp_path / "bad", max_bytes=10**6)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["gen", "gen-0002.png"]
    assert not any(r.path.startswith("/files/") for r in fal.requests)  # nothing fetched


@pytest.mark.parametrize("chunked", [False, True])
def test_download_size_limit(fal, client, tmp_path, chunked):
    out = finished(client, fal, chunked=chunked)
    size = out["video"]["file_size"]
    with pytest.raises(FalDownloadError, match=f"over the {size - 1}-byte limit"):
        client.download(out["video"]["url"], tmp_path, max_bytes=size - 1)
    assert list(tmp_path.iterdir()) == []  # no partial file left
    assert client.download(out["video"]["url"], tmp_path, max_bytes=size).stat().st_size == size


def test_download_refuses_other_content_types(fal, client, tmp_path):
    out = finished(client, fal, content_type="text/html")
    with pytest.raises(FalDownloadError, match="is text/html, not video/ or image/"):
        client.download(out["video"]["url"], tmp_path, max_bytes=10**7)
    with pytest.raises(FalDownloadError, match="not video/"):
        client.download(out["video"]["url"], tmp_path, max_bytes=10**7, allowed_types=("video/",))
    with pytest.raises(FalDownloadError, match="not an http"):
        client.download("file:///etc/passwd", tmp_path, max_bytes=10**7)
    assert list(tmp_path.iterdir()) == []


def test_a_malicious_file_name_cannot_escape(fal, client, tmp_path):
    out = finished(client, fal, file_name="../../etc/passwd.mp4", content_type="video/mp4")
    assert out["video"]["file_name"] == "../../etc/passwd.mp4"
    dest = tmp_path / "a" / "b"
    path = client.download(out["video"]["url"], dest, max_bytes=10**7, stem=out["video"]["file_name"])
    assert path.parent == dest and path.name == "etc_passwd_mp4.mp4"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "a", "a/b", "a/b/etc_passwd_mp4.mp4"]


def test_an_expired_output_file_is_gone(fal, client, tmp_path):
    out = finished(client, fal)
    with pytest.raises(FalGone, match="the fal output is gone: download of .*404"):
        client.download(out["video"]["url"] + "-nope", tmp_path, max_bytes=10**7)
    assert list(tmp_path.iterdir()) == [] and len(fal.calls("GET", "/files/")) == 1


def test_safe_name():
    assert safe_name("../../etc/passwd", "video/mp4") == "etc_passwd.mp4"
    assert safe_name("..", "image/png") == "output.png"
    assert safe_name("-rf /", "video/webm") == "rf_.webm"
    assert safe_name("ok_name-1", "video/x-unknown") == "ok_name-1.bin"
    assert safe_name("a\\b\x00c", "image/jpeg") == "a_b_c.jpg"


# -- keys and URLs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [None, ""])
def test_missing_key_fails_before_any_request(fal, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("FAL_KEY")
    else:
        monkeypatch.setenv("FAL_KEY", value)
    with pytest.raises(FalAuthError, match="FAL_KEY is not set"):
        Fal(fal.url)
    assert fal.requests == []


def test_a_wrong_key(fal, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "fal_WRONG_0000:1111")
    with Fal(fal.url) as c, pytest.raises(FalAuthError) as info:
        c.submit(WAN22_T2V, WAN)
    assert str(info.value).startswith("FAL_KEY is missing or invalid (fal answered 401: Invalid API key)")
    assert "fal_WRONG" not in str(info.value) and not fal.requests[0].authorized


def test_urls_on_another_origin_get_no_key(fal, client):
    fal.url_base = "http://127.0.0.2:9"
    sub = client.submit(WAN22_T2V, WAN)  # accepted and billed: followed on the queue's own host
    assert sub.status_url.startswith(fal.url + "/fal-ai/wan/requests/")
    assert client.status(sub).state in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    assert all(r.path.startswith("/fal-ai/") for r in fal.requests) and len(fal.requests) == 2
    with pytest.raises(FalError, match="refusing"):
        client.status({"status_url": "https://evil.test/s", "response_url": "https://evil.test/r",
                       "cancel_url": "https://evil.test/c", "request_id": "r"})


def test_queue_url_sources(fal, monkeypatch):
    def url(*args, **kw):
        with Fal(*args, **kw) as c:
            return repr(c), c.queue_url

    assert url() == (f"Fal({QUEUE_URL!r})", "https://queue.fal.run")
    monkeypatch.setenv("FAL_RUN_HOST", "fal.example")  # fal_client's host variables (https)
    assert url()[1] == "https://queue.fal.example"
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", "q.example")
    assert url()[1] == "https://q.example"
    monkeypatch.setenv("FAL_QUEUE_URL", fal.url + "/")
    with Fal() as c:
        assert c.queue_url == fal.url and c.submit(WAN22_T2V, WAN).request_id
    assert url("http://a.test")[1] == "http://a.test"  # arguments beat the environment
    assert url("http://a.test", queue_url="http://b.test")[1] == "http://b.test"


def test_the_key_never_shows(fal, client, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[Exception] = []

    def catch(fn, *args, **kw):
        with pytest.raises(LoradError) as info:
            fn(*args, **kw)
        errors.append(info.value)

    fal.fail_next(400, body={"detail": f"key {KEY} not allowed"})  # a server echoing the key
    catch(client.submit, WAN22_T2V, WAN)
    fal.fail_next(422, body={"detail": [{"loc": ["body", "prompt"], "msg": f"bad {KEY}", "input": KEY}]})
    catch(client.submit, WAN22_T2V, WAN)
    fal.fail_next(429, 10, body={"detail": f"slow down {KEY}"})
    catch(client.submit, WAN22_T2V, WAN)
    fal.fail_next(503, ingress=False, body={"detail": f"runner {KEY}"}, headers={"x-fal-request-id": "1"})
    catch(client.submit, WAN22_T2V, WAN)
    fal.fail_next(401, body={"detail": f"bad key {KEY}"})
    catch(client.submit, WAN22_T2V, WAN)
    fal.drop_next(10, match="/status")
    catch(client.status, client.submit(WAN22_T2V, WAN))
    fal.plan_next(error=f"crashed near {KEY}")
    catch(client.wait, client.submit(WAN22_T2V, WAN), interval=0)

    assert len(errors) == 7
    for exc in errors:
        assert KEY not in str(exc) and KEY not in repr(exc) and KEY not in repr(exc.args)
        assert exc.__cause__ is None or KEY not in repr(exc.__cause__)
    assert "[redacted]" in str(errors[0]) and "[redacted]" in str(errors[1])
    assert KEY not in repr(client) and KEY not in caplog.text and "retrying" in caplog.text
    assert isinstance(errors[2], LoradError) and is_transient(errors[2])


# -- uploads -----------------------------------------------------------------------------------------------

TOKEN_PATH = "/storage/auth/token?storage_type=fal-cdn-v3"


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "start image.png"
    path.write_bytes(media()["image"])
    return path


def test_upload_a_start_image(fal, client, png, tmp_path):
    url = client.upload(png)
    assert url.startswith(f"{fal.url}/files/") and url.endswith("_start_image.png")
    served = httpx.get(url)
    assert served.content == png.read_bytes() and served.headers["content-type"] == "image/png"
    assert client.download(url, tmp_path / "back", max_bytes=10**6).read_bytes() == png.read_bytes()

    token_call, upload_call = fal.requests[:2]
    assert (token_call.method, token_call.path, token_call.body) == ("POST", TOKEN_PATH, {})
    assert token_call.authorized and token_call.status == 200
    assert (upload_call.method, upload_call.path, upload_call.status) == ("POST", "/files/upload", 200)
    assert upload_call.body == png.read_bytes() and not upload_call.authorized
    (token,) = fal.tokens
    assert upload_call.headers["authorization"] == f"Bearer {token}"
    assert upload_call.headers["content-type"] == "image/png"
    assert upload_call.headers["x-fal-file-name"] == "start_image.png"
    assert KEY not in json.dumps(upload_call.headers) and fal.uploads == [url.rsplit("/", 1)[1]]


def test_the_storage_token_is_cached(fal, client, png, tmp_path):
    other = tmp_path / "clip.bin"
    other.write_bytes(b"\x00\x01 not an image")
    first, second = client.upload(png), client.upload(other)
    assert first != second and len(fal.uploads) == 2
    assert len(fal.calls("POST", "/storage/auth/token")) == 1
    bearers = {r.headers["authorization"] for r in fal.calls("POST", "/files/upload")}
    assert len(bearers) == 1 and fal.calls("POST", "/files/upload")[1].headers["content-type"] == \
        "application/octet-stream"
    assert httpx.get(second).content == other.read_bytes()

    fal.token_ttl = 30  # expires within the client's margin: fetched anew for each upload
    with Fal(fal.url) as c:
        c.upload(png)
        c.upload(png)
    assert len(fal.calls("POST", "/storage/auth/token")) == 3


def test_a_revoked_token_is_replaced_once(fal, client, png):
    client.upload(png)
    fal.tokens.clear()
    assert client.upload(png).startswith(fal.url)
    assert statuses(fal, "POST", "/files/upload") == [200, 401, 200]
    assert len(fal.calls("POST", "/storage/auth/token")) == 2
    fal.fail_next(401, 2, match="POST /files/upload")
    with pytest.raises(FalError, match="fal's CDN refused a fresh storage token for the upload of "
                                       "start_image.png .fal answered 401"):
        client.upload(png)
    assert len(fal.uploads) == 2


def test_upload_retries(fal, client, png, sleeps):
    fal.fail_next(429, 2, match="/storage/auth/token")
    fal.fail_next(503, 1, match="POST /files/upload")  # nginx: the ingress
    fal.drop_next(1, match="POST /files/upload")
    url = client.upload(png)
    assert statuses(fal, "POST", "/storage/auth/token") == [429, 429, 200]
    assert statuses(fal, "POST", "/files/upload") == [0, 503, 200] and len(sleeps) == 4
    assert httpx.get(url).content == png.read_bytes() and len(fal.uploads) == 1
    fal.fail_next(503, 1, ingress=False, match="POST /files/upload")  # a server's own 503: not retried
    with pytest.raises(FalTransient, match="fal failed on upload of start_image.png"):
        client.upload(png)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_fails_before_any_upload(fal, monkeypatch, png, status):
    if status == 401:
        monkeypatch.setenv("FAL_KEY", "fal_WRONG_0000:1111")
    else:
        fal.fail_next(403, match="/storage/auth/token")
    with Fal(fal.url) as c, pytest.raises(FalAuthError, match=f"FAL_KEY is missing or invalid.*{status}"):
        c.upload(png)
    assert [r.path for r in fal.requests] == [TOKEN_PATH] and fal.uploads == []


def test_too_big_or_missing_files_are_refused_before_any_request(fal, client, tmp_path):
    big = tmp_path / "huge.png"
    with big.open("wb") as f:
        f.truncate(101 * 2**20)  # sparse
    with pytest.raises(FalError, match=rf"huge.png to fal: it is {101 * 2**20} bytes, over the "
                                       rf"{UPLOAD_LIMIT}-byte \(100 MiB\) limit"):
        client.upload(big)
    with pytest.raises(FalError, match="No such file"):
        client.upload(tmp_path / "nope.png")
    with pytest.raises(FalError, match="not a regular file"):
        client.upload(tmp_path)
    assert fal.requests == []


def test_odd_storage_answers(fal, client, png):
    fal.fail_next(200, match="/storage/auth/token", body={"token": "", "token_type": "Bearer"})
    with pytest.raises(FalError, match="without a usable token"):
        client.upload(png)
    fal.fail_next(200, match="/storage/auth/token", body={"token": "tok_0123456789abcdef",
                                                              "base_url": "ftp://x.test"})
    with pytest.raises(FalError, match="unusable base_url 'ftp://x.test'"):
        client.upload(png)
    fal.fail_next(200, match="/storage/auth/token", body="<html>portal</html>")
    with pytest.raises(FalTransient, match="not a JSON object"):
        client.upload(png)
    fal.fail_next(200, match="POST /files/upload", body={"access_url": "file:///etc/passwd"})
    with pytest.raises(FalError, match="no usable access_url .file:///etc/passwd"):
        client.upload(png)
    assert fal.uploads == []


def test_uploads_against_fal_itself(monkeypatch, png, sleeps):
    """Real hosts (mocked): the key goes to the REST API, the token to the CDN, each only there."""
    monkeypatch.setenv("FAL_KEY", KEY)
    for name in ("FAL_QUEUE_URL", "FAL_QUEUE_RUN_HOST", "FAL_RUN_HOST", "FAL_REST_URL"):
        monkeypatch.delenv(name, raising=False)
    seen, cdn = [], {}

    def answer(request):
        seen.append(request)
        if request.url.path == "/storage/auth/token":
            return httpx.Response(200, json={"token": "tok_SECRET_51f2", "token_type": "Bearer",
                                             "expires_at": "2999-01-01T00:00:00Z", **cdn})
        return httpx.Response(200, json={"access_url": "https://v3.fal.media/files/zebra/x_start.png"})

    with Fal(transport=httpx.MockTransport(answer), sleep=sleeps.append) as c:
        assert (c.queue_url, c.rest_url) == (QUEUE_URL, REST_URL)
        assert c.upload(png) == "https://v3.fal.media/files/zebra/x_start.png"
        token_request, upload_request = seen
        assert str(token_request.url) == f"{REST_URL}/storage/auth/token?storage_type=fal-cdn-v3"
        assert token_request.headers["authorization"] == f"Key {KEY}" and token_request.content == b"{}"
        assert str(upload_request.url) == f"{CDN_URL}/files/upload"
        assert upload_request.headers["authorization"] == "Bearer tok_SECRET_51f2"
        assert upload_request.content == png.read_bytes()

    cdn["base_url"] = "http://cdn.test"  # plain http, though the key went over https
    with Fal(transport=httpx.MockTransport(answer)) as c, pytest.raises(FalError, match="plain-http CDN"):
        c.upload(png)
    assert not any(r.url.host == "cdn.test" for r in seen)


def test_rest_url_sources(fal, monkeypatch):
    def rest(*args, **kw):
        with Fal(*args, **kw) as c:
            return c.rest_url

    assert rest() == REST_URL == "https://rest.fal.ai"
    assert rest(queue_url=QUEUE_URL + "/") == REST_URL
    assert rest(fal.url) == rest(queue_url=fal.url + "/") == fal.url  # one double serves everything
    monkeypatch.setenv("FAL_RUN_HOST", "fal.example")  # fal_client's host names: its REST host too
    assert rest() == REST_URL
    monkeypatch.setenv("FAL_QUEUE_URL", fal.url)
    assert rest() == fal.url
    monkeypatch.setenv("FAL_REST_URL", "http://rest.test/")
    assert rest() == rest(fal.url) == "http://rest.test"
    assert rest(fal.url, rest_url="http://r2.test") == "http://r2.test"
    with Fal(fal.url, rest_url="http://r2.test") as c:  # the key goes to those two origins only
        with pytest.raises(FalError, match="refusing to send FAL_KEY to http://evil.test for the probe"):
            c._send("GET", "http://evil.test/x", what="probe")
    assert not any(r.auth_sent for r in fal.requests)


def test_the_key_and_token_never_show(fal, client, png, caplog):
    caplog.set_level(logging.DEBUG)
    client.upload(png)
    (token,) = fal.tokens
    errors = []
    for status, n, error in [(500, 1, FalTransient), (429, 10, FalTransient), (401, 2, FalError),
                             (400, 1, FalError)]:
        fal.fail_next(status, n, match="POST /files/upload", body={"detail": f"token {token} key {KEY}"})
        with pytest.raises(error, match=f"fal answered {status}") as info:
            client.upload(png)
        errors.append(info.value)
    fal.drop_next(10, match="POST /files/upload")
    with pytest.raises(FalTransient, match="fal unreachable for upload") as info:
        client.upload(png)
    errors.append(info.value)
    fal.fail_next(400, match="/storage/auth/token", body={"detail": f"no {KEY}"})
    with Fal(fal.url) as fresh, pytest.raises(FalError, match="fal refused storage token request") as info:
        fresh.upload(png)
    errors.append(info.value)
    assert len(errors) == 6
    for exc in errors:
        assert "[redacted]" in str(exc) or isinstance(exc, FalTransient) and "unreachable" in str(exc)
        for secret in (KEY, *fal.tokens):
            assert secret not in str(exc) and secret not in repr(exc.args)
            assert exc.__cause__ is None or secret not in repr(exc.__cause__)
    assert "retrying" in caplog.text and "uploaded start_image.png" in caplog.text
    for secret in [KEY, *fal.tokens]:
        assert secret not in caplog.text and secret not in repr(client)


def test_upload_name():
    assert upload_name("/x/start image.png") == "start_image.png"
    assert upload_name("日本.PNG") == "upload.PNG"
    assert upload_name("../.hidden") == "hidden"
    assert upload_name("a\r\nX-Evil: 1.tar.gz") == "a_X-Evil_1.tar.gz"


def test_a_rate_limit_with_retry_after_is_waited_out_up_to_the_cap(fal, sleeps):
    """fal_client ignores Retry-After and retried after 0.1-0.6 s against `Retry-After: 20`."""
    with Fal(fal.url, sleep=sleeps.append, max_retry_after=30) as c:
        fal.fail_next(429, 1, headers={"Retry-After": "20"})
        fal.fail_next(429, 1, headers={"Retry-After": "3600"})
        c.submit(WAN22_T2V, WAN)
    assert statuses(fal) == [429, 429, 200] and sleeps == [20.0, 30.0]
