"""A trainer declared only as data: docs/trainers/stableavatar.toml, with nothing changed but its
paths, drives the StableAvatar double (tests/support/stableavatar_double: the real scripts'
arguments, layout and log) on the real sshd pod: export layout, pod-side preparation stages,
training on every GPU, exact loss points, .pt checkpoints pulled and verified, stop, resume."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import alive, printed_steps, run_jobs, stop_midway
from media_factory import ffprobe, make_image, make_video
from sshd import start_sshd

from lorad.captions import versions
from lorad.cli import main
from lorad.core import plugins
from lorad.datasets import export
from lorad.media import clips, datasets
from lorad.training import checkpoints, pods, runs, trainers
from lorad.training.trainers.command import declaration

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "trainers" / "stableavatar.toml"
DOUBLE = Path(__file__).parent / "support" / "stableavatar_double"
PROFILE = """
[training]
poll_seconds = 0.1
checkpoint_settle_seconds = 0

[profiles.stableavatar-512]
base = "wan22-14b-720p"
width = 512
height = 512
fps = 25
min_frames = 33
max_frames = 249
orientation = "fixed"
audio = true
format = "layout:stableavatar"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_sshd(tmp_path_factory.mktemp("pod")) as srv:
        checkout = srv.root / "StableAvatar"
        shutil.copytree(DOUBLE, checkout, ignore=shutil.ignore_patterns("__pycache__"))
        make_image(checkout / "examples" / "case-1" / "reference.png", size="512x512")
        make_wav(checkout / "examples" / "case-1" / "audio.wav", seconds=3.0)
        srv.checkout = checkout
        yield srv


def make_wav(path: Path, seconds: float) -> Path:
    """A 16-bit PCM WAV, as recorders write and StableAvatar's scripts read."""
    import subprocess

    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=220:duration={seconds}", "-c:a", "pcm_s16le", str(path)],
                   check=True)
    return path


def declare(ws, server, text: str | None = None) -> None:
    """The example as a user would use it: copied beside lorad.toml, only its paths changed."""
    folder = ws.root / "trainers"
    folder.mkdir(exist_ok=True)
    text = text if text is not None else EXAMPLE.read_text()
    (folder / "stableavatar.toml").write_text(text.replace("/workspace/StableAvatar",
                                                           str(server.checkout)))
    if "profiles.stableavatar-512" not in ws.config_path.read_text():
        ws.config_path.write_text(ws.config_path.read_text() + PROFILE)
    ws.config()


@pytest.fixture
def avatar(ws, conn, server, tmp_path):
    """A dataset of two real talking clips (sound kept), ingested and exported in the
    trainer's layout, and a pod with two 80 GB GPUs."""
    declare(ws, server)
    server.configure_double(gpu_name="NVIDIA A100-SXM4-80GB", gpu_memory_mib=81920, gpu_count=2,
                            sa_pids=str(tmp_path / "pids"))
    w = ["-w", str(ws.root)]
    assert main([*w, "dataset", "create", "avatar", "--profile", "stableavatar-512"]) == 0
    sources = [make_video(tmp_path / "src" / f"talk{n}.mp4", size="640x640", fps=30,
                          seconds=2.0, source=source)
               for n, source in enumerate(("testsrc2", "smptebars"))]
    assert main([*w, "clips", "add", "avatar", *map(str, sources)]) == 0
    run_jobs(ws, timeout=120)
    d = datasets.get(conn, "avatar")
    made = clips.list_clips(conn, d.id)
    assert [c.state for c in made] == ["ready", "ready"], [c.error for c in made]
    clips.set_review(conn, [c.id for c in made], "approved")
    for c in made:
        versions.set_caption(conn, c.id, "a person talking to the camera")
    remote = server.root / "datasets" / tmp_path.name  # each test's own, on the shared pod
    p = export.plan(conn, datasets.get(conn, "avatar"), _profile(ws),
                    export.Options(remote_root=str(remote)))
    folder = export.write(p, export.export_dir(ws.root, p))
    version = export.record(conn, p, folder)
    pod = pods.add(conn, "a100x2", host=server.host, port=server.port, user=server.user,
                   key_file=str(server.key_file), remote_dir=str(server.root / "lorad"),
                   cost_per_hour=2.0)
    return version, pod, folder, remote


def _profile(ws):
    from lorad.media import profiles

    return profiles.get("stableavatar-512", ws.config())


def test_the_example_is_listed_with_its_file(ws, server, capsys):
    declare(ws, server)
    assert main(["-w", str(ws.root), "trainers", "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    sa = listed["stableavatar"]
    assert sa["kind"] == "declared" and listed["musubi"]["kind"] == "built-in"
    assert sa["declared_in"].startswith(str(ws.root / "trainers" / "stableavatar.toml"))
    assert sa["stages"] == ["frames", "audio", "vocals", "lip_masks", "face_masks", "train"]
    assert sa["gpu_memory_gb"] == 40 and sa["resume"] and sa["layout"] and sa["inference"]


BAD = [
    # (what to change in the example, the key named, words of the message)
    ("--seed={seed}", "--seed={sed}", "stages.command", "unknown placeholder {sed}"),
    ("step_loss=(?P<loss>", "step_loss=(?P<los>", "progress", "needs the named group(s) loss"),
    ("step_loss=(?P<loss>", "step_loss=((?P<loss>", "progress", "not a valid regular expression"),
    ('samples = "{output}/sample"', 'sample = "{output}/sample"', "sample", "unknown key"),
    ('steps = "continue"', 'steps = "again"', "resume.steps", "continue"),
    ("gpus = \"all\"", "gpus = 0", "gpus", "'all' or a number of GPUs"),
    ('media = "square/speech/{index}/sub_clip.mp4"', 'media = "square/{clip}/sub_clip.mp4"',
     "layout.media", "unknown placeholder {clip}"),
    ("--output_dir={out}", "--output_dir={out!r}", "inference.command",
     "may not have a conversion"),
    ('output = "video.mp4"', 'output = "video.mp4; rm -rf ~"', "inference.output",
     "letters, digits"),
]


@pytest.mark.parametrize(("old", "new", "key", "said"), BAD,
                         ids=[b[2] + "-" + b[3].split()[0] for b in BAD])
def test_a_bad_declaration_names_the_file_line_and_key(ws, server, capsys, old, new, key, said):
    text = EXAMPLE.read_text()
    assert old in text
    declare(ws, server, text.replace(old, new, 1))
    path = ws.root / "trainers" / "stableavatar.toml"
    rows = path.read_text().splitlines()
    changed = next(n for n, row in enumerate(rows) if new in row)
    last = key.rsplit(".", 1)[-1]
    line = 1 + next(n for n in range(changed, -1, -1)  # the key's line (a string may go on)
                    if rows[n].lstrip().startswith(f"{last} =")
                    or rows[n].lstrip().startswith(f"{last}="))
    assert main(["-w", str(ws.root), "trainers"]) == 1
    out = capsys.readouterr().out
    assert f"{path}:{line}: trainers.stableavatar.{key}: " in out, out
    assert said in out
    assert "musubi" in out  # the others are still there
    with pytest.raises(plugins.PluginError, match=said.replace("(", r"\(").replace(")", r"\)")
                       .replace("{", r"\{").replace("}", r"\}")):
        trainers.get("stableavatar")


def test_a_declaration_may_not_take_a_built_in_name(ws, server):
    text = EXAMPLE.read_text().replace("/workspace/StableAvatar", str(server.checkout))
    source = declaration.source_of(Path("musubi.toml"), "musubi", __import__("tomllib")
                                   .loads(text), text)
    with pytest.raises(declaration.DeclarationError, match="built-in trainer's name"):
        declaration.parse(source, {"musubi"})


def test_export_writes_the_trainers_layout_with_the_clips_sound(ws, conn, server, avatar):
    version, _pod, folder, remote = avatar
    listed = (folder / "video_square_path.txt").read_text().splitlines()
    assert listed == [f"{remote}/square/speech/00001", f"{remote}/square/speech/00002"]
    for n in (1, 2):
        clip = folder / "square" / "speech" / f"{n:05d}" / "sub_clip.mp4"
        facts = ffprobe(clip)
        assert (facts["width"], facts["height"]) == (512, 512)
        streams = json.loads(__import__("subprocess").run(
            ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(clip)],
            capture_output=True, text=True, check=True).stdout)["streams"]
        assert [s["codec_type"] for s in streams] == ["video", "audio"]


def test_one_resolution_per_dataset_unless_the_trainer_buckets(ws, conn, server, avatar):
    from lorad.datasets import preflight

    d = datasets.get(conn, "avatar")
    first = clips.list_clips(conn, d.id)[0]
    clips.update(conn, first.id, width=480, height=832)
    report = preflight.check(conn, d, _profile(ws))
    said = [f.message for f in report.errors]
    assert any("2 resolutions (480x832 (1 clip), 512x512 (1 clip))" in m
               and "stableavatar trains one resolution per dataset" in m for m in said), said


def test_a_declared_trainer_runs_end_to_end_on_every_gpu(ws, conn, server, avatar, tmp_path):
    version, pod, _folder, _remote = avatar
    w = ["-w", str(ws.root)]
    assert main([*w, "pod", "check", "a100x2", "--trainer", "stableavatar"]) == 0
    assert main([*w, "train", "start", "sa-1", "--dataset", "avatar", "--pod", "a100x2",
                 "--trainer", "stableavatar", "--set", "max_train_steps=12", "--set",
                 "checkpointing_steps=5", "--set", "validation_steps=6"]) == 0
    run_jobs(ws, timeout=180)
    run = runs.get(conn, "sa-1")
    assert (run.state, run.stage) == ("succeeded", "done"), (run.error, run.log_tail)
    # the preparation stages ran on the pod, in the dataset's folders
    clip = avatar[3] / "square" / "speech" / "00001"
    assert (clip / "images" / "frame_0.png").is_file() and (clip / "lip_masks").is_dir()
    audio = json.loads(__import__("subprocess").run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(clip / "audio_full.wav")],
        capture_output=True, text=True, check=True).stdout)["streams"][0]
    assert (audio["sample_rate"], audio["channels"]) == ("16000", 1)
    assert (clip / "audio.wav").read_bytes() == (clip / "vocal.wav").read_bytes()
    # one point per step, as printed by tqdm through both GPUs' launcher
    assert [s for s, _ in runs.loss_points(conn, run.id)] == list(range(1, 13))
    assert runs.loss_points(conn, run.id)[-1][1] == pytest.approx(0.5 / 12 ** 0.5, rel=1e-2)
    roles = sorted(p.read_text() for p in (tmp_path / "pids").iterdir())
    assert roles == ["rank0", "rank1"]  # accelerate launched one process per GPU
    # the transformer .pt of each save, pulled and identical to the pod's
    saved = checkpoints.for_run(conn, run.id)
    assert [(c.step, c.name) for c in saved] == [
        (5, "checkpoint-5-transformer3d-checkpoint-5.pt"),
        (10, "checkpoint-10-transformer3d-checkpoint-10.pt"),
        (12, "checkpoint-12-transformer3d-checkpoint-12.pt")]
    for c in saved:
        assert c.state == "local"
        assert c.sha256 == hashlib.sha256(Path(c.local_path).read_bytes()).hexdigest()
        assert Path(c.local_path).read_bytes() == Path(c.remote_path).read_bytes()
    assert (ws.downloads_dir() / "sa-1" / "sample" / "sample-6.mp4").is_file()
    assert "stableavatar" in json.dumps(run.manifest)
    assert runs.cost(conn, run).spent > 0


def test_a_declared_trainer_is_stopped_and_resumed_with_exact_points(ws, conn, server, avatar,
                                                                    tmp_path, fault_report):
    version, pod, _folder, _remote = avatar
    server.configure_double(gpu_name="NVIDIA A100-SXM4-80GB", gpu_memory_mib=81920,
                            gpu_count=2, sa_pids=str(tmp_path / "pids"), sa_step_seconds=0.08)
    run = runs.create(conn, "sa-stop", version, pod.id, {"max_train_steps": 40,
                                                         "checkpointing_steps": 8,
                                                         "validation_steps": 1000},
                      trainer="stableavatar")
    runs.start(conn, run.id)
    parent = stop_midway(ws, conn, run.id, 18, message="two states saved")
    assert parent.state == "stopped", parent.error
    live = [int(p.name) for p in (tmp_path / "pids").iterdir() if alive(int(p.name))]
    assert live == []  # both ranks stopped, not only the launcher
    steps = printed_steps(parent, trainers.get("stableavatar").parser())
    stored = {s for s, _ in runs.loss_points(conn, parent.id)}
    fault_report("command trainer stop mid-run", counted="points printed vs stored",
                 expected=len(steps), observed=len(stored & steps))
    assert stored == steps
    server.configure_double(gpu_name="NVIDIA A100-SXM4-80GB", gpu_memory_mib=81920,
                            gpu_count=2, sa_step_seconds=0.005)
    child = runs.resume(conn, "sa-stop")
    run_jobs(ws, timeout=150)
    child = runs.get_by_id(conn, child.id)
    assert child.state == "succeeded", (child.error, child.log_tail)
    state = child.resume_from
    saved_step = int(state.rsplit("-", 1)[1])
    assert saved_step >= 16 and saved_step % 8 == 0
    # StableAvatar counts on from the state's step: the child's points are the steps after it
    assert [s for s, _ in runs.loss_points(conn, child.id)] == list(range(saved_step + 1, 41))
    assert [s for s, _ in runs.chain_losses(conn, child.id)] == list(range(1, 41))
    log = Path(child.remote_dir, "logs", "train.log").read_text()
    assert f"Resuming from checkpoint checkpoint-{saved_step}" in log
    assert Path(child.remote_dir, "output", f"checkpoint-{saved_step}").is_symlink()
    names = [c.name for c in checkpoints.for_run(conn, child.id)]
    assert f"checkpoint-{saved_step + 8}-transformer3d-checkpoint-{saved_step + 8}.pt" in names
    assert f"checkpoint-{saved_step}-transformer3d-checkpoint-{saved_step}.pt" not in names


def test_a_pod_with_too_little_gpu_memory_is_refused_before_upload(ws, conn, server, avatar):
    version, pod, _folder, _remote = avatar
    server.configure_double(gpu_name="NVIDIA GeForce RTX 4090", gpu_memory_mib=24564)
    run = runs.create(conn, "sa-small", version, pod.id, {}, trainer="stableavatar")
    runs.start(conn, run.id)
    run_jobs(ws, timeout=60)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "failed"
    assert "StableAvatar" in run.error and "needs 40 GB of free GPU memory" in run.error
    assert "A100" in run.error or "H100" in run.error  # the pod types that would fit
    assert not (avatar[3] / "video_square_path.txt").exists()


def test_a_failing_step_says_why_from_the_declared_patterns(ws, conn, server, avatar):
    version, pod, _folder, _remote = avatar
    server.configure_double(gpu_name="NVIDIA A100-SXM4-80GB", gpu_memory_mib=81920,
                            sa_fail_at=3)
    run = runs.create(conn, "sa-oom", version, pod.id, {"max_train_steps": 10},
                      trainer="stableavatar")
    runs.start(conn, run.id)
    run_jobs(ws, timeout=120)
    run = runs.get_by_id(conn, run.id)
    assert run.state == "failed"
    assert "training failed: CUDA out of memory" in run.error
    assert [s for s, _ in runs.loss_points(conn, run.id)] == [1, 2]



def test_checkpoints_are_evaluated_on_the_pod_rated_and_ranked(ws, conn, server, avatar,
                                                               capsys):
    """The example's inference command (StableAvatar's inference.py and the README's ffmpeg
    mux) with a scorer appended: outputs come down checked, the pod time is their cost, the
    scores are kept per checkpoint and rank them."""
    version, pod, _folder, _remote = avatar
    text = EXAMPLE.read_text()
    mux = "-shortest {out}/video.mp4'''"
    assert mux in text
    declare(ws, server, text.replace(mux, "-shortest {out}/video.mp4 && python score_sync.py "
                                          "{out}/video.mp4'''"))
    w = ["-w", str(ws.root)]
    assert main([*w, "train", "start", "sa-eval", "--dataset", "avatar", "--pod", "a100x2",
                 "--trainer", "stableavatar", "--set", "max_train_steps=6", "--set",
                 "checkpointing_steps=3", "--set", "validation_steps=100"]) == 0
    run_jobs(ws, timeout=150)
    assert runs.get(conn, "sa-eval").state == "succeeded"
    face = server.checkout / "examples" / "case-1" / "reference.png"
    short = make_wav(ws.root / "line-short.wav", seconds=1.0)
    long = make_wav(ws.root / "line-long.wav", seconds=2.0)
    capsys.readouterr()
    for ref, line in (("sa-eval:step3", short), ("sa-eval:step6", long)):
        assert main([*w, "gen", "--service", "pod", "--checkpoint", ref, "--seed", "7",
                     "--param", f"reference={face}", "--param", f"audio={line}",
                     "--param", "sample_steps=4", "a person talking"]) == 0
    said = capsys.readouterr().out
    assert "about $0.11" in said  # 200 s at $2/h, shown before it runs
    run_jobs(ws, timeout=150)
    from lorad.generation import generations, ratings

    made = [g for g in generations.list_all(conn) if g.service == "pod"]
    assert [g.status for g in made] == ["completed", "completed"], [g.error for g in made]
    for g, seconds in zip(made, (1.0, 2.0), strict=True):
        facts = ffprobe(Path(g.output_path))
        assert facts["width"] == 512 and abs(facts["frames"] - 25 * seconds) <= 1
        assert g.checks.get("usable", True), g.checks
        assert g.metrics == pytest.approx({"sync_confidence": 5 + seconds,
                                           "sync_distance": 9 - seconds}, abs=0.1)
        assert g.checkpoint_id is not None and g.cost is not None
        assert g.cost == pytest.approx(g.inference_time / 3600 * 2.0, abs=1e-6)
    # the checkpoint was used where its run left it: nothing but the two inputs was sent
    sent = sorted(p.name.split("-", 1)[1] for p in (server.root / "lorad" / "eval" / "inputs")
                  .iterdir())
    assert sent == ["line-long.wav", "line-short.wav", "reference.png"]
    booked = conn.execute("SELECT COUNT(*) FROM cost_entries WHERE kind = 'generation'"
                          ).fetchone()[0]
    assert booked == sum(1 for g in made if g.cost)  # an SSH host: its time is not booked else
    assert pods.get(conn, "a100x2").holds == {}  # released: its idle stop may go ahead
    ratings.rate(conn, made[0].id, stars=5)
    ranked = ratings.rank_checkpoints(conn, runs.get(conn, "sa-eval").id)
    assert {r.name: r.metrics["sync_confidence"] for r in ranked} == pytest.approx(
        {"checkpoint-3-transformer3d-checkpoint-3.pt": 6.0,
         "checkpoint-6-transformer3d-checkpoint-6.pt": 7.0}, abs=0.1)
    by_sync = ratings.rank_checkpoints(conn, runs.get(conn, "sa-eval").id,
                                       by="sync_confidence")
    assert by_sync[0].name.startswith("checkpoint-6-")
    by_distance = ratings.rank_checkpoints(conn, runs.get(conn, "sa-eval").id,
                                           by="-sync_distance")
    assert by_distance[0].name.startswith("checkpoint-6-")
    assert main([*w, "rate", "rank", "--by", "sync_confidence", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["checkpoints"]
    assert listed[0]["name"].startswith("checkpoint-6-") and "sync_confidence" in listed[0][
        "metrics"]


@pytest.mark.parametrize("size", [(80, 24)], ids=["80x24"])
async def test_a_checkpoint_is_sent_to_the_pod_from_the_training_screen(ws, conn, server,
                                                                      tmp_path, size):
    """E on the Training screen: the run's trainer's inference parameters as fields, the
    price on screen before ctrl+s, then one queued request per seed with the checkpoint."""
    from helpers import pilot_until as until
    from test_tui_forms import screen_text
    from weights import write_dit

    from lorad.generation import generations
    from tui.app import LoradApp
    from tui.forms.base import FormScreen
    from tui.forms.evaluate import EvaluateForm
    from tui.screens.training import TrainingScreen

    declare(ws, server)
    d = datasets.create(conn, "faces", "stableavatar-512", config=ws.config())
    conn.execute("INSERT INTO dataset_versions (dataset_id, content_hash, manifest, created_at)"
                 " VALUES (?, 'h', '{\"format\": \"layout:stableavatar\"}', 0)", (d.id,))
    pod = pods.add(conn, "box", host="127.0.0.1", cost_per_hour=3.6)
    run = runs.create(conn, "faces-1", 1, pod.id, {}, trainer="stableavatar")
    local = tmp_path / "t.safetensors"
    write_dit(local, "BF16")
    ckpt = checkpoints.record(conn, run.id, "/pod/out/checkpoint-4/t.pt", step=4,
                              name="checkpoint-4-t.pt")
    checkpoints.mark_pulled(conn, ckpt, local, "ab" * 32, {}, step=4, epoch=None)
    face = make_image(tmp_path / "face.png", size="64x64")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen)
                    and app.screen.data is not None, message="the training screen")
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EvaluateForm)
                    and app.screen.data is not None, message="the form")
        form = app.screen
        form.query_one("#ev-param-reference").value = str(face)  # as pasted
        form.query_one("#ev-param-audio").value = str(face)  # the command decides what it takes
        form.query_one("#ev-seeds").focus()
        await pilot.press("backspace", "2")
        await until(pilot, lambda: "2 evaluation(s) on pod box, about $0.40" in screen_text(app),
                    message="the price on screen")  # 200 s at $3.60/h, twice
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="sent")
    made = [g for g in generations.list_all(conn) if g.service == "pod"]
    assert len(made) == 2 and {g.checkpoint_id for g in made} == {ckpt}
    assert made[0].params["reference"] == "file://" + str(face)
    assert made[0].params["checkpoint_remote"] == "/pod/out/checkpoint-4/t.pt"


def test_a_trainer_declared_in_lorad_toml_is_checked_with_its_lines(ws, capsys):
    """The same keys as a table of lorad.toml: a mistake names lorad.toml and the line."""
    ws.config_path.write_text(ws.config_path.read_text() + '''
[trainers.echo-script]
title = "a script"
workdir = "/w"
progress = 'step (?P<step>\\d+)/(?P<total>\\d+) loss (?P<loss>\\S+)'
checkpoints = "*.safetensors"

[trainers.echo-script.options]
steps = 10

[[trainers.echo-script.stages]]
name = "train"
command = "python train.py --steps {steps} --out {output}"

[[trainers.echo-script.stages]]
name = "after"
command = "echo {stepz}"
''')
    assert main(["-w", str(ws.root), "trainers"]) == 1
    out = capsys.readouterr().out
    line = ws.config_path.read_text().splitlines().index('command = "echo {stepz}"') + 1
    assert f"{ws.config_path}:{line}: trainers.echo-script.stages.command: unknown " \
           "placeholder {stepz}" in out
    ws.config_path.write_text(ws.config_path.read_text().replace("{stepz}", "{steps}"))
    assert main(["-w", str(ws.root), "trainers", "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    impl = trainers.get("echo-script")
    stages = impl.stages(impl.load_config({"steps": 3}), trainers.RunPaths(
        "/d", "/r", "/r/o b", "/r/l", "n"))
    assert stages[0].command == "python train.py --steps 3 --out '/r/o b'"
    header = ws.config_path.read_text().splitlines().index("[trainers.echo-script]") + 1
    assert listed["echo-script"]["declared_in"] == f"{ws.config_path}:{header}"
    with pytest.raises(trainers.TrainConfigError, match="unknown option 'step'"):
        impl.load_config({"step": 3})
    with pytest.raises(trainers.TrainConfigError, match="steps must be a whole number"):
        impl.load_config({"steps": "3; rm -rf /"})


def test_a_sweep_runs_checkpoints_by_seeds_on_the_pod(ws, conn, server, avatar, capsys):
    version, pod, _folder, _remote = avatar
    w = ["-w", str(ws.root)]
    assert main([*w, "train", "start", "sa-sweep", "--dataset", "avatar", "--pod", "a100x2",
                 "--trainer", "stableavatar", "--set", "max_train_steps=4", "--set",
                 "checkpointing_steps=2", "--set", "validation_steps=100"]) == 0
    run_jobs(ws, timeout=150)
    face = server.checkout / "examples" / "case-1" / "reference.png"
    line = make_wav(ws.root / "line.wav", seconds=1.0)
    sweep = [*w, "sweep", "--service", "pod", "--checkpoint", "sa-sweep:step2", "--checkpoint",
             "sa-sweep:step4", "--seed", "1", "--seed", "2", "--prompt", "a person talking",
             "--param", f"reference={face}", "--param", f"audio={line}", "--param",
             "sample_steps=4"]
    capsys.readouterr()
    assert main(sweep) == 0
    said = capsys.readouterr().out
    assert "2 checkpoint(s) x 1 prompt(s) x 2 seed(s) = 4 runs on a pod, about $0.44" in said
    assert main([*sweep, "--yes"]) == 0
    run_jobs(ws, timeout=150)
    from lorad.generation import generations

    made = [g for g in generations.list_all(conn) if g.sweep_id]
    assert sorted((g.checkpoint_id, g.seed, g.status) for g in made) == sorted(
        (c.id, seed, "completed") for c in checkpoints.for_run(conn, runs.get(conn,
                                                                               "sa-sweep").id)
        for seed in (1, 2))
