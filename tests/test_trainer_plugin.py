"""A trainer added as a plugin (tests/support/echo_trainer.py) runs a whole training run on the
real sshd pod through the same path as musubi-tuner: registry, train job, log parser, loss
points, checkpoint pulls verified by SHA-256, cost."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import run_jobs, wait_for
from sshd import start_sshd
from test_captions import add_clip

from lorad.captions import versions
from lorad.cli import main
from lorad.core.plugins import PluginError
from lorad.datasets import export
from lorad.media import datasets, profiles
from lorad.training import checkpoints, pods, runs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_sshd(tmp_path_factory.mktemp("pod")) as srv:
        yield srv


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.setenv("LORAD_PLUGINS", "echo_trainer")  # as the daemon of a plugin user would


@pytest.fixture
def version(conn, server, tmp_path):
    profile = profiles.get("wan21-t2v-480p-portrait")
    d = datasets.create(conn, "echoes", profile.name, trigger="TRK")
    for n in range(2):
        media = tmp_path / f"clip{n}.mp4"
        media.write_bytes(b"not really a video %d" % n)
        clip = add_clip(conn, d.id, f"clip{n}", media=str(media))
        versions.set_caption(conn, clip, f"TRK, truck number {n} parked in a field")
    p = export.plan(conn, datasets.get(conn, "echoes"), profile,
                    export.Options(remote_root=str(server.root / "datasets" / "echoes")))
    return export.record(conn, p, export.write(p, tmp_path / "export"))


def test_the_echo_trainer_is_listed_beside_musubi(ws, plugin, capsys):
    assert main(["-w", str(ws.root), "trainers"]) == 0
    out = capsys.readouterr().out
    assert "echo" in out and "musubi" in out


def test_a_plugin_trainer_runs_end_to_end_on_the_pod(ws, conn, server, version, plugin):
    pod = pods.add(conn, "box", host=server.host, port=server.port, user=server.user,
                   key_file=str(server.key_file), remote_dir=str(server.root / "lorad"),
                   cost_per_hour=0.6)
    run = runs.create(conn, "echo-run", version, pod.id, {"steps": 7, "save_every": 3},
                      trainer="echo")
    runs.start(conn, run.id)
    run_jobs(ws, timeout=120)

    run = runs.get_by_id(conn, run.id)
    assert (run.state, run.stage, run.trainer) == ("succeeded", "done", "echo"), run.error
    # every step the shell printed is one point, in order, with its loss
    points = runs.loss_points(conn, run.id)
    assert [s for s, _ in points] == list(range(1, 8))
    assert points[-1][1] == pytest.approx(1 / 8, abs=1e-4)
    assert (run.step, run.total_steps) == (7, 7)
    # checkpoints at steps 3, 6 and the last, pulled and identical to the pod's files
    saved = checkpoints.for_run(conn, run.id)
    assert [c.step for c in saved] == [3, 6, 7]
    for c in saved:
        assert c.state == "local" and c.metadata["ss_steps"] == str(c.step)
        local = Path(c.local_path)
        assert c.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
        assert local.read_bytes() == Path(c.remote_path).read_bytes()
    assert runs.cost(conn, run).spent > 0


def test_a_run_with_nothing_to_resume_from_is_refused_up_front(conn, server, version, plugin):
    """`train resume` used to say it resumed from the last saved state; the new run then
    failed on the pod."""
    pod = pods.add(conn, "box2", host=server.host, port=server.port, user=server.user,
                   key_file=str(server.key_file), remote_dir=str(server.root / "lorad2"))
    parent = runs.create(conn, "echo-stopped", version, pod.id, {"steps": 2}, trainer="echo")
    runs.update(conn, parent.id, state="stopped", stage="train")
    with pytest.raises(runs.RunError, match="cannot be resumed: the echo trainer saves no "
                                            "state"):
        runs.resume(conn, "echo-stopped")
    musubi = runs.create(conn, "no-state", version, pod.id, {
        "dit": "/m/d", "vae": "/m/v", "t5": "/m/t", "save_state": False})
    runs.update(conn, musubi.id, state="failed", stage="train")
    with pytest.raises(runs.RunError, match="ran with save_state off"):
        runs.resume(conn, "no-state")
    saved = runs.create(conn, "no-checkpoint", version, pod.id,
                        {"dit": "/m/d", "vae": "/m/v", "t5": "/m/t"})
    runs.update(conn, saved.id, state="failed", stage="train")
    with pytest.raises(runs.RunError, match="stopped before it saved a checkpoint"):
        runs.resume(conn, "no-checkpoint")
    assert [r.name for r in runs.list_all(conn)
            if r.parent_run_id] == []  # no new run was made


def test_an_unknown_trainer_is_refused_with_the_known_ones(conn, version):
    pod = pods.add(conn, "box3", host="127.0.0.1")
    with pytest.raises(PluginError, match=r"unknown trainer 'nope' \(known: .*musubi"):
        runs.create(conn, "x", version, pod.id, {}, trainer="nope")


def test_a_run_refuses_a_dataset_version_written_for_another_trainer(conn, version, plugin):
    conn.execute("UPDATE dataset_versions SET manifest = json_set(manifest, '$.format',"
                 " 'diffusion-pipe') WHERE id = ?", (version,))
    pod = pods.add(conn, "box4", host="127.0.0.1")
    config = {"dit": "/m/dit", "vae": "/m/vae", "t5": "/m/t5"}
    with pytest.raises(runs.RunError, match="written for diffusion-pipe, but musubi-tuner"):
        runs.create(conn, "y", version, pod.id, config)
    assert runs.create(conn, "z", version, pod.id, {}, trainer="echo").trainer == "echo"


def test_a_broken_plugin_takes_away_only_itself(tmp_path, monkeypatch):
    """A plugin module that fails to import is reported by name; the built-in trainers, the
    other plugins and secret redaction go on working."""
    from lorad.core import logs, plugins
    from lorad.training import trainers

    (tmp_path / "broken_trainer_plugin.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LORAD_PLUGINS", "broken_trainer_plugin,echo_trainer")
    monkeypatch.setenv("FAL_KEY", "fal-secret-1234")
    assert trainers.get("echo").name == "echo" and trainers.get("musubi").name == "musubi"
    with pytest.raises(PluginError, match=r"broken_trainer_plugin did not load \(RuntimeError: "
                                          r"no GPU here\)"):
        trainers.get("broken")
    assert logs.redact("key fal-secret-1234 leaked") == "key [redacted] leaked"
    assert "broken_trainer_plugin" in plugins.failures()


def test_pod_check_checks_the_interpreter_the_stages_call(ws, server, capsys):
    """It used to test python3 while the stages call `python`: a host with only python3
    passed the check, then the first stage failed with exit 127."""
    w = ["-w", str(ws.root)]
    assert main([*w, "pod", "add", "box5", "--host", server.host, "--port", str(server.port),
                 "--user", server.user, "--key", str(server.key_file)]) == 0
    capsys.readouterr()
    main([*w, "pod", "check", "box5", "--json", "--set", f"musubi_dir={server.musubi_dir}",
          "--set", "python=python-not-installed"])
    found = {r["check"]: r for r in json.loads(capsys.readouterr().out)}
    assert not found["python"]["ok"]
    assert "`python-not-installed` is not on the pod's PATH" in found["python"]["fix"]
    main([*w, "pod", "check", "box5", "--json", "--set", "python=python"])  # the rest remembered
    found = {r["check"]: r for r in json.loads(capsys.readouterr().out)}
    assert found["python"]["ok"] and found["accelerate"]["ok"] and found["musubi"]["ok"]


def test_what_a_pod_check_was_told_is_the_default_of_later_checks_and_runs(ws, conn, server,
                                                                           version, capsys):
    """`pod check --musubi-dir` was forgotten: every run's config had to repeat it."""
    w = ["-w", str(ws.root)]
    main([*w, "pod", "add", "box6", "--host", server.host, "--port", str(server.port),
          "--user", server.user, "--key", str(server.key_file)])
    model = server.root / "models-box6" / "dit.safetensors"
    model.parent.mkdir()
    model.write_bytes(b"weights")
    main([*w, "pod", "check", "box6", "--musubi-dir", str(server.musubi_dir), "--model",
          str(model)])
    pod = pods.get(conn, "box6")
    assert pod.trainer_options("musubi") == {"musubi_dir": str(server.musubi_dir)}
    assert pod.models == [str(model)]
    capsys.readouterr()
    main([*w, "pod", "check", "box6", "--json"])  # nothing repeated
    found = {r["check"]: r for r in json.loads(capsys.readouterr().out)}
    assert found["musubi"]["ok"] and found["model dit.safetensors"]["ok"]
    run = runs.create(conn, "uses-pod-setup", version, pod.id,
                      {"dit": str(model), "vae": "/m/vae", "t5": "/m/t5"})
    assert run.config["musubi_dir"] == str(server.musubi_dir)


def test_a_run_is_not_done_until_its_checkpoints_are_here(ws, conn, server, version, plugin,
                                                         monkeypatch):
    """A run showed `succeeded` (and its pod could be stopped) while its last checkpoint was
    still coming down."""
    import threading

    from lorad.core import jobs
    from lorad.training.ssh import Shell

    gate = threading.Event()
    real_download = Shell.download

    def held_download(self, *args, **kwargs):
        assert gate.wait(60), "the test never opened the gate"
        return real_download(self, *args, **kwargs)

    monkeypatch.setattr(Shell, "download", held_download)
    pod = pods.add(conn, "box7", host=server.host, port=server.port, user=server.user,
                   key_file=str(server.key_file), remote_dir=str(server.root / "lorad7"))
    run = runs.create(conn, "pulls", version, pod.id, {"steps": 4, "save_every": 2},
                      trainer="echo")
    runs.start(conn, run.id)
    worker = threading.Thread(target=run_jobs, args=(ws, 90))
    worker.start()
    try:
        wait_for(lambda: runs.get_by_id(conn, run.id).stage == runs.PULLING,
                 message="training over, checkpoints on their way")
        job = jobs.get(conn, runs.get_by_id(conn, run.id).job_id)
        wait_for(lambda: "pulling checkpoints (0 of 2)" in (jobs.get(conn, job.id).progress_msg
                                                            or ""), message="the progress")
        assert runs.get_by_id(conn, run.id).state == "running"
    finally:
        gate.set()
        worker.join(100)
    run = runs.get_by_id(conn, run.id)
    assert (run.state, run.stage, run.error) == ("succeeded", "done", None)
    assert [c.state for c in checkpoints.for_run(conn, run.id)] == ["local", "local"]
