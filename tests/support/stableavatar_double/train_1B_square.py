"""StableAvatar double: `train_1B_square.py` (Francis-Rings/StableAvatar@46c0492), launched as
`accelerate launch train_1B_square.py --config_path=... --pretrained_model_name_or_path=...`.

Follows the real script in what lorad depends on:
- argparse with the real names (train_1B_square.sh's arguments); an unknown one is an error;
- the dataset (wan/dataset/talking_video_dataset_fantasy.py): `--train_data_square_dir` lists
  one clip folder per line; each needs `sub_clip.mp4`, `audio.wav` and `images/frame_N.png`;
  a missing face or lip mask is printed ("Fail loading the face masks") and replaced by ones;
  a folder path without "singing", "speech" or "dancing" dies (`print(1/0)`);
- steps: `--max_train_steps`, else `--num_train_epochs` x clips per process;
- the bar: `tqdm(range(0, max_train_steps), initial=initial_global_step, desc="Steps",
  disable=not accelerator.is_local_main_process)`, `update(1)` per optimizer step, then
  `set_postfix(step_loss=..., lr=...)` (tqdm sorts the keys);
- every `--checkpointing_steps`: `Saved state to OUTPUT/checkpoint-N` (accelerate's
  save_state: model.safetensors, optimizer.bin, scheduler.bin, random_states_0.pkl) and
  `checkpoint-N/transformer3d-checkpoint-N.pt`; the same once more at the end;
- every `--validation_steps`: `OUTPUT/sample/sample-N.mp4` (validation audio shorter than about
  2.54 s dies with ZeroDivisionError, as the real `print(1/0)`);
- `--resume_from_checkpoint`: only the folder's NAME is used, looked up in --output_dir
  ("latest": the highest step); the step count goes on from N ("Resuming from checkpoint ...");
- ranks other than 0 (RANK from the launcher) train silently in step.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _torchfile import save  # noqa: E402

KINDS = {"singing": "The protagonist is singing", "speech": "The protagonist is talking",
         "dancing": "The protagonist is simultaneously dancing and singing"}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Simple example of a training script.")
    p.add_argument("--config_path", type=str, required=True)
    p.add_argument("--pretrained_model_name_or_path", type=str, required=True)
    p.add_argument("--pretrained_wav2vec_path", type=str, required=True)
    p.add_argument("--transformer_path", type=str, default=None)
    p.add_argument("--validation_reference_path", type=str, default=None)
    p.add_argument("--validation_driven_audio_path", type=str, default=None)
    p.add_argument("--train_data_square_dir", type=str, required=True)
    p.add_argument("--video_sample_n_frames", type=int, default=81)
    p.add_argument("--train_batch_size", type=int, default=1)
    p.add_argument("--video_repeat", type=int, default=0)
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--dataloader_num_workers", type=int, default=0)
    p.add_argument("--num_train_epochs", type=int, default=100)
    p.add_argument("--max_train_steps", type=int, default=None)
    p.add_argument("--checkpointing_steps", type=int, default=500)
    p.add_argument("--checkpoints_total_limit", type=int, default=None)
    p.add_argument("--validation_steps", type=int, default=2000)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--lr_scheduler", type=str, default="constant")
    p.add_argument("--lr_warmup_steps", type=int, default=500)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--output_dir", type=str, default="sd-model-finetuned")
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"])
    p.add_argument("--adam_weight_decay", type=float, default=1e-2)
    p.add_argument("--adam_epsilon", type=float, default=1e-08)
    p.add_argument("--vae_mini_batch", type=int, default=32)
    p.add_argument("--max_grad_norm", default=1.0, type=float)
    p.add_argument("--uniform_sampling", action="store_true")
    p.add_argument("--motion_sub_loss", action="store_true")
    p.add_argument("--low_vram", action="store_true")
    p.add_argument("--train_mode", type=str, default="normal")
    p.add_argument("--resume_from_checkpoint", type=str, default=None)
    p.add_argument("--report_to", type=str, default="tensorboard")
    p.add_argument("--logging_dir", type=str, default="logs")
    return p.parse_args()


def switch(name: str, default: str = "") -> str:
    """SA_DOUBLE_<NAME> from the environment, else sa_<name> of the test pod's switches
    ($MUSUBI_DOUBLE_STATE/config.json, tests/support/sshd.py configure_double)."""
    if f"SA_DOUBLE_{name.upper()}" in os.environ:
        return os.environ[f"SA_DOUBLE_{name.upper()}"]
    state = os.environ.get("MUSUBI_DOUBLE_STATE")
    try:
        with open(os.path.join(state or "", "config.json")) as f:
            value = json.load(f).get(f"sa_{name}")
    except (OSError, ValueError):
        value = None
    return default if value is None else str(value)


def note_pid(role: str) -> None:
    folder = switch("pids")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / str(os.getpid())).write_text(role)


def check_clip(folder: str) -> None:
    if not any(kind in folder for kind in KINDS):
        print(1 / 0)  # the real dataset's prompt choice
    here = Path(folder)
    frames = sorted((here / "images").glob("frame_*.png"))
    if not frames:
        raise FileNotFoundError(f"[Errno 2] No such file or directory: '{here / 'images'}'")
    for name in ("sub_clip.mp4", "audio.wav"):
        if not (here / name).is_file():
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{here / name}'")
    for masks, said in (("face_masks", "face"), ("lip_masks", "lip")):
        if not (here / masks / frames[0].name).is_file():
            print(f"Fail loading the {said} masks: {here / masks / frames[0].name}")


def audio_seconds(path: str) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                          "csv=p=0", path], capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def save_state(output: Path, step: int) -> Path:
    folder = output / f"checkpoint-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    (folder / "optimizer.bin").write_bytes(json.dumps({"step": step}).encode())
    (folder / "scheduler.bin").write_bytes(b"sched")
    (folder / "random_states_0.pkl").write_bytes(b"rng")
    print(f"Saved state to {folder}", flush=True)
    save(folder / f"transformer3d-checkpoint-{step}.pt", step)
    print(f"Saved transformer to {folder / f'transformer3d-checkpoint-{step}.pt'}", flush=True)
    return folder


def main() -> int:
    args = parse_args()
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    note_pid(f"rank{rank}")
    main_process = rank == 0
    folders = [line.strip() for line in Path(args.train_data_square_dir).read_text()
               .splitlines() if line.strip()]
    for folder in folders:
        check_clip(folder)
    per_process = math.ceil(len(folders) / (args.train_batch_size * world))
    per_epoch = math.ceil(per_process / args.gradient_accumulation_steps)
    if args.max_train_steps is None:
        args.max_train_steps = args.num_train_epochs * per_epoch
    output = Path(args.output_dir)
    if main_process:
        output.mkdir(parents=True, exist_ok=True)
        print("***** Running training *****")
        print(f"  Num examples = {len(folders)}")
        print(f"  Num Epochs = {math.ceil(args.max_train_steps / per_epoch)}")
        print(f"  Total optimization steps = {args.max_train_steps}", flush=True)
    global_step = 0
    if args.resume_from_checkpoint:
        if args.resume_from_checkpoint != "latest":
            path = os.path.basename(args.resume_from_checkpoint)
        else:
            dirs = sorted((d for d in os.listdir(output) if d.startswith("checkpoint")),
                          key=lambda x: int(x.split("-")[1]))
            path = dirs[-1] if dirs else None
        if path is None:
            print(f"Checkpoint '{args.resume_from_checkpoint}' does not exist. Starting a new "
                  "training run.")
        else:
            if not (output / path / "optimizer.bin").is_file():  # accelerator.load_state
                raise FileNotFoundError(f"[Errno 2] No such file or directory: "
                                        f"'{output / path / 'optimizer.bin'}'")
            global_step = int(path.split("-")[1])
            print(f"Resuming from checkpoint {path}. Get first_epoch = "
                  f"{global_step // per_epoch}.", flush=True)
    delay = float(switch("step_seconds", "0.01"))
    fail_at = int(switch("fail_at", "0") or 0)
    bar = tqdm(range(0, args.max_train_steps), initial=global_step, desc="Steps",
               disable=not main_process)
    while global_step < args.max_train_steps:
        time.sleep(delay)
        step = global_step + 1
        if step == fail_at:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 "
                               "GiB total capacity)")
        loss = 0.5 / math.sqrt(step)
        bar.update(1)
        global_step = step
        if main_process and global_step % args.checkpointing_steps == 0:
            save_state(output, global_step)
        if main_process and global_step % args.validation_steps == 0:
            print("Running validation... ", flush=True)
            if audio_seconds(args.validation_driven_audio_path) * 30 // 4 * 4 + 5 < 81:
                print(1 / 0)
            sample = output / "sample"
            sample.mkdir(exist_ok=True)
            (sample / f"sample-{global_step}.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
        bar.set_postfix(step_loss=loss, lr=args.learning_rate)
    bar.close()
    if main_process:
        save_state(output, global_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
