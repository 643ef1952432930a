"""The RunPod client against the loopback REST v2 double: no network, no real sleeps but one."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest
from runpod_double import runpod_double

from lorad.core.errors import LoradError, PermanentError, is_transient
from lorad.training.providers.runpod import (
    API_URL,
    RunPod,
    RunPodAuthError,
    RunPodConflict,
    RunPodError,
    RunPodNoGpu,
    RunPodNotFound,
    RunPodTransient,
    parse_pod,
)

KEY = "rp_SECRET_3f9a8b7c6d5e4f2a1b"


@pytest.fixture
def rp(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    monkeypatch.delenv("RUNPOD_API_URL", raising=False)
    with runpod_double(api_key=KEY, start_polls=2) as double:
        yield double


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(rp, sleeps):
    """Retries and polls record their waits instead of sleeping."""
    with RunPod(rp.url, backoff=0.5, max_wait=10.0, sleep=sleeps.append) as c:
        yield c


def test_get_pod_reads_the_v2_fields(rp, client):
    rp.add_pod("p1", name="trainer", gpu_count=2, gpu_type="NVIDIA A40")
    pod = client.get_pod("p1")
    assert (pod.id, pod.name, pod.status, pod.desired_status) == ("p1", "trainer", "EXITED", "EXITED")
    assert (pod.gpu_count, pod.gpu_type) == (2, "NVIDIA A40")
    assert pod.cost_per_hr == 0.0 and pod.ssh is None and pod.uptime is None
    assert pod.image.startswith("runpod/pytorch") and "22/tcp" in pod.ports
    assert pod.actions == ("start", "terminate")
    [req] = rp.requests
    assert (req.method, req.path, req.authorized) == ("GET", "/v2/pods/p1", True)


def test_start_then_wait_running_gives_a_fresh_ssh_endpoint_each_time(rp, client, sleeps):
    rp.add_pod("p1")
    started = client.start("p1")
    assert started.status == "STARTING" and started.ssh is None
    assert rp.requests[-1].body == {"action": "start"} and rp.requests[-1].path == "/v2/pods/p1/action"

    first = client.wait_running("p1", timeout=30, poll=0.01)
    assert first.running and first.ssh == ("127.0.0.1", 34001) and first.ssh_user == "root"
    assert first.gpu_count == 1 and first.cost_per_hr == pytest.approx(0.69) and first.uptime == 0
    assert [r.method for r in rp.requests] == ["POST", "GET", "GET", "GET"]  # STARTING twice, RUNNING
    assert sleeps == [0.01, 0.01]

    stopped = client.stop("p1")
    assert stopped.status == "EXITED" and stopped.ssh is None and stopped.cost_per_hr == 0.0
    client.start("p1")
    second = client.wait_running("p1", timeout=30, poll=0.01)
    assert second.ssh == ("127.0.0.1", 34002) != first.ssh


def test_ssh_port_can_be_chosen_by_the_test(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    with runpod_double(api_key=KEY, start_polls=0, ssh_port=lambda pod: 2222) as rp, RunPod(rp.url) as c:
        rp.add_pod("p1")
        c.start("p1")
        assert c.wait_running("p1", timeout=5, poll=0.01).ssh == ("127.0.0.1", 2222)


def test_stop_while_starting_is_allowed(rp, client):
    rp.add_pod("p1", start_polls=5)
    client.start("p1")
    assert client.stop("p1").status == "EXITED"


def test_invalid_transition_is_a_409_with_the_allowed_actions(rp, client):
    rp.add_pod("run", status="RUNNING")
    rp.add_pod("off")
    with pytest.raises(RunPodConflict) as info:
        client.start("run")
    assert str(info.value) == "cannot start pod run: it is RUNNING (allowed now: stop, restart, terminate)"
    assert info.value.status == "RUNNING" and isinstance(info.value, PermanentError)
    with pytest.raises(RunPodConflict, match="cannot stop pod off: it is EXITED"):
        client.stop("off")
    assert rp.pods["run"].status == "RUNNING"


def test_a_failed_pod_can_be_started_again(rp, client):
    rp.add_pod("p1", status="RUNNING")
    rp.set_status("p1", "ERROR")
    pod = client.get_pod("p1")
    assert (pod.status, pod.ssh, pod.actions) == ("ERROR", None, ("start", "terminate"))
    client.start("p1")
    assert client.wait_running("p1", timeout=30, poll=0.01).ssh == ("127.0.0.1", 34002)


def test_terminate(rp, client):
    rp.add_pod("p1", status="RUNNING")
    assert client.terminate("p1") is None
    pod = client.get_pod("p1")
    assert pod.status == "TERMINATED" and pod.cost_per_hr == 0.0 and pod.ssh is None
    with pytest.raises(RunPodConflict, match="it is TERMINATED"):
        client.start("p1")


def test_unknown_pod(rp, client):
    with pytest.raises(RunPodNotFound, match="^no pod nope "):
        client.get_pod("nope")
    with pytest.raises(RunPodNotFound, match="^no pod nope "):
        client.start("nope")


def test_list_pods(rp, client):
    rp.add_pod("a")
    rp.add_pod("b", status="RUNNING")
    assert {(p.id, p.status) for p in client.list_pods()} == {("a", "EXITED"), ("b", "RUNNING")}


def test_429_waits_as_long_as_retry_after_says(rp):
    rp.add_pod("p1")
    rp.fail_next(429, 1, retry_after=1)
    with RunPod(rp.url) as c:  # real sleep
        assert c.get_pod("p1").id == "p1"
    limited, ok = rp.requests
    assert (limited.status, ok.status) == (429, 200)
    assert ok.t - limited.t >= 0.95


def test_429_retry_after_is_used_instead_of_backoff(rp, client, sleeps):
    rp.add_pod("p1")
    rp.fail_next(429, 2, retry_after=0)
    assert client.get_pod("p1").id == "p1"
    assert [r.status for r in rp.requests] == [429, 429, 200]
    assert sleeps == [0, 0]


def test_5xx_backs_off_then_gives_up_as_transient(rp, client, sleeps):
    rp.add_pod("p1")
    rp.fail_next(503, 10)
    with pytest.raises(RunPodTransient, match=r"server error \(503\) on GET /pods/p1 after 4 tries") as info:
        client.get_pod("p1")
    assert len(rp.requests) == 4 and sleeps == [0.5, 1.0, 2.0]
    assert is_transient(info.value) and isinstance(info.value, LoradError)
    assert not isinstance(info.value, PermanentError)


def test_5xx_then_success(rp, client):
    rp.add_pod("p1")
    rp.fail_next(502, 2)
    assert client.start("p1").status == "STARTING"
    assert [r.status for r in rp.requests] == [502, 502, 200]


def test_a_long_retry_after_is_left_to_the_daemon(rp, client, sleeps):
    rp.add_pod("p1")
    rp.fail_next(429, 1, retry_after=120)
    with pytest.raises(RunPodTransient, match="retry after 120 s") as info:
        client.get_pod("p1")
    assert info.value.retry_after == 120 and len(rp.requests) == 1 and sleeps == []


def test_a_retried_action_that_went_through_the_first_time_is_not_a_conflict(rp, client):
    rp.add_pod("p1")
    rp.fail_next(502, 1, applied=True)  # RunPod started the pod but the gateway answered 502
    assert client.start("p1").status == "STARTING"
    assert [(r.method, r.status) for r in rp.requests] == [("POST", 502), ("POST", 409), ("GET", 200)]


def test_dropped_connections_are_retried_then_transient(rp, client):
    rp.add_pod("p1")
    rp.drop_next(1)
    assert client.get_pod("p1").id == "p1"
    rp.drop_next(10)
    with pytest.raises(RunPodTransient, match="unreachable"):
        client.get_pod("p1")


def test_nothing_listening_is_transient(rp, sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with RunPod(f"http://127.0.0.1:{port}/v2", max_attempts=2, sleep=sleeps.append) as c:
        with pytest.raises(RunPodTransient, match=f"RunPod unreachable at http://127.0.0.1:{port}/v2"):
            c.get_pod("p1")
    assert sleeps == [1.0]


def test_bad_key_message(rp, monkeypatch):
    rp.add_pod("p1")
    monkeypatch.setenv("RUNPOD_API_KEY", "rp_WRONG_key_987654")
    with RunPod(rp.url) as c, pytest.raises(RunPodAuthError) as info:
        c.get_pod("p1")
    message = str(info.value)
    assert message.startswith("RUNPOD_API_KEY is missing or invalid (RunPod answered 401: invalid API key)")
    assert "rp_WRONG_key_987654" not in message and not rp.requests[0].authorized
    assert isinstance(info.value, PermanentError) and isinstance(info.value, LoradError)


def test_forbidden_message(rp, client):
    rp.add_pod("p1")
    rp.fail_next(403, detail="access denied")
    with pytest.raises(RunPodAuthError, match="RUNPOD_API_KEY is missing or invalid, or lacks access"):
        client.stop("p1")


@pytest.mark.parametrize("value", [None, ""])
def test_missing_key_fails_before_any_request(rp, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("RUNPOD_API_KEY")
    else:
        monkeypatch.setenv("RUNPOD_API_KEY", value)
    with pytest.raises(RunPodAuthError, match="RUNPOD_API_KEY is not set"):
        RunPod(rp.url)
    assert rp.requests == []


def test_zero_gpus_after_a_resume_is_detected(rp, client):
    rp.add_pod("p1", gpu_count=2)
    rp.zero_gpus_next_start()
    client.start("p1")
    with pytest.raises(RunPodNoGpu, match="pod p1 started with 0 GPUs \\(expected 2\\)"):
        client.wait_running("p1", timeout=30, poll=0.01, gpu_count=2)
    with pytest.raises(RunPodNoGpu, match="0 GPUs"):  # without an expected count: 0 is never fine
        client.wait_running("p1", timeout=30, poll=0.01)
    client.stop("p1")
    client.start("p1")  # the flag was for one start only
    assert client.wait_running("p1", timeout=30, poll=0.01, gpu_count=2).gpu_count == 2


def test_ensure_running_starts_once_and_checks_the_gpus_the_pod_had(rp, client):
    rp.add_pod("p1", gpu_count=2)
    pod = client.ensure_running("p1", timeout=30, poll=0.01)
    assert pod.running and pod.gpu_count == 2
    posts = len(rp.calls("POST"))
    assert client.ensure_running("p1", timeout=30, poll=0.01).ssh == pod.ssh  # already up: no start
    assert len(rp.calls("POST")) == posts == 1

    client.stop("p1")
    rp.zero_gpus_next_start("p1")
    with pytest.raises(RunPodNoGpu, match="expected 2"):
        client.ensure_running("p1", timeout=30, poll=0.01)


def test_wait_running_times_out_as_transient(rp):
    rp.add_pod("p1", start_polls=10_000)
    with RunPod(rp.url) as c:
        c.start("p1")
        with pytest.raises(RunPodTransient, match=r"not reachable over SSH after 0.05 s \(still STARTING\)"):
            c.wait_running("p1", timeout=0.05, poll=0.01)


def test_wait_running_on_a_stopped_or_failed_pod(rp, client):
    rp.add_pod("off")
    rp.add_pod("bad", status="ERROR")
    with pytest.raises(RunPodError, match="pod off is EXITED instead of starting; start it first"):
        client.wait_running("off", timeout=30, poll=0.01)
    with pytest.raises(RunPodError, match="pod bad is ERROR"):
        client.wait_running("bad", timeout=30, poll=0.01)


def test_wait_running_without_port_22(rp, client):
    rp.add_pod("p1", status="RUNNING", ports=["8888/http"])
    with pytest.raises(RunPodError, match="does not expose 22/tcp"):
        client.wait_running("p1", timeout=30, poll=0.01)


def test_base_url_from_the_environment(rp, monkeypatch):
    rp.add_pod("p1")
    assert repr(RunPod()) == f"RunPod({API_URL!r})" and API_URL == "https://api.runpod.io/v2"
    monkeypatch.setenv("RUNPOD_API_URL", rp.url)
    with RunPod() as c:
        assert c.get_pod("p1").id == "p1"


def test_the_key_never_shows(rp, client, caplog):
    caplog.set_level(logging.DEBUG)
    rp.add_pod("p1", status="RUNNING", env={"HF_TOKEN": "pod-env-secret"})
    errors: list[Exception] = []

    def catch(fn, *args, **kw):
        with pytest.raises(LoradError) as info:
            fn(*args, **kw)
        errors.append(info.value)

    catch(client.start, "p1")
    catch(client.get_pod, "nope")
    rp.fail_next(400, detail=f"token {KEY} is not allowed here")  # a server echoing the key
    catch(client.get_pod, "p1")
    rp.fail_next(503, 4, detail=f"upstream {KEY}")  # every try
    catch(client.get_pod, "p1")
    rp.fail_next(429, 1, retry_after=999)
    catch(client.get_pod, "p1")
    rp.drop_next(4)  # every try
    catch(client.get_pod, "p1")
    rp.zero_gpus_next_start()
    client.stop("p1")
    client.start("p1")
    catch(client.wait_running, "p1", timeout=30, poll=0.01)

    assert len(errors) == 7
    for exc in errors:
        assert KEY not in str(exc) and KEY not in repr(exc) and KEY not in repr(exc.args)
        assert exc.__cause__ is None or KEY not in repr(exc.__cause__)
    assert "[redacted]" in str(errors[2])
    pod = client.get_pod("p1")
    assert KEY not in repr(client) and "pod-env-secret" not in repr(pod)
    assert KEY not in caplog.text and "retrying" in caplog.text


def test_parse_pod_falls_back_to_runtime_ports():
    data = {
        "id": "p", "name": "n", "status": "RUNNING", "cost": 0.35, "gpu": {"id": "NVIDIA L4", "count": 1},
        "runtime": {"uptime": 42, "ports": [
            {"private": 8888, "public": 40000, "type": "http", "ip": "100.65.0.2", "isIpPublic": False},
            {"private": 22, "public": 40022, "type": "tcp", "ip": "100.65.0.2", "isIpPublic": False},
            {"private": 22, "public": 34446, "type": "tcp", "ip": "195.26.233.3"},
        ]},
    }
    pod = parse_pod(data)
    assert pod.ssh == ("195.26.233.3", 34446) and pod.uptime == 42 and pod.cost_per_hr == 0.35
    assert parse_pod({**data, "status": "STARTING"}).ssh is None  # stale ports are never used
    cpu = parse_pod({"id": "c", "status": "EXITED", "cpu": {"id": "cpu5c", "vcpuCount": 4}})
    assert (cpu.gpu_count, cpu.gpu_type, cpu.cost_per_hr) == (0, None, 0.0)


def test_a_non_json_answer_is_transient(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    html = httpx.MockTransport(lambda request: httpx.Response(200, html="<html>captive portal</html>"))
    with RunPod("http://runpod.invalid/v2", transport=html) as c:
        with pytest.raises(RunPodTransient, match="GET /v2/pods/p1 with something that is not a JSON object"):
            c.get_pod("p1")
