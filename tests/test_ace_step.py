"""Audio LoRAs on ACE-Step (issue 13, item 6): tracks ingested and exported in ACE-Step's format
train on the real sshd pod with the ACE-Step double (tests/support/ace_step_double: the real
arguments, `datasets.load_from_disk`, Lightning's bar, .ckpt states and PEFT LoRA folders):
one loss point per global step, LoRA folders pulled, stopped and resumed from the last .ckpt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import printed_steps, run_jobs, stop_midway
from sshd import start_sshd
from test_audio_ingest import add, track

from lorad.captions import versions
from lorad.datasets import export
from lorad.media import clips, datasets, profiles
from lorad.training import checkpoints, pods, runs, trainers
from lorad.training.trainers.ace_step import BarReader

DOUBLE = Path(__file__).parent / "support" / "ace_step_double"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_sshd(tmp_path_factory.mktemp("pod")) as srv:
        srv.ace = srv.root / "ACE-Step"
        shutil.copytree(DOUBLE, srv.ace, ignore=shutil.ignore_patterns("__pycache__"))
        srv.model = srv.root / "models" / "ACE-Step-v1-3.5B"
        srv.model.mkdir(parents=True)
        (srv.model / "music_dcae_f8c8").mkdir()
        yield srv


@pytest.fixture
def lofi(ws, conn, server, tmp_path):
    """Three tagged lofi tracks, exported for ACE-Step on the pod, and the pod."""
    from lorad.cli import main

    assert main(["-w", str(ws.root), "dataset", "create", "lofi", "--profile",
                 "ace-step-audio"]) == 0
    d = datasets.get(conn, "lofi")
    found = add(ws, conn, d, [track(tmp_path / f"t{n}.wav", 31) for n in range(3)])
    ids = [c.id for c in found.values()]
    clips.set_review(conn, ids, "approved")
    for n, clip_id in enumerate(ids):
        versions.set_caption(conn, clip_id, f"lofi, piano, mellow, {70 + n} bpm")
    p = export.plan(conn, datasets.get(conn, "lofi"), profiles.get("ace-step-audio"),
                    export.Options(remote_root=str(server.root / "datasets" / tmp_path.name)))
    version = export.record(conn, p, export.write(p, export.export_dir(ws.root, p)))
    pod = pods.add(conn, "box", host=server.host, port=server.port, user=server.user,
                   key_file=str(server.key_file), remote_dir=str(server.root / "lorad"),
                   cost_per_hour=0.4)
    return version, pod


def config(server, **changes):
    return {"ace_step_dir": str(server.ace), "checkpoint_dir": str(server.model),
            "max_steps": 8, "every_n_train_steps": 4, "every_plot_step": 4, **changes}


def test_lightnings_bar_gives_one_point_per_global_step():
    read = BarReader(2)
    line = ("Epoch 2:  50%|█████     | 2/4 [00:01<00:01,  1.9it/s, v_num=x, "
            "train/denoising_loss=0.121, train/loss=0.134, train/learning_rate=0.0001]")
    progress, epoch = read(line)
    assert (progress.step, progress.avr_loss, epoch.epoch) == (5, 0.134, 3)  # (2*4+2)/2
    assert read(line.replace("2/4", "1/4")) == []  # between optimizer steps


def test_a_music_lora_trains_on_ace_step_and_its_loras_come_down(ws, conn, server, lofi):
    version, pod = lofi
    run = runs.create(conn, "lofi-1", version, pod.id, config(server), trainer="ace-step")
    runs.start(conn, run.id)
    run_jobs(ws, timeout=150)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "succeeded", (run.error, run.log_tail)
    assert [s for s, _ in runs.loss_points(conn, run.id)] == list(range(1, 9))
    assert run.total_steps == 8
    assert runs.loss_points(conn, run.id)[-1][1] == pytest.approx(0.6 / 8 ** 0.5, rel=1e-2)
    saved = checkpoints.for_run(conn, run.id)
    assert [(c.step, c.name) for c in saved] == [(4, "lofi-1-step000004.safetensors"),
                                                 (8, "lofi-1-step000008.safetensors")]
    assert all(c.state == "local" for c in saved)
    assert not any(Path(c.local_path).suffix == ".ckpt" for c in saved)  # states stay there
    assert trainers.get("ace-step").model_info({}).media == "audio"
    # the eval audio of each --every_plot_step came down and is a generation of the checkpoint
    # saved at its step: played, rated and ranked like one
    from lorad.generation import generations, ratings
    from lorad.training import samples

    made = samples.for_run(conn, run.id)
    assert [(m.step, Path(m.local_path).suffix) for m in made] == [(4, ".wav"), (8, ".wav")]
    gens = {g.checkpoint_id: g for g in generations.list_all(conn)
            if g.endpoint == "trainer/sample"}
    assert set(gens) == {c.id for c in saved} and all(g.status == "completed"
                                                      for g in gens.values())
    assert gens[saved[1].id].prompt.endswith("at step 8") and gens[saved[1].id].cost == 0
    ratings.rate(conn, gens[saved[1].id].id, stars=5)
    ratings.rate(conn, gens[saved[0].id].id, stars=2)
    assert [r.name for r in ratings.rank_checkpoints(conn, run.id)][0] == saved[1].name
    with pytest.raises(generations.GenerationError, match="cannot be made again"):
        generations.retake(conn, gens[saved[0].id].id)


def test_a_stopped_run_resumes_from_its_last_ckpt(ws, conn, server, lofi, fault_report):
    version, pod = lofi
    server.configure_double(ace_step_seconds=0.1)
    run = runs.create(conn, "lofi-long", version, pod.id,
                      config(server, max_steps=30, every_n_train_steps=5), trainer="ace-step")
    runs.start(conn, run.id)
    parent = stop_midway(ws, conn, run.id, 12, message="two states saved")
    assert parent.state == "stopped", parent.error
    steps = printed_steps(parent, trainers.get("ace-step").parser())
    stored = {s for s, _ in runs.loss_points(conn, parent.id)}
    fault_report("ACE-Step stop mid-epoch", counted="points printed vs stored",
                 expected=len(steps), observed=len(stored & steps))
    assert stored == steps
    server.configure_double(ace_step_seconds=0.005)
    child = runs.resume(conn, "lofi-long")
    run_jobs(ws, timeout=120)
    child = runs.get_by_id(conn, child.id)
    assert child.state == "succeeded", (child.error, child.log_tail)
    saved = int(child.resume_from.split("step=")[1].split(".")[0])
    assert saved >= 10 and saved % 5 == 0 and child.resume_from.endswith(".ckpt")
    assert [s for s, _ in runs.loss_points(conn, child.id)] == list(range(saved + 1, 31))
    assert [s for s, _ in runs.chain_losses(conn, child.id)] == list(range(1, 31))


async def test_a_trainers_eval_audio_is_played_and_rated_on_the_generations_screen(
        ws, conn, tmp_path, monkeypatch):
    import asyncio

    from helpers import go_to
    from helpers import pilot_until as until
    from test_audio_ingest import track as make_track

    from lorad.generation import generations, ratings
    from tui.app import LoradApp
    from tui.screens.generations import GenerationsScreen

    pod = pods.add(conn, "box", host="127.0.0.1")
    conn.execute("INSERT INTO datasets (name, profile, created_at) VALUES ('lofi', "
                 "'ace-step-audio', 0)")
    conn.execute("INSERT INTO dataset_versions (dataset_id, content_hash, manifest, created_at)"
                 " VALUES (1, 'h', ?, 0)", ('{"format": "ace-step"}',))
    run = runs.create(conn, "lofi-1", 1, pod.id, {"checkpoint_dir": "/m"}, trainer="ace-step")
    ckpt = checkpoints.record(conn, run.id, "/pod/x_lora/adapter_model.safetensors", step=4)
    wav = await asyncio.to_thread(make_track, tmp_path / "pred_wav_t0_0.wav", 31)
    gen = generations.record_sample(conn, checkpoint_id=ckpt, path=wav,
                                    prompt="eval audio of t0 at step 4")
    app = LoradApp(ws, refresh_interval=0.05)
    played = []
    monkeypatch.setattr(app, "play", played.append)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}"
                        if name == "ffplay" else None)
    async with app.run_test(size=(80, 24)) as pilot:
        await go_to(app, pilot, "Generations", GenerationsScreen, rows=1)
        await pilot.press("space")
        await until(pilot, lambda: played, message="played")
        await pilot.press("s", "5")
        await until(pilot, lambda: (ratings.current(conn, gen) or None) is not None,
                    message="rated")
    assert played[0][:2] == ["ffplay", "-nodisp"] and played[0][-1] == str(wav)
    assert ratings.current(conn, gen).stars == 5
