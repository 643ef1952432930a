"""The loopback sshd (tests/support/sshd.py) and the musubi-tuner double behind it."""

from __future__ import annotations

import base64
import json
import math
import re
import shlex
import struct
import subprocess
import zlib
from pathlib import Path

import paramiko
import pytest
import sshd
from helpers import wait_for
from weights import write_dit

sshd_server = sshd.sshd_server  # fixtures (module-scoped server; sshd_pod resets the double per test)
sshd_pod = sshd.sshd_pod

# the reference's progress regex (shared/reference/musubi-tuner.md §3.3)
PROGRESS = re.compile(
    r"steps:\s*(\d+)%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([\d:]+)<([\d:?]+),\s*([\d.?]+)\s*(s/it|it/s)"
    r"(?:,\s*avr_loss=([^,\]]+))?")
TRAIN = "src/musubi_tuner/wan_train_network.py"


# ------------------------------------------------------------------------------ helpers
def run(client: paramiko.SSHClient, command: str, timeout: float = 60, **kw) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=timeout, **kw)
    out = stdout.read().decode()
    err = stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def png(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x40" * (width * 3) for _ in range(height))
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_job(server, name: str, images: int = 3, extra_toml: str = "") -> Path:
    """A job dir on the 'pod': images with captions, a dataset TOML, stand-in model files."""
    job = server.root / name
    (job / "img").mkdir(parents=True)
    (job / "models").mkdir()
    for i in range(images):
        png(job / "img" / f"clip_{i}.png", 64 + 16 * i, 48)
        (job / "img" / f"clip_{i}.txt").write_text(f"sks person number {i}\n")
    for model in ("wan_2.1_vae.safetensors", "models_t5_umt5-xxl-enc-bf16.pth"):
        (job / "models" / model).write_bytes(b"stand-in")
    write_dit(job / "models" / "wan2.1_t2v_1.3B_bf16.safetensors", "BF16",
              key="model.diffusion_model.blocks.0.cross_attn.k.weight")  # 1.3B key
    (job / "dataset.toml").write_text(f"""
[general]
resolution = [256, 256]
caption_extension = ".txt"
batch_size = 1
enable_bucket = true

[[datasets]]
image_directory = "{job / 'img'}"
cache_directory = "{job / 'cache'}"
num_repeats = 1
{extra_toml}""")
    return job


def cache_commands(job: Path) -> str:
    m = job / "models"
    return (f"python src/musubi_tuner/wan_cache_latents.py --dataset_config {job}/dataset.toml "
            f"--vae {m}/wan_2.1_vae.safetensors && "
            f"python src/musubi_tuner/wan_cache_text_encoder_outputs.py --dataset_config {job}/dataset.toml "
            f"--t5 {m}/models_t5_umt5-xxl-enc-bf16.pth --batch_size 16")


def train_command(job: Path, *extra: str, epochs: int = 2) -> str:
    m = job / "models"
    args = ["accelerate", "launch", "--num_cpu_threads_per_process", "1", "--mixed_precision", "bf16", TRAIN,
            "--task", "t2v-1.3B", "--dit", f"{m}/wan2.1_t2v_1.3B_bf16.safetensors",
            "--dataset_config", f"{job}/dataset.toml", "--sdpa", "--mixed_precision", "bf16",
            "--optimizer_type", "adamw8bit", "--learning_rate", "2e-4", "--gradient_checkpointing",
            "--max_data_loader_n_workers", "2", "--persistent_data_loader_workers",
            "--network_module", "networks.lora_wan", "--network_dim", "8", "--network_alpha", "4",
            "--timestep_sampling", "shift", "--discrete_flow_shift", "3.0",
            "--max_train_epochs", str(epochs), "--save_every_n_epochs", "1", "--seed", "42",
            "--output_dir", f"{job}/output", "--output_name", "mylora", *extra]
    return shlex.join(args)


def detached(server, job: Path, command: str) -> str:
    """How a driver starts a long job (services.md §5.2a): setsid nohup, all streams redirected,
    exit code to a sentinel file; prints the pid."""
    inner = f"cd {server.musubi_dir} && {command}; echo $? > {job}/exit_code"
    return (f"setsid nohup bash -c {shlex.quote(inner)} > {job}/train.log 2>&1 < /dev/null & echo $!")


def safetensors_header(path: Path) -> tuple[dict, int]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = len(data) - 8 - n
    sizes = {"F32": 4, "F16": 2, "BF16": 2}
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, stop = t["data_offsets"]
        assert stop - start == sizes[t["dtype"]] * math.prod(t["shape"]), name
        end = max(end, stop)
    assert end == body
    try:  # the real reader, when the venv has it
        from safetensors import safe_open
    except ImportError:
        pass
    else:
        with safe_open(str(path), "numpy") as f:
            assert f.metadata() == header["__metadata__"]
    return header, body


def bars(log: str) -> list[tuple[int, int, str | None]]:
    return [(int(m.group(2)), int(m.group(3)), m.group(8)) for m in PROGRESS.finditer(log)]


@pytest.fixture
def client(sshd_server):
    c = sshd_server.client()
    yield c
    c.close()


# ---------------------------------------------------------------------------------- sshd
def test_paramiko_connects_and_pins_host_key(sshd_server, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(sshd_server.known_hosts_line + "\n")
    c = paramiko.SSHClient()
    c.load_host_keys(str(known))
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect(sshd_server.host, port=sshd_server.port, username=sshd_server.user,
              key_filename=str(sshd_server.key_file), allow_agent=False, look_for_keys=False, timeout=10)
    try:
        assert run(c, "echo ok") == (0, "ok\n", "")
        key = c.get_transport().get_remote_server_key()
        assert f"{key.get_name()} {key.get_base64()}" == sshd_server.host_key_line
        assert sshd_server.host_key_line.startswith("ssh-ed25519 AAAA")
    finally:
        c.close()
    stranger = paramiko.SSHClient()  # no pinned key: RejectPolicy refuses the server
    stranger.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        stranger.connect(sshd_server.host, port=sshd_server.port, username=sshd_server.user,
                         key_filename=str(sshd_server.key_file), allow_agent=False, look_for_keys=False,
                         timeout=10)
    stranger.close()


def test_remote_environment(client, sshd_server):
    code, out, _ = run(client, "echo $PATH; echo $HOME; command -v python accelerate nvidia-smi; "
                               "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; "
                               "cd " + str(sshd_server.musubi_dir) + " && ls src/musubi_tuner")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith(f"{sshd_server.bin_dir}:")
    assert lines[1] == str(sshd_server.home)
    assert lines[2:5] == [str(sshd_server.bin_dir / t) for t in ("python", "accelerate", "nvidia-smi")]
    assert lines[5] == "NVIDIA GeForce RTX 4090, 24564 MiB"
    scripts = {"wan_cache_latents.py", "wan_cache_text_encoder_outputs.py", "wan_train_network.py"}
    assert scripts <= set(lines[6:])
    # the double's switches can come with the command (AcceptEnv MUSUBI_DOUBLE_*)
    assert run(client, "echo $MUSUBI_DOUBLE_MODE", environment={"MUSUBI_DOUBLE_MODE": "oom"})[1] == "oom\n"
    # and SFTP works
    sftp = client.open_sftp()
    assert "musubi-tuner" in sftp.listdir(str(sshd_server.root))
    sftp.close()


def test_drop_connections_breaks_live_session_but_server_stays(sshd_server):
    c = sshd_server.client()
    stdin, stdout, _ = c.exec_command("cat")  # a live session: echoes until the connection dies
    stdin.write("ping\n")
    stdin.flush()
    assert stdout.readline() == "ping\n"
    assert sshd_server.drop_connections() >= 1
    wait_for(lambda: not c.get_transport().is_active(), timeout=10, message="the session to break")
    with pytest.raises(paramiko.SSHException):
        c.exec_command("echo again")
    c.close()
    fresh = sshd_server.client()
    assert run(fresh, "echo ok")[1] == "ok\n"
    fresh.close()


def test_detached_job_survives_dropped_connection(sshd_pod):
    server = sshd_pod
    job = make_job(server, "survivor", images=2)
    c = server.client()
    assert run(c, f"cd {server.musubi_dir} && {cache_commands(job)}")[0] == 0
    server.configure_double(step_seconds=0.1)
    code, out, _ = run(c, detached(server, job, train_command(job, epochs=3)))
    assert code == 0 and out.strip().isdigit()
    wait_for(lambda: "epoch 1/3" in (job / "train.log").read_text(), message="training to start")
    server.drop_connections()
    assert not (job / "exit_code").exists()
    wait_for(lambda: (job / "exit_code").exists(), timeout=30, message="the detached job to finish")
    assert (job / "exit_code").read_text().strip() == "0"
    assert (job / "train.log").read_text().rstrip().endswith("model saved.")


# -------------------------------------------------------------------------- the double
def test_training_through_ssh_writes_log_and_checkpoints(sshd_pod):
    server = sshd_pod
    job = make_job(server, "full")
    c = server.client()
    code, out, err = run(c, f"cd {server.musubi_dir} && {cache_commands(job)}")
    assert code == 0, err
    cache = sorted(p.name for p in (job / "cache").iterdir())
    assert cache == ["clip_0_0064x0048_wan.safetensors", "clip_0_wan_te.safetensors",
                     "clip_1_0080x0048_wan.safetensors", "clip_1_wan_te.safetensors",
                     "clip_2_0096x0048_wan.safetensors", "clip_2_wan_te.safetensors"]
    assert "INFO:musubi_tuner.cache_latents:Encoding dataset [0]" in err

    train = train_command(job, "--save_every_n_steps", "2", "--save_state")
    code, out, _ = run(c, detached(server, job, train))
    assert code == 0
    wait_for(lambda: (job / "exit_code").exists(), timeout=30, message="training to finish")
    assert (job / "exit_code").read_text().strip() == "0"
    log = (job / "train.log").read_text()
    lines = re.split(r"[\r\n]", log)
    for expected in ["accelerator device: cuda", "import network module: networks.lora_wan",
                     "prepare optimizer, data loader etc.",
                     "override steps. steps for 2 epochs is / 指定エポックまでのステップ数: 6",
                     "running training / 学習開始", "  num train items / 学習画像、動画数: 3",
                     "  num batches per epoch / 1epochのバッチ数: 3", "  num epochs / epoch数: 2",
                     "  batch size per device / バッチサイズ: 1",
                     "  gradient accumulation steps / 勾配を合計するステップ数 = 1",
                     "  total optimization steps / 学習ステップ数: 6", "epoch 1/2", "epoch 2/2",
                     "INFO:musubi_tuner.utils.train_utils:saving state at step 2",
                     "INFO:musubi_tuner.utils.train_utils:saving last state."]:
        assert expected in lines, expected
    out_dir = job / "output"
    saves = [m.group(1) for m in re.finditer(r"^saving checkpoint: (.+\.safetensors)$", log, re.M)]
    assert saves == [f"{out_dir}/{name}.safetensors" for name in (
        "mylora-step00000002", "mylora-000001", "mylora-step00000004", "mylora-step00000006", "mylora")]
    assert log.rstrip().endswith("INFO:musubi_tuner.training.trainer_base:model saved.")
    assert "steps:   0%|          | 0/6 [00:00<?, ?it/s]" in log
    progress = bars(log)
    steps = [s for s, total, _ in progress if total == 6]
    assert steps[:2] == [0, 0] and steps[-1] == 6 and sorted(steps) == steps
    assert all(steps.count(n) >= 2 for n in range(1, 7))  # each step printed by update and set_postfix
    losses = [float(loss) for _, _, loss in progress if loss]
    assert losses[-1] < losses[0]
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "mylora-000001-state", "mylora-000001.safetensors", "mylora-state", "mylora-step00000002-state",
        "mylora-step00000002.safetensors", "mylora-step00000004-state", "mylora-step00000004.safetensors",
        "mylora-step00000006-state", "mylora-step00000006.safetensors", "mylora.safetensors"]
    header, _ = safetensors_header(out_dir / "mylora.safetensors")
    meta = header["__metadata__"]
    assert meta["ss_network_module"] == "networks.lora_wan" and meta["ss_base_model_version"] == "wan"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("8", "4.0")
    assert meta["ss_output_name"] == meta["modelspec.title"] == "mylora"
    assert (meta["ss_steps"], meta["ss_epoch"], meta["ss_seed"]) == ("6", "2", "42")
    assert meta["modelspec.architecture"] == "wan2.1/lora"
    assert all(isinstance(v, str) for v in meta.values())
    assert header["lora_unet_blocks_0_self_attn_q.lora_down.weight"]["shape"][0] == 8
    step_meta = safetensors_header(out_dir / "mylora-step00000004.safetensors")[0]["__metadata__"]
    assert (step_meta["ss_steps"], step_meta["ss_epoch"]) == ("4", "1")  # 0-based loop index
    assert {p.name for p in (out_dir / "mylora-state").iterdir()} >= {"model.safetensors", "optimizer.bin"}
    assert [i["script"] for i in server.invocations()][-4:] == [
        "wan_cache_latents", "wan_cache_text_encoder_outputs", "accelerate", "wan_train_network"]

    # --resume restarts the counters (reference §7) but the loss goes on from the saved state
    code, _, _ = run(c, f"rm {job}/exit_code; " + detached(
        server, job, train_command(job, "--resume", f"{out_dir}/mylora-state", "--output_name", "resumed")))
    wait_for(lambda: (job / "exit_code").exists(), timeout=30, message="resumed training to finish")
    resumed = (job / "train.log").read_text()
    assert ("INFO:musubi_tuner.training.trainer_base:resume training from local state: "
            f"{out_dir}/mylora-state") in resumed
    assert "epoch 1/2" in resumed and "| 1/6 [" in resumed
    assert float(bars(resumed)[-1][2]) < losses[0]


def test_unknown_argument_is_refused(client, sshd_pod):
    job = make_job(sshd_pod, "unknown", images=1)
    cd = f"cd {sshd_pod.musubi_dir} && "
    code, _, err = run(client, cd + f"python {TRAIN} --dataset_config {job}/dataset.toml --bogus_flag 1")
    assert code == 2
    assert "wan_train_network.py: error: unrecognized arguments: --bogus_flag 1" in err
    code, _, err = run(client, cd + "python src/musubi_tuner/wan_cache_text_encoder_outputs.py "
                                    f"--dataset_config {job}/dataset.toml")
    assert code == 2 and "error: the following arguments are required: --t5" in err
    code, _, err = run(client, cd + train_command(job, "--timestep_boundary", "0.9"))
    assert code == 1
    assert "error: argument --timestep_boundary: invalid int value: '0.9'" in err
    assert "returned non-zero exit status 2." in err  # accelerate re-raises the child's exit
    code, _, err = run(client, cd + f"accelerate launch --bogus {TRAIN}")
    assert code == 2 and "unrecognized arguments: --bogus" in err


def test_dataset_config_errors_use_musubi_text(client, sshd_pod, tmp_path):
    job = make_job(sshd_pod, "schema", images=1, extra_toml='frame_stride = 2\n')
    code, _, err = run(client, f"cd {sshd_pod.musubi_dir} && {cache_commands(job)}")
    assert code == 1
    assert ("ERROR:musubi_tuner.dataset.config_utils:Invalid user config / "
            "ユーザ設定の形式が正しくないようです") in err
    assert err.rstrip().endswith(
        "voluptuous.error.MultipleInvalid: extra keys not allowed @ data['datasets'][0]['frame_stride']")
    (job / "dataset.toml").write_text('[[datasets]]\nvideo_directory = "/v"\ncache_directory = "/c"\n'
                                      "source_fps = 30\n")
    err = run(client, f"cd {sshd_pod.musubi_dir} && {cache_commands(job)}")[2]
    assert "MultipleInvalid: expected float for dictionary value @ data['datasets'][0]['source_fps']" in err
    (job / "dataset.toml").write_text('[[datasets]]\nimage_directory = "C:\\data"\n')
    err = run(client, f"cd {sshd_pod.musubi_dir} && {cache_commands(job)}")[2]
    assert "Error on parsing TOML config file. Please check the format." in err
    # training without caches
    (job / "dataset.toml").write_text(f'[[datasets]]\nimage_directory = "{job}/img"\n'
                                      f'cache_directory = "{job}/empty"\ncaption_extension = ".txt"\n')
    code, _, err = run(client, f"cd {sshd_pod.musubi_dir} && {train_command(job)}")
    assert code == 1 and "ValueError: No training items found in the dataset." in err


@pytest.mark.parametrize("mode", ["oom", "nan", "crash"])
def test_failure_modes(client, sshd_pod, mode):
    job = make_job(sshd_pod, f"mode-{mode}", images=3)  # 3 steps an epoch: step 3 is mid-run
    assert run(client, f"cd {sshd_pod.musubi_dir} && {cache_commands(job)}")[0] == 0
    code, _, _ = run(client, f"cd {sshd_pod.musubi_dir} && {train_command(job, epochs=3)} > {job}/log 2>&1",
                     environment={"MUSUBI_DOUBLE_MODE": mode, "MUSUBI_DOUBLE_FAIL_AT": "3"})
    log = (job / "log").read_text()
    if mode == "nan":
        assert code == 0  # the real trainer keeps going
        losses = [loss for step, _, loss in bars(log) if loss]
        assert "nan" not in losses[:3] and losses[-1] == "nan"
        assert all(loss == "nan" for step, _, loss in bars(log) if step >= 4 and loss)
        assert log.rstrip().endswith("model saved.")
        return
    assert code == 1
    assert "model saved." not in log
    assert [s for s, _, _ in bars(log)][-1] == 2  # died during step 3
    # the traceback starts right after the last bar: tqdm never ended that line
    assert re.search(r"avr_loss=[\d.]+\]Traceback \(most recent call last\):", log)
    if mode == "oom":
        assert ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 48.00 MiB. GPU 0 has a total "
                "capacity of ") in log
    else:
        assert "RuntimeError: CUDA error: an illegal memory access was encountered" in log
    assert re.search(r"^subprocess\.CalledProcessError: Command '\[.*'src/musubi_tuner/wan_train_network.py',"
                     r" '--task', .*\]' returned non-zero exit status 1\.$", log, re.M)


def test_server_config_sets_mode_for_every_command(client, sshd_pod):
    job = make_job(sshd_pod, "configured", images=1)
    assert run(client, f"cd {sshd_pod.musubi_dir} && {cache_commands(job)}")[0] == 0
    sshd_pod.configure_double(mode="oom", fail_at=1)
    code, _, err = run(client, f"cd {sshd_pod.musubi_dir} && {train_command(job)}")
    assert code == 1 and "steps:   0%|          | 0/2 [00:00<?, ?it/s]" in err
    assert "epoch is incremented. current_epoch: 0, epoch: 1\nTraceback (most recent call last):" in err
    assert "CUDA out of memory" in err


def test_progress_format_matches_tqdm():
    tqdm = pytest.importorskip("tqdm")
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "support" / "musubi_double" / "src" / "musubi_tuner"))
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # keep the double's tree clean
    try:
        import _double
    finally:
        sys.path.pop(0)
        sys.dont_write_bytecode = bytecode
    for n, total, elapsed, loss in [(0, 96, 0, None), (16, 96, 419.4, 0.078), (17, 96, 459.7, 0.06951234),
                                    (1, 10000, 0.0004, 0.1234567), (50, 50, 3725.0, float("nan")),
                                    (3, 7, 1.2, 1.5e-5), (7, 1600, 2.8, 0.5)]:
        postfix = f"avr_loss={tqdm.tqdm.format_num(loss)}" if loss is not None else ""
        ours = _double.format_meter(n, total, elapsed, postfix, "steps")
        assert ours == tqdm.tqdm.format_meter(n, total, elapsed, prefix="steps", postfix=postfix)
        if loss is not None:
            assert _double.format_num(loss) == tqdm.tqdm.format_num(loss)
    assert _double.format_meter(10, None, 2.35, "", "") == tqdm.tqdm.format_meter(10, None, 2.35)


def test_rotate_host_key_changes_key(sshd_server):
    old = sshd_server.host_key_line
    old_known = sshd_server.known_hosts_line
    assert sshd_server.rotate_host_key() != old
    assert sshd_server.host_key_line != old and sshd_server.host_key_line.startswith("ssh-ed25519 ")
    pinned_old = paramiko.SSHClient()
    old_key = paramiko.PKey.from_type_string("ssh-ed25519", base64.b64decode(old.split()[1]))
    pinned_old.get_host_keys().add(f"[{sshd_server.host}]:{sshd_server.port}", "ssh-ed25519", old_key)
    with pytest.raises(paramiko.BadHostKeyException):
        pinned_old.connect(sshd_server.host, port=sshd_server.port, username=sshd_server.user,
                           key_filename=str(sshd_server.key_file), allow_agent=False, look_for_keys=False,
                           timeout=10)
    pinned_old.close()
    assert old_known != sshd_server.known_hosts_line
    c = sshd_server.client()
    assert run(c, "echo ok")[1] == "ok\n"
    c.close()


def test_ssh_cli_client_works(sshd_server):
    r = subprocess.run(sshd_server.ssh_command("echo $((6*7))"), capture_output=True, text=True, timeout=20)
    assert (r.returncode, r.stdout) == (0, "42\n"), r.stderr
