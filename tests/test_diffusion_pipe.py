"""diffusion-pipe as a second trainer, on the real sshd pod with its double
(tests/support/diffusion_pipe_double: train.py under a deepspeed launcher, one process per
"GPU"): the same truck dataset trains with musubi-tuner and with diffusion-pipe, a 2-GPU run
with pipeline_stages = 2 is stopped and resumed with exact loss points, and the eval loss read
from its TensorBoard files is a second curve."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import test_training
from helpers import alive, printed_steps, run_jobs, stop_midway
from sshd import start_sshd
from test_training import PROFILE, make_run

from lorad.cli import main
from lorad.datasets import export, preflight
from lorad.media import datasets
from lorad.training import checkpoints, pods, runs, trainers
from lorad.training.trainers.diffusion_pipe import events_in

DOUBLE = Path(__file__).parent / "support" / "diffusion_pipe_double"


@pytest.fixture
def truck(ws, conn, server, tmp_path):
    """The musubi tests' truck dataset version on this pod (test_training's `setup`)."""
    return test_training.setup.__wrapped__(ws, conn, server, tmp_path)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_sshd(tmp_path_factory.mktemp("pod")) as srv:
        srv.dp_dir = srv.root / "diffusion-pipe"
        shutil.copytree(DOUBLE, srv.dp_dir, ignore=shutil.ignore_patterns("__pycache__"))
        (srv.dp_dir / "bin" / "deepspeed").chmod(0o755)
        srv.wan = srv.root / "models" / "Wan2.1-T2V-1.3B"
        srv.wan.mkdir(parents=True)
        (srv.wan / "config.json").write_text(json.dumps({"model_type": "t2v", "dim": 1536}))
        yield srv


def dp_version(ws, conn, server, version_id: int, validation: float = 0.34) -> int:
    """The musubi setup's dataset, exported again for diffusion-pipe (with an eval split)."""
    name = conn.execute("SELECT d.name FROM dataset_versions v JOIN datasets d ON d.id ="
                        " v.dataset_id WHERE v.id = ?", (version_id,)).fetchone()[0]
    d = datasets.get(conn, name)
    options = export.Options(format="diffusion-pipe", validation=validation,
                             remote_root=str(server.root / "datasets" / f"{name}-dp"))
    report = preflight.check(conn, d, PROFILE, options)
    assert report.ok, [f.line() for f in report.findings]
    p = export.plan(conn, d, PROFILE, options)
    return export.record(conn, p, export.write(p, export.export_dir(ws.root, p)))


def dp_config(server, **changes):
    return {"diffusion_pipe_dir": str(server.dp_dir),
            "deepspeed": str(server.dp_dir / "bin" / "deepspeed"), "ckpt_path": str(server.wan),
            "max_steps": 8, "pipeline_stages": 2, "save_every_n_steps": 4,
            "eval_every_n_steps": 4, "checkpoint_every_n_epochs": 1,
            "checkpoint_every_n_minutes": None, **changes}


def two_gpus(server, tmp_path, **extra):
    server.configure_double(gpu_name="NVIDIA A100-SXM4-80GB", gpu_memory_mib=81920, gpu_count=2,
                            dp_pids=str(tmp_path / "pids"), **extra)


def test_the_step_lines_deepspeed_prints_are_read_exactly():
    line = "steps: 12 loss: 0.0866 iter time (s): 2.500 samples/sec: 0.400"
    (progress,) = events_in(line)
    assert (progress.step, progress.avr_loss, progress.rate) == (12, 0.0866, 0.4)
    assert events_in("[2026-01-01 12:00:00,123] [INFO] [logging.py:128:log_dist] [Rank 0] "
                     "step=12, skipped=0, lr=[2e-05], mom=[[0.9, 0.99]]") == []
    assert events_in("Global batch size = 4") == []


def test_the_export_is_what_diffusion_pipe_reads(ws, conn, server, truck):
    version, _pod, _config = truck
    dp = export.get_version(conn, dp_version(ws, conn, server, version))
    folder = Path(dp.export_path)
    main_toml = tomllib.loads((folder / "dataset.toml").read_text())
    assert main_toml["frame_buckets"] == [1, 41]  # the clips' own length: nothing skipped
    assert main_toml["resolutions"] == [[480, 848]]
    assert main_toml["directory"] == [{"path": f"{dp.remote_root}/train", "num_repeats": 1}]
    assert tomllib.loads((folder / "eval_dataset.toml").read_text())["directory"][0][
        "path"] == f"{dp.remote_root}/val"
    for media in (folder / "train").glob("*.mp4"):
        assert media.with_suffix(".txt").read_text().startswith("TRK, ")  # beside its clip
    assert dp.format == "diffusion-pipe"


def test_a_short_clip_is_predicted_as_skipped(ws, conn, server, truck):
    """Preflight says what diffusion-pipe will do with each clip: its bucket, or skipped."""
    version, _pod, _config = truck
    name = conn.execute("SELECT d.name FROM dataset_versions v JOIN datasets d ON d.id ="
                        " v.dataset_id WHERE v.id = ?", (version,)).fetchone()[0]
    d = datasets.get(conn, name)
    first = conn.execute("SELECT id FROM clips WHERE dataset_id = ? ORDER BY id", (d.id,)
                         ).fetchone()[0]
    conn.execute("UPDATE clips SET frames = 17 WHERE id = ?", (first,))
    report = preflight.check(conn, d, PROFILE, export.Options(format="diffusion-pipe"))
    assert sorted(report.buckets.values()) == [17, 41, 41]  # buckets from the clips' lengths
    conn.execute("UPDATE clips SET frames = 1 WHERE id = ?", (first,))
    report = preflight.check(conn, d, PROFILE, export.Options(format="diffusion-pipe"))
    skipped = [f.message for f in report.errors if "skips it" in f.message]
    assert len(skipped) == 1 and "shorter than every frame bucket [41]" in skipped[0]


def test_the_same_dataset_trains_with_musubi_and_diffusion_pipe(ws, conn, server, truck,
                                                                tmp_path, capsys):
    version, pod, _config = truck
    two_gpus(server, tmp_path)
    musubi = make_run(conn, truck, name="truck-musubi", max_train_epochs=2)
    dp = runs.create(conn, "truck-dp", dp_version(ws, conn, server, version), pod.id,
                     dp_config(server), trainer="diffusion-pipe")
    runs.start(conn, dp.id)
    run_jobs(ws, timeout=180)
    musubi, dp = runs.get_by_id(conn, musubi.id), runs.get_by_id(conn, dp.id)
    assert (musubi.state, dp.state) == ("succeeded", "succeeded"), (dp.error, dp.log_tail)
    assert [s for s, _ in runs.loss_points(conn, dp.id)] == list(range(1, 9))
    assert dp.total_steps == 8 and dp.step == 8
    # the held-out loss, from the run folder's TensorBoard file: before the first step, then
    # every 4 steps
    assert [s for s, _ in runs.eval_points(conn, dp.id)] == [0, 4, 8]
    assert runs.eval_points(conn, dp.id)[-1][1] == pytest.approx(0.4 / 3, rel=1e-4)
    # two launches (the cache stage, the training) of one process per GPU each
    assert sorted(p.read_text() for p in (tmp_path / "pids").iterdir()) == [
        "rank0", "rank0", "rank1", "rank1"]
    saved = checkpoints.for_run(conn, dp.id)
    assert [(c.step, c.name) for c in saved] == [(4, "truck-dp-step4.safetensors"),
                                                 (8, "truck-dp-step8.safetensors")]
    assert all(c.state == "local" for c in saved)
    assert all(c.metadata == {"format": "pt"} for c in saved)
    cfg = tomllib.loads(Path(dp.remote_dir, "diffusion_pipe.toml").read_text())
    assert (cfg["pipeline_stages"], cfg["max_steps"], cfg["model"]["type"]) == (2, 8, "wan")
    assert cfg["eval_datasets"] == [{"name": "eval", "config": cfg["dataset"].replace(
        "dataset.toml", "eval_dataset.toml")}]
    capsys.readouterr()
    assert main(["-w", str(ws.root), "train", "status"]) == 0
    table = capsys.readouterr().out
    assert "truck-musubi  musubi" in table and "truck-dp      diffusion-pipe" in table
    assert main(["-w", str(ws.root), "train", "status", "truck-dp", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)[0]
    assert [p[0] for p in status["eval_losses"]] == [0, 4, 8]
    assert [c["step"] for c in status["checkpoints"]] == [4, 8]


def test_a_two_gpu_pipeline_run_is_stopped_and_resumed_with_exact_points(
        ws, conn, server, truck, tmp_path, fault_report):
    version, pod, _config = truck
    two_gpus(server, tmp_path, dp_step_seconds=0.1)
    run = runs.create(conn, "dp-long", dp_version(ws, conn, server, version), pod.id,
                      dp_config(server, max_steps=30, save_every_n_steps=10,
                                eval_every_n_steps=5), trainer="diffusion-pipe")
    runs.start(conn, run.id)
    parent = stop_midway(ws, conn, run.id, 11, message="past a save")
    assert parent.state == "stopped", parent.error
    live = [int(p.name) for p in (tmp_path / "pids").iterdir() if alive(int(p.name))]
    assert live == []  # the launcher and both ranks
    steps = printed_steps(parent, trainers.get("diffusion-pipe").parser())
    stored = {s for s, _ in runs.loss_points(conn, parent.id)}
    fault_report("diffusion-pipe stop on 2 GPUs", counted="points printed vs stored",
                 expected=len(steps), observed=len(stored & steps))
    assert stored == steps
    two_gpus(server, tmp_path, dp_step_seconds=0.005)
    child = runs.resume(conn, "dp-long")
    run_jobs(ws, timeout=150)
    child = runs.get_by_id(conn, child.id)
    assert child.state == "succeeded", (child.error, child.log_tail)
    log = Path(child.remote_dir, "logs", "train.log").read_text()
    resumed_at = int(log.split("Resuming at epoch: ")[1].split("step: ")[1].split()[0])
    assert resumed_at >= 9  # from the parent's last state (each epoch of 2 steps)
    assert [s for s, _ in runs.loss_points(conn, child.id)] == list(range(resumed_at, 31))
    assert [s for s, _ in runs.chain_losses(conn, child.id)] == list(range(1, 31))
    evals = [s for s, _ in runs.chain_eval_points(conn, child.id)]
    assert evals == sorted(set(evals)) and evals[-1] == 30 and 0 in evals
    names = [c.name for c in checkpoints.for_run(conn, child.id)]
    assert names and all(n.startswith("dp-long-r1-step") and int(n[15:].split(".")[0])
                         >= resumed_at for n in names)  # the parent's LoRAs stay the parent's


def test_what_diffusion_pipe_would_refuse_is_refused_before_upload(ws, conn, server, truck,
                                                                  tmp_path):
    version, pod, _config = truck
    dp = dp_version(ws, conn, server, version)
    with pytest.raises(trainers.TrainConfigError, match="Block swapping only works with "
                                                        "pipeline_stages=1"):
        runs.create(conn, "bad1", dp, pod.id, dp_config(server, blocks_to_swap=10),
                    trainer="diffusion-pipe")
    with pytest.raises(trainers.TrainConfigError, match="model type 'wan3' is not implemented"):
        runs.create(conn, "bad2", dp, pod.id, dp_config(server, model_type="wan3"),
                    trainer="diffusion-pipe")
    server.configure_double(gpu_name="NVIDIA A100-SXM4-80GB", gpu_memory_mib=81920,
                            gpu_count=1)
    run = runs.create(conn, "one-gpu", dp, pod.id, dp_config(server), trainer="diffusion-pipe")
    runs.start(conn, run.id)
    run_jobs(ws, timeout=60)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "failed" and "pipeline_stages = 2 must divide the pod's 1 GPU" in run.error
    assert run.stage in (None, "upload")  # nothing uploaded
    assert pods.get_by_id(conn, pod.id).gpus[0].name == "NVIDIA A100-SXM4-80GB"


def test_an_event_file_is_read_from_where_the_last_read_stopped(tmp_path):
    """The copy of a growing TensorBoard file gains what the pod's gained; each read gives the
    new eval points only (a record cut at the end comes with the next read), not `train/`."""
    import time as clock

    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from lorad.training.trainers.diffusion_pipe import eval_losses

    writer = EventFileWriter(str(tmp_path / "pod"))

    def scalar(tag: str, value: float, step: int) -> None:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag,
                                                                       simple_value=value)])
        writer.add_event(event_pb2.Event(wall_time=clock.time(), step=step, summary=summary))
        writer.flush()

    scalar("eval/loss", 0.5, 0)
    scalar("train/loss", 0.9, 1)
    scalar("eval/loss", 0.25, 4)
    source = next((tmp_path / "pod").iterdir())
    copy = tmp_path / "copy"
    data = source.read_bytes()
    copy.write_bytes(data[:-3])  # the last record not all there yet
    assert [(e.step, e.loss) for e in eval_losses(copy)] == [(0, 0.5)]
    scalar("eval/loss", 0.125, 8)
    with copy.open("ab") as fh:
        fh.write(source.read_bytes()[len(data) - 3:])
    assert [(e.step, e.loss) for e in eval_losses(copy)] == [(4, 0.25), (8, 0.125)]
    assert eval_losses(copy) == []  # nothing new
