"""Training end to end on a real sshd "pod" running the musubi-tuner double."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from helpers import run_jobs, wait_for
from media_factory import tiny_clip
from sshd import start_sshd
from test_captions import add_clip
from weights import write_dit

from lorad.captions import versions
from lorad.datasets import export
from lorad.media import datasets, profiles
from lorad.training import pods, runs
from lorad.training.logparse import Progress
from lorad.training.trainers.musubi import log as musubi_log

PROFILE = profiles.get("wan21-t2v-480p-portrait")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_sshd(tmp_path_factory.mktemp("pod")) as srv:
        yield srv


@pytest.fixture
def setup(ws, conn, server, tmp_path):
    """An exported dataset version whose remote root is inside the pod, and the pod."""
    server.configure_double()  # normal mode
    d = datasets.create(conn, f"trucks{tmp_path.name[-6:]}".replace("_", ""),
                        "wan21-t2v-480p-portrait", trigger="TRK")
    for n in range(3):
        media = tiny_clip(tmp_path / "media" / f"clip{n}.mp4", ("red", "blue", "green")[n],
                          seconds=41 / 16)  # the profile's 41 frames
        clip = add_clip(conn, d.id, f"clip{n}-{tmp_path.name[-6:]}", media=str(media))
        conn.execute("UPDATE clips SET profile_fingerprint = ? WHERE id = ?",
                     (PROFILE.fingerprint(), clip))
        versions.set_caption(conn, clip, f"TRK, truck number {n} parked in a field")
    datasets.update_settings(conn, d.id, eval_prompts=["TRK, a white truck parked on gravel"])
    d = datasets.get(conn, d.name)
    remote_root = server.root / "datasets" / d.name
    p = export.plan(conn, d, PROFILE, export.Options(remote_root=str(remote_root)))
    folder = export.write(p, export.export_dir(ws.root, p))
    version = export.record(conn, p, folder)
    models = server.root / "models"
    models.mkdir(exist_ok=True)
    write_dit(models / "dit.safetensors", "BF16")
    for name in ("vae.pth", "t5.pth"):
        (models / name).write_bytes(b"weights")
    pod = pods.add(conn, "local", host=server.host, port=server.port, user=server.user,
                   key_file=str(server.key_file), remote_dir=str(server.root / "lorad"),
                   cost_per_hour=0.5)
    config = {"dit": str(models / "dit.safetensors"), "vae": str(models / "vae.pth"),
              "t5": str(models / "t5.pth"), "musubi_dir": str(server.musubi_dir),
              "max_train_epochs": 3, "save_every_n_epochs": 1, "network_dim": 8}
    return version, pod, config


def make_run(conn, setup, name="truck", **config):
    version, pod, base = setup
    run = runs.create(conn, name, version, pod.id, {**base, **config})
    runs.start(conn, run.id)
    return run


def version_name(conn, run) -> str:
    """The run's dataset's name (its folder on the pod)."""
    return conn.execute("SELECT d.name FROM dataset_versions v JOIN datasets d ON d.id ="
                        " v.dataset_id WHERE v.id = ?", (run.dataset_version_id,)).fetchone()[0]


def contiguous_points(conn, run_id) -> list[int]:
    return [step for step, _loss in runs.loss_points(conn, run_id)]


def test_full_run_end_to_end(ws, conn, server, setup, notices):
    run = make_run(conn, setup)
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "succeeded", (run.error, run.log_tail)
    assert run.total_steps and run.step == run.total_steps
    assert contiguous_points(conn, run.id) == list(range(1, run.total_steps + 1))
    scripts = [i["script"] for i in server.invocations()]
    assert list(dict.fromkeys(Path(s).stem for s in scripts if "wan_" in s)) == [
        "wan_cache_latents", "wan_cache_text_encoder_outputs", "wan_train_network"]
    rows = conn.execute("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY id",
                        (run.id,)).fetchall()
    names = [r["name"] for r in rows]
    assert names == ["truck-000001.safetensors", "truck-000002.safetensors", "truck.safetensors"]
    for r in rows:
        assert r["state"] == "local"
        local = ws.root / r["local_path"]  # stored relative to the workspace
        assert not Path(r["local_path"]).is_absolute()
        assert local.exists() and r["size"] == local.stat().st_size
        meta = json.loads(r["metadata"])
        assert meta["ss_network_module"] == "networks.lora_wan"
        assert meta["ss_network_dim"] == "8"
    assert [r["epoch"] for r in rows[:2]] == [1, 2]
    pod = pods.get(conn, "local")
    assert pod.host_key == server.host_key_line  # pinned on first connect
    # how it was made: trainer version read on the pod, every stage's command, the data
    m = run.manifest
    assert m["trainer"]["name"] == "musubi" and m["trainer"]["version"]
    assert [s["name"] for s in m["stages"]] == ["latents", "text", "train"]
    assert "wan_train_network.py" in m["stages"][2]["command"]
    assert m["dataset_version"]["content_hash"] == \
        export.get_version(conn, run.dataset_version_id).content_hash
    assert m["base_model"] == "Wan-AI/Wan2.1-T2V-14B" and m["tools"]["lorad"]
    assert json.loads((ws.downloads_dir() / run.name / "manifest.json").read_text()) == m
    # the person who walked away hears of it
    assert notices.titles() == ["lorad: run truck finished"]
    assert f"step {run.total_steps}/{run.total_steps}" in notices.received[0]["message"]


def test_dropped_connection_loses_and_repeats_no_point(ws, conn, server, setup, fault_report):
    server.configure_double(mode="slow", step_seconds=0.15)
    run = make_run(conn, setup, name="drop")
    worker = threading.Thread(target=run_jobs, args=(ws, 180))
    worker.start()
    try:
        wait_for(lambda: (runs.get_by_id(conn, run.id).step or 0) >= 3, timeout=60,
                 message="training under way")
        server.drop_connections()  # kills the live SSH sessions; training goes on
        wait_for(lambda: (runs.get_by_id(conn, run.id).step or 0) >= 8, timeout=60,
                 message="progress after the reconnect")
        server.drop_connections()
    finally:
        worker.join(200)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "succeeded", (run.error, run.log_tail)
    fault_report("SSH sessions dropped twice mid-run", counted="points printed vs stored",
                 expected=run.total_steps, observed=len(contiguous_points(conn, run.id)))
    assert contiguous_points(conn, run.id) == list(range(1, run.total_steps + 1))


@pytest.mark.parametrize("mode,reason", [
    ("oom", "CUDA out of memory"),
    ("nan", "loss became NaN"),
    ("crash", "the trainer crashed"),
])
def test_failures_end_the_run_with_their_reason(ws, conn, server, setup, mode, reason,
                                                notices):
    server.configure_double(mode=mode)
    run = make_run(conn, setup, name=f"fail-{mode}")
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "failed"
    assert reason in run.error
    assert notices.titles() == [f"lorad: run fail-{mode} failed"]
    assert reason in notices.received[0]["message"]
    wait_for(lambda: server.double_pids() == [], timeout=20, message="remote process gone")


def test_host_key_change_is_refused(ws, conn, server, setup):
    run = make_run(conn, setup, name="pinned")
    pods.update(conn, setup[1].id, host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKey")
    run_jobs(ws, timeout=60)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "failed" and "host key changed" in run.error
    assert server.invocations() == [] or all(i["time"] < run.created_at
                                             for i in server.invocations())


def test_stop_kills_the_remote_process(ws, conn, server, setup):
    server.configure_double(mode="slow", step_seconds=0.2)
    run = make_run(conn, setup, name="stopme", max_train_epochs=10)
    worker = threading.Thread(target=run_jobs, args=(ws, 120))
    worker.start()
    try:
        wait_for(lambda: (runs.get_by_id(conn, run.id).step or 0) >= 2, timeout=60)
        runs.request_stop(conn, run.id)
    finally:
        worker.join(150)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "stopped"
    wait_for(lambda: server.double_pids() == [], timeout=20, message="remote process killed")


def test_daemon_killed_mid_run_then_restarted(ws, conn, server, setup, daemon_proc,
                                              fault_report):
    import os
    import signal

    server.configure_double(mode="slow", step_seconds=0.15)
    os.environ["FAL_KEY"] = "fal-secret-value-123"
    try:
        run = make_run(conn, setup, name="survivor")
        proc = daemon_proc.start()
        wait_for(lambda: (runs.get_by_id(conn, run.id).step or 0) >= 3, timeout=90,
                 message="training under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        daemon_proc.start()
        wait_for(lambda: runs.get_by_id(conn, run.id).state == "succeeded", timeout=120,
                 message="run finished after the restart")
    finally:
        os.environ.pop("FAL_KEY", None)
    run = runs.get_by_id(conn, run.id)
    fault_report("kill -9 of the daemon mid-run", counted="points printed vs stored",
                 expected=run.total_steps, observed=len(contiguous_points(conn, run.id)),
                 daemon_alive=daemon_proc.proc.poll() is None)
    assert contiguous_points(conn, run.id) == list(range(1, run.total_steps + 1))
    for path in (ws.db_path, ws.log_path):
        assert b"fal-secret-value-123" not in path.read_bytes()


def test_resume_continues_from_the_last_state_without_overwriting(ws, conn, server, setup,
                                                                 fault_report, notices):
    server.configure_double(mode="slow", step_seconds=0.15)
    run = make_run(conn, setup, name="long", max_train_epochs=6)
    worker = threading.Thread(target=run_jobs, args=(ws, 120))
    worker.start()
    try:
        wait_for(lambda: (runs.get_by_id(conn, run.id).step or 0) >= 8, timeout=60,
                 message="two epochs saved")
        runs.request_stop(conn, run.id)
    finally:
        worker.join(150)
    parent = runs.get_by_id(conn, run.id)
    assert parent.state == "stopped"
    assert notices.titles() == ["lorad: run long stopped"]  # whoever walked away hears it
    assert "stopped by request" in notices.received[0]["message"]
    # every step the trainer printed before it was stopped is stored (the last second of
    # progress used to be lost, leaving a gap before the state the child resumes from)
    printed = Path(parent.remote_dir, "logs", "train.log").read_bytes() + b"\n"
    steps = {e.step for e in musubi_log.parser().feed(printed)
             if isinstance(e, Progress) and e.step}
    fault_report("train stop mid-epoch", counted="points printed vs stored", expected=len(steps),
                 observed=len({s for s, _ in runs.loss_points(conn, parent.id)} & steps))
    assert {s for s, _ in runs.loss_points(conn, parent.id)} == steps
    server.configure_double(mode="slow", step_seconds=0.02)
    child = runs.resume(conn, "long", {"learning_rate": 1e-4})  # a setting changed on the way
    assert child.name == "long-r1" and child.parent_run_id == parent.id
    assert child.config["learning_rate"] == 1e-4 and parent.config["learning_rate"] == 2e-4
    run_jobs(ws, timeout=120)
    child = runs.get_by_id(conn, child.id)
    assert child.state == "succeeded", (child.error, child.log_tail)
    per_epoch = parent.total_steps // 6
    saved_epochs = child.step_offset // per_epoch
    assert saved_epochs >= 2 and child.step_offset % per_epoch == 0
    assert contiguous_points(conn, child.id) == list(range(child.step_offset + 1,
                                                           6 * per_epoch + 1))
    # the chart: the parent up to the resumed step, then the child, each step once
    assert [s for s, _ in runs.chain_losses(conn, child.id)] == list(range(1, 6 * per_epoch + 1))
    learning_rates = [i["argv"] for i in server.invocations() if "wan_train" in i["script"]][-1]
    assert learning_rates[learning_rates.index("--learning_rate") + 1] == "0.0001"
    resume_args = [i["argv"] for i in server.invocations() if "wan_train" in i["script"]][-1]
    assert resume_args[resume_args.index("--resume") + 1].endswith(
        f"long-{saved_epochs:06d}-state")
    names = [r[0] for r in conn.execute("SELECT name FROM checkpoints WHERE run_id = ?",
                                        (child.id,))]
    assert names and all(n.startswith("long-r1") for n in names)  # parent's files untouched


def test_runpod_pod_is_started_for_the_run_and_stopped_when_idle(ws, conn, server, setup,
                                                                   monkeypatch, notices):
    from runpod_double import runpod_double

    ws.config_path.write_text(ws.config_path.read_text()
                              + "\n[training]\nrunpod_poll_seconds = 0.05\n")
    version, _ssh_pod, config = setup
    with runpod_double(ssh_port=lambda pod: server.port) as rp:
        monkeypatch.setenv("RUNPOD_API_URL", rp.url)
        monkeypatch.setenv("RUNPOD_API_KEY", rp.api_key)
        rp.add_pod("rp1", status="EXITED")
        pod = pods.add(conn, "rp", provider="runpod", provider_id="rp1",
                       key_file=str(server.key_file), remote_dir=str(server.root / "lorad"))
        pods.update(conn, pod.id, policy={"on_finish": "stop", "on_failure": "stop",
                                          "idle_minutes": 0})
        run = runs.create(conn, "on-runpod", version, pod.id, config)
        runs.start(conn, run.id)
        run_jobs(ws, timeout=120)
        run = runs.get_by_id(conn, run.id)
        assert run.state == "succeeded", (run.error, run.log_tail)
        assert rp.pods["rp1"].status == "EXITED"  # stopped again once idle
        pod = pods.get(conn, "rp")
        assert pod.state == "stopped" and pod.ssh_port is None and pod.host_key is None
        assert conn.execute("SELECT SUM(amount) FROM cost_entries WHERE pod_id = ?",
                            (pod.id,)).fetchone()[0] > 0
        event = conn.execute("SELECT message FROM events WHERE kind = 'pod.stop'").fetchone()
        assert "policy on_finish" in event[0]
        actions = [c.body["action"] for c in rp.requests if c.method == "POST"]
        assert actions == ["start", "stop"]
        # whoever walked away hears both: the run's end (and the pod's fate), the pod stopped
        assert sorted(notices.titles()) == ["lorad: pod rp is idle", "lorad: pod rp stopped",
                                            "lorad: run on-runpod finished"]
        idle = next(r for r in notices.received if "idle" in r["title"])
        assert "will stop it in 0 min unless another run starts" in idle["message"]
        finished = next(r for r in notices.received if "finished" in r["title"])
        assert "stop queued in 0 min" in finished["message"]


def test_reconcile_follows_a_running_run_whose_job_died(ws, conn, server, setup):
    from lorad.core import jobs
    from lorad.training import train_job

    run = make_run(conn, setup, name="orphan")
    job = runs.get_by_id(conn, run.id).job_id
    conn.execute("UPDATE jobs SET state = 'failed', error = 'pod unreachable' WHERE id = ?",
                 (job,))
    runs.update(conn, run.id, state="running")
    train_job.reconcile(conn)
    new_job = runs.get_by_id(conn, run.id).job_id
    assert new_job != job and jobs.get(conn, new_job).state == "queued"
    run_jobs(ws, timeout=120)
    assert runs.get_by_id(conn, run.id).state == "succeeded"


def test_upload_resumes_from_the_part_without_resending(server, tmp_path):
    import hashlib
    import os

    from lorad.training.ssh import Endpoint, Shell

    data = os.urandom(3 * (1 << 20) + 12345)
    local = tmp_path / "clip.mp4"
    local.write_bytes(data)
    remote = server.root / "up" / "clip.mp4"
    remote.parent.mkdir(exist_ok=True)
    half = len(data) // 2
    (remote.parent / "clip.mp4.part").write_bytes(data[:half])  # a break left this behind
    sent = []
    with Shell(Endpoint(server.host, server.port, server.user, str(server.key_file))) as shell:
        assert shell.upload(local, str(remote), lambda done, total: sent.append(done)) is True
        assert min(sent) > half  # counting started at the part's size: nothing re-sent
        assert hashlib.sha256(remote.read_bytes()).digest() == hashlib.sha256(data).digest()
        assert not (remote.parent / "clip.mp4.part").exists()
        assert shell.upload(local, str(remote)) is False  # already there and identical


def test_samples_and_full_log_come_down(ws, conn, server, setup, capsys):
    from lorad.cli import main

    run = make_run(conn, setup, name="samples", sample_every_n_epochs=1)
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "succeeded", run.error
    samples = list((ws.downloads_dir() / "samples" / "sample").iterdir())
    assert samples and all(p.stat().st_size > 0 for p in samples)
    assert main(["-w", str(ws.root), "train", "log", "samples"]) == 0
    out = capsys.readouterr().out
    assert "model saved." in out and out.count("steps:") <= run.total_steps


def test_upload_tree_resumes_skips_and_verifies_with_openssh(server, tmp_path):
    import hashlib
    import os

    from lorad.training.ssh import Endpoint, Shell

    data = {name: os.urandom((1 << 20) + n) for n, name in enumerate(["a b.mp4", "c.txt"])}
    pairs = []
    for name, blob in data.items():
        (tmp_path / name).write_bytes(blob)
        pairs.append((tmp_path / name, str(server.root / "tree" / name)))
    (server.root / "tree").mkdir(exist_ok=True)
    (server.root / "tree" / "a b.mp4.part").write_bytes(data["a b.mp4"][:1000])  # broken before
    with Shell(Endpoint(server.host, server.port, server.user, str(server.key_file))) as shell:
        assert shell.upload_tree(pairs) == 2
        for name, blob in data.items():
            assert hashlib.sha256((server.root / "tree" / name).read_bytes()).digest() == \
                hashlib.sha256(blob).digest()
        assert not list((server.root / "tree").glob("*.part"))
        assert shell.upload_tree(pairs) == 0  # identical files are not sent again


def test_upload_tree_without_the_sftp_binary_makes_the_folders_too(server, tmp_path,
                                                                   monkeypatch):
    """The paramiko fallback (no local `sftp`) used to fail on a folder the pod lacked."""
    import shutil

    from lorad.training.ssh import Endpoint, Shell

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "sftp"
                        else real_which(name, *a, **k))
    (tmp_path / "clip.mp4").write_bytes(b"x" * 5000)
    remote = server.root / "new" / "deeper" / "clip.mp4"
    with Shell(Endpoint(server.host, server.port, server.user, str(server.key_file))) as shell:
        assert shell.upload_tree([(tmp_path / "clip.mp4", str(remote))]) == 1
    assert remote.read_bytes() == b"x" * 5000


def test_sftp_reads_on_a_dropped_connection_are_retryable_not_fatal(server):
    """CI caught a run failing for good when the connection dropped while its samples were
    listed: listdir let paramiko's SSHException through instead of SshUnavailable."""
    from lorad.training.ssh import Endpoint, Shell, SshUnavailable

    with Shell(Endpoint(server.host, server.port, server.user, str(server.key_file))) as shell:
        assert shell.listdir(str(server.root / "no such folder")) == []
        assert shell.size(str(server.root / "no such file")) is None
        server.drop_connections()
        for call in (lambda: shell.listdir(str(server.root)),
                     lambda: shell.size(str(server.root)),
                     lambda: shell.read_from(str(server.root / "x"), 0)):
            with pytest.raises(SshUnavailable):
                call()


def test_a_resumed_runs_chart_cuts_the_parent_at_the_resumed_step(conn, setup):
    """The parent's points past its saved state were drawn too: 222 points for a 200-step
    chain, zig-zagging back from step 122 to 101."""
    version, pod, config = setup
    parent = runs.create(conn, "p", version, pod.id, config)
    child = runs.create(conn, "p-r1", version, pod.id, config, parent_run_id=parent.id,
                        step_offset=100)
    runs.add_losses(conn, parent, [(s, 1.0) for s in range(1, 123)], at=0)
    runs.add_losses(conn, child, [(s, 0.5) for s in range(1, 101)], at=0)  # stored at 101..200
    points = runs.chain_losses(conn, child.id)
    assert [s for s, _ in points] == list(range(1, 201))
    assert {v for s, v in points if s > 100} == {0.5}


def test_stopping_a_run_while_the_daemon_is_down_takes_effect_when_it_runs(ws, conn, server,
                                                                          setup, capsys,
                                                                          fault_report):
    """`train stop` said "cancelled" (only its queued job was), the run restarted when the
    daemon started, and its process went on on the pod."""
    from lorad.cli import main

    server.configure_double(mode="slow", step_seconds=0.2)
    ws.config_path.write_text(ws.config_path.read_text().replace(
        "[daemon]\n", "[daemon]\nshutdown_grace_seconds = 0\n", 1))
    run = make_run(conn, setup, name="stop-later", max_train_epochs=10)
    # the daemon runs the job until training is under way, then stops (its job handed back)
    run_jobs(ws, timeout=120, until=lambda c: (runs.get_by_id(c, run.id).step or 0) >= 2)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "running" and server.double_pids()  # still training on the pod
    capsys.readouterr()
    assert main(["-w", str(ws.root), "train", "stop", "stop-later"]) == 0
    assert "stopping when the daemon runs" in capsys.readouterr().out
    run_jobs(ws, timeout=120)  # the next daemon: it stops the process, and the run
    run = runs.get_by_id(conn, run.id)
    assert run.state == "stopped" and run.error == "stopped by request"
    wait_for(lambda: server.double_pids() == [], timeout=20, message="remote process killed")
    from lorad.training import train_job

    train_job.reconcile(conn)  # the periodic check does not start it again
    assert runs.get_by_id(conn, run.id).state == "stopped"
    fault_report("train stop while the daemon is down", counted="trainer processes left on "
                 "the pod", expected=0, observed=len(server.double_pids()))


def test_a_run_past_its_budget_is_stopped_and_said_so(ws, conn, server, setup, notices):
    server.configure_double(mode="slow", step_seconds=0.2)
    version, pod, config = setup
    run = runs.create(conn, "tight", version, pod.id, {**config, "max_train_epochs": 10},
                      budget=0.0003)  # about two seconds at the pod's $0.50/h
    runs.start(conn, run.id)
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "stopped" and "budget $0.00 reached" in run.error, run.error
    assert notices.titles() == ["lorad: run tight stopped"]
    assert "budget $0.00 reached" in notices.received[0]["message"]
    wait_for(lambda: server.double_pids() == [], timeout=20, message="remote process gone")


def test_stopping_a_run_that_never_started_is_immediate(conn, setup):
    run = make_run(conn, setup, name="never")
    assert runs.request_stop(conn, run.id) == "stopped"
    assert runs.get_by_id(conn, run.id).state == "stopped"


def test_an_fp16_dit_trains_in_fp16_without_being_told(ws, conn, server, setup, tmp_path):
    """musubi asserts mixed precision matches the DiT's dtype; lorad passed bf16 whatever the
    file held (and refused bf16 for every Wan 2.2 file)."""
    fp16 = write_dit(server.root / "models" / "wan2.1_t2v_14B_fp16.safetensors", "F16")
    run = make_run(conn, setup, name="half", dit=str(fp16), max_train_epochs=1)
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "succeeded", (run.error, run.log_tail)
    ckpt = json.loads(conn.execute("SELECT metadata FROM checkpoints WHERE run_id = ?",
                                   (run.id,)).fetchone()[0])
    assert ckpt["ss_mixed_precision"] == "fp16"


def test_checkpoint_names_and_epochs_as_musubi_writes_them(ws, conn, server, setup):
    """A run named `truck-2` made its final `truck-2.safetensors` "epoch 2"; step checkpoints
    took musubi's 0-based epoch from their metadata as the epoch number."""
    run = make_run(conn, setup, name="truck-2", max_train_epochs=3, save_every_n_epochs=1,
                   save_every_n_steps=4)
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "succeeded", (run.error, run.log_tail)
    rows = conn.execute("SELECT name, step, epoch, metadata FROM checkpoints WHERE run_id = ?"
                        " ORDER BY id", (run.id,)).fetchall()
    by_name = {r["name"]: r for r in rows}
    final = by_name["truck-2.safetensors"]
    assert final["epoch"] == 3 and json.loads(final["metadata"])["ss_epoch"] == "3"
    steps = [r for r in rows if "-step" in r["name"]]
    per_epoch = run.total_steps // 3
    assert steps, [r["name"] for r in rows]
    for r in steps:  # saved during epoch (step - 1) // per_epoch + 1, counted from 1
        assert json.loads(r["metadata"])["ss_epoch"] == str((r["step"] - 1) // per_epoch)
        assert r["epoch"] == (r["step"] - 1) // per_epoch + 1


def test_an_i2v_run_samples_every_eval_prompt_from_its_start_image(ws, conn, server, setup):
    """Without `--i` musubi skips every image-to-video sample ("No image_path for i2v model")."""
    (server.root / "models" / "clip.pth").write_bytes(b"weights")
    run = make_run(conn, setup, name="i2v", task="i2v-14B", max_train_epochs=1,
                   clip=str(server.root / "models" / "clip.pth"), sample_every_n_epochs=1)
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "succeeded", (run.error, run.log_tail)
    log = (Path(run.remote_dir) / "logs" / "train.log").read_text()
    assert "No image_path for i2v model" not in log
    assert "image path: " in log and "samples/start-1.png" in log


def test_images_are_made_in_musubis_own_buckets_and_batches_counted_per_bucket(
        ws, conn, server, setup, tmp_path):
    """Stills were sized by rounding each side, so musubi resized and cropped them a second
    time into its own buckets; batches per epoch were counted over all items at once."""
    from media_factory import make_image

    from lorad.datasets import preflight
    from lorad.media import clips

    _version, pod, config = setup
    profile = profiles.get("image-1024")
    d = datasets.create(conn, "stills", profile.name, trigger="TRK")
    folder = tmp_path / "stills"
    shapes = [("1600x900", "red"), ("1200x900", "blue"), ("1200x900", "green"),
              ("1000x1000", "yellow"), ("900x1600", "white")]
    for n, (size, colour) in enumerate(shapes):
        make_image(folder / f"s{n}.png", size=size, source=f"color=c={colour}")
    clips.add(conn, d, [folder])
    run_jobs(ws)
    for c in clips.list_clips(conn, d.id):
        assert c.state == "ready", c.error
        versions.set_caption(conn, c.id, f"TRK, a flat {c.name} picture")
        clips.set_review(conn, [c.id], "approved")
    opts = export.Options(remote_root=str(server.root / "datasets" / "stills"), batch_size=2)
    p = export.plan(conn, d, profile, opts)
    version = export.record(conn, p, export.write(p, export.export_dir(ws.root, p)))
    report = preflight.check(conn, d, profile, opts)
    run = runs.create(conn, "stills", version, pod.id,
                      {**config, "max_train_epochs": 1})
    runs.start(conn, run.id)
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "succeeded", (run.error, run.log_tail)
    log = (Path(run.remote_dir) / "logs" / "train.log").read_text()
    buckets = {tuple(int(x) for x in m.split(", ")[:2])
               for m in re.findall(r"bucket: \((\d+, \d+(?:, \d+)?)\)", log)}
    made = {(c.width, c.height) for c in clips.list_clips(conn, d.id)}
    assert buckets == made  # every still already is its bucket's size: nothing resized again
    assert f"total batches: {report.batches}" in log  # 1600x900 | 2 x 1184x880 | 1:1 | 9:16
    assert report.batches == 4


def test_a_pod_with_too_little_free_gpu_memory_is_refused_before_anything_is_uploaded(
        ws, conn, server, setup, capsys):
    """The pod's GPUs as nvidia-smi tells them (the double's: RTX 4090s, 24564 MiB each), and
    musubi-tuner's 24 GB+ for video (its README): a run is refused at start on a pod whose GPU
    another process holds, and at `train start` once a check has seen it."""
    from lorad.cli import main
    from lorad.training import gpus

    server.configure_double(gpu_count=2, gpu_used_mib=20000)
    before = len(server.invocations())  # the pod is the module's: earlier tests ran on it
    run = make_run(conn, setup, name="starved")  # never checked: the job finds out
    run_jobs(ws, timeout=60)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "failed" and "needs 24 GB of free GPU memory" in run.error
    assert "2 x NVIDIA GeForce RTX 4090" in run.error
    assert "another process holds 21.5 GB of it" in run.error
    assert not any("wan_" in i["script"] for i in server.invocations()[before:])
    assert not (server.root / "datasets" / version_name(conn, run)).exists()  # not uploaded
    version, pod, config = setup
    assert main(["-w", str(ws.root), "pod", "check", "local", "--set",
                 f"musubi_dir={server.musubi_dir}"]) == 0
    out = capsys.readouterr().out
    assert "2 x NVIDIA GeForce RTX 4090 (25.8 GB, 4.3 GB free each)" in out
    assert [g.free_mib for g in pods.get(conn, "local").gpus] == [24564 - 20000 - 458] * 2
    with pytest.raises(runs.RunError, match="needs 24 GB"):
        runs.create(conn, "starved-again", version, pod.id, config)
    server.configure_double()  # the other process is gone
    assert main(["-w", str(ws.root), "pod", "check", "local"]) == 0
    assert runs.create(conn, "fed", version, pod.id, config).state == "created"
    assert gpus.shortfall([gpus.Gpu("A", 81920, 81000)], 40, "x") is None
    small = gpus.shortfall([gpus.Gpu("NVIDIA RTX A4000", 16376, 16000)], 40, "StableAvatar")
    assert "pick a pod type with at least 40 GB (RTX A6000 (48 GB)" in small
    assert gpus.parse("NVIDIA A100, 81920, 81000\nbad line\n") == [gpus.Gpu("NVIDIA A100",
                                                                           81920, 81000)]
