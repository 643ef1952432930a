"""diffusion-pipe double: `train.py` (tdrussell/diffusion-pipe@8f83dbf), run by bin/deepspeed
on every "GPU". Every fact is from the repository (train.py, utils/dataset.py, utils/saver.py,
models/wan/wan.py, docs/supported_models.md) and deepspeed 0.18.4's pipe engine:

- arguments: --config, --local_rank, --resume_from_checkpoint [RUN], --regenerate_cache,
  --cache_only, --trust_cache, --deepspeed (deepspeed.add_config_arguments);
- the main TOML read as train.py does, with its asserts and errors: a save_every_n_* key (bare
  assert), [model].dtype, `alpha` in [adapter], adapter and model types, activation
  checkpointing, blocks_to_swap only with pipeline_stages = 1, Wan's ckpt_path/config.json
  (model_type ti2v, dim 3072 -> Wan2.2 5B at 24 fps, else 16 fps), eval_datasets as tables;
  DeepSpeed's `num_stages (S) must divide distributed world size (W)`;
- the dataset TOML: `[[directory]] path`, num_repeats, frame_buckets; a video's frames become
  int(frames * model_fps / fps) and it goes to the longest bucket not longer (never bucket 1),
  else "video with frames=N is being skipped because it is too short"; a file without its
  .txt is skipped ("Cound not find caption for ...", the source's typo);
- --cache_only: the caching prints, `<dir>/cache/<model>/` written, then quit;
- per step, on rank 0 only: DeepSpeed's log_dist line and `steps: N loss: X iter time (s): T
  samples/sec: S`; `Global batch size = N` on every rank; `Started new epoch: N`;
- TensorBoard event files in the run folder: `train/loss` each step, `eval/loss` (the mean
  over the nine quantiles) and `eval/eval_time_sec` each eval (at step 0 unless resumed, then
  every eval_every_n_steps); eval prints only `Running eval`;
- saves: `RUN/stepN/` and `RUN/epochN/` with adapter_config.json, adapter_model.safetensors
  (ComfyUI keys `diffusion_model.blocks.0.self_attn.q.lora_A.weight`, metadata format=pt) and
  the main config; states `RUN/global_stepN/` (+ `latest`) every checkpoint_every_n_epochs and
  at the end; RUN = output_dir/UTC '%Y%m%d_%H-%M-%S';
- --resume_from_checkpoint RUN: output_dir/RUN's `latest` state, then step + 1 onwards
  ("Resuming training from checkpoint. Resuming at epoch: E, step: S"), no first eval.

Switches: DP_DOUBLE_STEP_SECONDS (default 0.01), DP_DOUBLE_PIDS (a folder for every process's
pid), or dp_step_seconds / dp_pids in $MUSUBI_DOUBLE_STATE/config.json (SshServer.configure_double).
"""

import argparse
import datetime
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import time
import tomllib
from pathlib import Path

MODEL_TYPES = {"flux", "ltx-video", "hunyuan-video", "sdxl", "cosmos", "lumina_2", "wan",
               "chroma", "hidream", "sd3", "cosmos_predict2", "omnigen2", "qwen_image",
               "hunyuan_image", "auraflow", "z_image", "hunyuan_video_15", "flux2", "anima",
               "ltx2"}
DTYPES = {"float32", "float16", "bfloat16", "float8", "float8_e4m3fn", "float8_e5m2"}
VIDEO = {".mp4", ".mov", ".mkv", ".webm", ".avi"}


def switch(name: str, default: str = "") -> str:
    if f"DP_DOUBLE_{name.upper()}" in os.environ:
        return os.environ[f"DP_DOUBLE_{name.upper()}"]
    try:
        with open(os.path.join(os.environ.get("MUSUBI_DOUBLE_STATE", ""), "config.json")) as f:
            value = json.load(f).get(f"dp_{name}")
    except (OSError, ValueError):
        value = None
    return default if value is None else str(value)


def log_dist(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    print(f"[{stamp}] [INFO] [logging.py:128:log_dist] [Rank 0] {message}", flush=True)


def model_fps(model: dict) -> float:
    if model["type"] != "wan":
        return {"ltx-video": 25.0, "hunyuan-video": 24.0}.get(model["type"], 16.0)
    ckpt = Path(model["ckpt_path"])
    config = json.loads((ckpt / "config.json").read_text())
    if config.get("model_type") == "ti2v" and config.get("dim") == 3072:
        return 24.0  # wan2.2_5b
    return 16.0


def probe(path: Path) -> tuple[int, float]:
    out = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=nb_read_frames,r_frame_rate", "-of", "json", str(path)],
        capture_output=True, text=True, check=True).stdout)["streams"][0]
    num, _, den = out["r_frame_rate"].partition("/")
    return int(out["nb_read_frames"]), float(num) / float(den or 1)


def load_dataset(path: str, fps: float, rank: int) -> list[dict]:
    """The items of a dataset TOML, bucketed as utils/dataset.py does."""
    config = tomllib.loads(Path(path).read_text())
    buckets = sorted(set(config.get("frame_buckets", [1])) | {1})
    items = []
    for directory in config["directory"]:
        folder = Path(directory["path"])
        if not folder.exists():
            raise RuntimeError(f"Invalid path: {folder}")
        repeats = directory.get("num_repeats", config.get("num_repeats", 1))
        if repeats <= 0:
            raise ValueError(f"num_repeats must be >0, was {repeats}")
        for media in sorted(folder.glob("*")):
            if not media.is_file() or media.suffix in (".txt", ".npz", ".json", ".parquet"):
                continue
            if not media.with_suffix(".txt").exists():
                if rank == 0:
                    print(f"Cound not find caption for {media}. Skipping image.")
                continue
            if media.suffix.lower() in VIDEO:
                source_frames, source_fps = probe(media)
                frames = int(source_frames * fps / source_fps)
            else:
                frames = 1
            fitting = [b for b in buckets if b <= frames]
            bucket = max(fitting) if fitting else None
            if frames > 1 and bucket == 1:
                bucket = None
            if bucket is None:
                if rank == 0:
                    print(f"video with frames={frames} is being skipped because it is too short")
                continue
            items += [{"path": str(media), "bucket": bucket}] * repeats
    return items


def adapter_bytes(step: int) -> bytes:
    keys = ["diffusion_model.blocks.0.self_attn.q.lora_A.weight",
            "diffusion_model.blocks.0.self_attn.q.lora_B.weight"]
    header: dict = {"__metadata__": {"format": "pt"}}
    for n, key in enumerate(keys):
        header[key] = {"dtype": "F32", "shape": [2], "data_offsets": [8 * n, 8 * n + 8]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<4f", step, 1.0, step, 2.0)


class Board:
    """A TensorBoard event file in the run folder (SummaryWriter(log_dir=run_dir))."""

    def __init__(self, folder: Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.writer = EventFileWriter(str(folder))

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag,
                                                                       simple_value=value)])
        self.writer.add_event(event_pb2.Event(wall_time=time.time(), step=step,
                                              summary=summary))
        self.writer.flush()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--local_rank", type=int, default=-1)
    p.add_argument("--resume_from_checkpoint", nargs="?", const=True, default=None)
    p.add_argument("--reset_dataloader", action="store_true")
    p.add_argument("--regenerate_cache", action="store_true")
    p.add_argument("--cache_only", action="store_true")
    p.add_argument("--trust_cache", action="store_true")
    p.add_argument("--i_know_what_i_am_doing", action="store_true")
    p.add_argument("--master_port", type=int, default=29500)
    p.add_argument("--deepspeed", action="store_true")
    p.add_argument("--deepspeed_config")
    args = p.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    pids = switch("pids")
    if pids:
        Path(pids).mkdir(parents=True, exist_ok=True)
        (Path(pids) / str(os.getpid())).write_text(f"rank{rank}")
    config = tomllib.loads(Path(args.config).read_text())
    assert ("save_every_n_epochs" in config or "save_every_n_steps" in config
            or "save_every_n_examples" in config)
    model = config["model"]
    if model["dtype"] not in DTYPES:
        raise KeyError(model["dtype"])
    adapter = config.get("adapter", {})
    if "alpha" in adapter:
        raise NotImplementedError("This script forces alpha=rank to make the saved adapter "
                                  "format simpler and more predictable with downstream "
                                  "inference programs. Please remove alpha from the config.")
    if adapter and adapter["type"] not in ("lora", "lokr"):
        raise NotImplementedError(f"Adapter type {adapter['type']} is not implemented")
    if config.get("activation_checkpointing", False) not in (True, False, "unsloth"):
        raise NotImplementedError(f"activation_checkpointing="
                                  f"{config['activation_checkpointing']} is not implemented")
    if model["type"] not in MODEL_TYPES:
        raise NotImplementedError(f"Model type {model['type']} is not implemented")
    fps = model_fps(model)
    stages = config.get("pipeline_stages", 1)
    if rank == 0:
        print(f"using video_clip_mode=single_beginning\nusing framerate={fps:g}", flush=True)
    items = load_dataset(config["dataset"], fps, rank)
    evals = [(e["name"], load_dataset(e["config"], fps, rank))
             for e in config.get("eval_datasets", [])]
    cache = Path(tomllib.loads(Path(config["dataset"]).read_text())["directory"][0]["path"])
    name = "wan2.2_5b" if fps == 24.0 and model["type"] == "wan" else model["type"]
    if args.cache_only or not (cache / "cache" / name).exists() or args.regenerate_cache:
        if rank == 0:
            for bucket in sorted({i["bucket"] for i in items}):
                print(f"caching latents: {cache}\ncaching latents: ((1.0), {bucket})",
                      flush=True)
            print(f"caching text embeddings: {cache}", flush=True)
            (cache / "cache" / name).mkdir(parents=True, exist_ok=True)
        if args.cache_only:
            return 0
    if world % stages:
        raise RuntimeError(f"num_stages ({stages}) must divide distributed world size ({world})")
    if config.get("blocks_to_swap"):
        assert stages == 1, "Block swapping only works with pipeline_stages=1"
        assert "adapter" in config, "Block swapping only works when training LoRA"
    dp = world // stages
    global_batch = (config.get("micro_batch_size_per_gpu", 1)
                    * config.get("gradient_accumulation_steps", 1) * dp)
    print(f"Global batch size = {global_batch}", flush=True)  # every rank (train.py 633)
    steps_per_epoch = len(items) // global_batch
    if steps_per_epoch == 0:
        raise RuntimeError("Processed dataset was empty. Probably caused by rounding down for "
                           "each size bucket.")
    output = Path(config["output_dir"])
    step, resumed = 1, False
    if args.resume_from_checkpoint:
        run_dir = (output / args.resume_from_checkpoint if args.resume_from_checkpoint is not True
                   else Path(sorted(output.glob("*"))[-1]))
        latest = run_dir / "latest"
        if not latest.exists():
            print(f"Unable to find latest file at {latest}, if trying to load latest checkpoint "
                  "please ensure this file exists or pass an explicit checkpoint tag when "
                  "loading a checkpoint.")
            raise AssertionError("load_path is not None")
        state = json.loads((run_dir / latest.read_text().strip() / "state.json").read_text())
        step, resumed = state["step"] + 1, True
        if rank == 0:
            print(f"Resuming training from checkpoint. Resuming at epoch: "
                  f"{(step - 1) // steps_per_epoch + 1}, step: {step}", flush=True)
    else:
        run_dir = output / datetime.datetime.now(datetime.UTC).strftime(
            "%Y%m%d_%H-%M-%S")
        if rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            for source in [args.config, config["dataset"],
                           *(e["config"] for e in config.get("eval_datasets", []))]:
                shutil.copy(source, run_dir)
    main_process = rank == 0
    board = Board(run_dir) if main_process else None
    delay = float(switch("step_seconds", "0.01"))
    max_steps = config.get("max_steps")
    epochs = config["epochs"]
    save_steps, save_epochs = config.get("save_every_n_steps"), config.get("save_every_n_epochs")
    eval_steps = config.get("eval_every_n_steps")
    ckpt_epochs = config.get("checkpoint_every_n_epochs")

    def run_eval(at: int) -> None:
        if not main_process or not evals:
            return
        print("Running eval", flush=True)
        for eval_name, _items in evals:
            board.scalar(f"{eval_name}/loss", 0.4 / math.sqrt(at + 1), at)
        board.scalar("eval/eval_time_sec", 0.01, at)

    def save_model(name: str) -> None:
        if not main_process:
            return
        print(f"Saving model to directory {name}", flush=True)
        folder = run_dir / name
        folder.mkdir(exist_ok=False)
        (folder / "adapter_config.json").write_text(json.dumps(
            {"peft_type": "LORA", "r": adapter.get("rank", 32),
             "lora_alpha": adapter.get("rank", 32)}))
        (folder / "adapter_model.safetensors").write_bytes(adapter_bytes(int(name.lstrip(
            "stepoch") or 0)))
        shutil.copy(args.config, folder)

    def save_state(at: int) -> None:
        if not main_process:
            return
        folder = run_dir / f"global_step{at}"
        folder.mkdir(exist_ok=True)
        (folder / "mp_rank_00_model_states.pt").write_bytes(b"\0" * 32)
        (folder / "state.json").write_text(json.dumps({"step": at}))
        (run_dir / "latest").write_text(f"global_step{at}")

    if config.get("eval_before_first_step", True) and not resumed:
        run_eval(0)
    last_state = None
    while True:
        time.sleep(delay)
        loss = 0.3 / math.sqrt(step)
        if main_process:
            log_dist(f"step={step}, skipped=0, lr=[{adapter and config['optimizer']['lr']}], "
                     "mom=[[0.9, 0.99]]")
            print(f"steps: {step} loss: {loss:0.4f} iter time (s): {delay:0.3f} samples/sec: "
                  f"{global_batch / max(delay, 1e-3):0.3f}", flush=True)
        epoch_done = step % steps_per_epoch == 0
        epoch = step // steps_per_epoch
        if epoch_done:
            if ckpt_epochs and epoch % ckpt_epochs == 0:
                save_state(step)
                last_state = step
            if save_epochs and epoch % save_epochs == 0:
                save_model(f"epoch{epoch}")
            if main_process and epoch < epochs:
                print(f"Started new epoch: {epoch + 1}", flush=True)
        if main_process:
            board.scalar("train/loss", loss, step)
        if eval_steps and step % eval_steps == 0:
            run_eval(step)
        if save_steps and step % save_steps == 0:
            save_model(f"step{step}")
        if (max_steps and step >= max_steps) or (epoch_done and epoch >= epochs):
            break
        step += 1
    if main_process:
        if last_state != step:
            save_state(step)
        if not (run_dir / f"step{step}").exists() and max_steps and step >= max_steps:
            save_model(f"step{step}")
        print("TRAINING COMPLETE!", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
