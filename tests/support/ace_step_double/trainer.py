"""ACE-Step double: `trainer.py` (ace-step/ACE-Step v1 at d612523; shared/reference/ace-step.md).

Follows the real script in what lorad depends on:
- argparse with the real names and defaults (--dataset_path ./zh_lora_dataset, --exp_name,
  --lora_config_path, --checkpoint_dir, --logger_dir ./exps/logs/, --ckpt_path, --max_steps,
  --every_n_train_steps 2000, --every_plot_step 2000, --precision 32, --devices 1, ...);
- the dataset read with the real `datasets.load_from_disk`; a missing track is an error, as
  loading its audio would be; the LoRA config JSON needs r, lora_alpha and target_modules;
- PyTorch Lightning's run shape: TensorBoardLogger(save_dir=logger_dir, version="<YYYY-mm-dd_
  HH-MM-SS><exp_name>") -> LOGGER/lightning_logs/VERSION/; the tqdm bar per epoch, desc
  "Epoch E", counting the epoch's batches, postfix in insertion order (v_num,
  train/denoising_loss, train/loss, train/learning_rate); batches per epoch: the dataset over
  the devices (DDP);
- ModelCheckpoint(every_n_train_steps): VERSION/checkpoints/epoch=E-step=S.ckpt (a torch zip
  here with the step in it) and the model's on_save_checkpoint PEFT folder
  epoch=E-step=S_lora/ (adapter_config.json, adapter_model.safetensors);
- every --every_plot_step: VERSION/eval_results/step_N/{target,pred}_wav_<key>_0.wav;
- --ckpt_path: the step and epoch come back from the .ckpt and the count goes on.

Switches: ACE_DOUBLE_STEP_SECONDS (default 0.01) or ace_step_seconds in the test pod's switches.
"""

import argparse
import datetime
import json
import math
import os
import struct
import sys
import time
import wave
import zipfile
from collections import OrderedDict
from pathlib import Path

from tqdm import tqdm


def switch(name: str, default: str) -> str:
    if f"ACE_DOUBLE_{name.upper()}" in os.environ:
        return os.environ[f"ACE_DOUBLE_{name.upper()}"]
    try:
        with open(os.path.join(os.environ.get("MUSUBI_DOUBLE_STATE", ""), "config.json")) as f:
            value = json.load(f).get(f"ace_{name}")
    except (OSError, ValueError):
        value = None
    return default if value is None else str(value)


def adapter_bytes(step: int) -> bytes:
    header = {"__metadata__": {"format": "pt"},
              "base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight":
              {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<2f", step, 1.0)


def write_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"\0\0\0\0" * 4800)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--num_nodes", type=int, default=1)
    p.add_argument("--shift", type=float, default=3.0)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--num_workers", type=int, default=8)
    p.add_argument("--epochs", type=int, default=-1)
    p.add_argument("--max_steps", type=int, default=2000000)
    p.add_argument("--every_n_train_steps", type=int, default=2000)
    p.add_argument("--dataset_path", type=str, default="./zh_lora_dataset")
    p.add_argument("--exp_name", type=str, default="chinese_rap_lora")
    p.add_argument("--precision", type=str, default="32")
    p.add_argument("--accumulate_grad_batches", type=int, default=1)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--logger_dir", type=str, default="./exps/logs/")
    p.add_argument("--ckpt_path", type=str, default=None)
    p.add_argument("--checkpoint_dir", type=str, default=None)
    p.add_argument("--gradient_clip_val", type=float, default=0.5)
    p.add_argument("--gradient_clip_algorithm", type=str, default="norm")
    p.add_argument("--reload_dataloaders_every_n_epochs", type=int, default=1)
    p.add_argument("--every_plot_step", type=int, default=2000)
    p.add_argument("--val_check_interval", type=int, default=None)
    p.add_argument("--lora_config_path", type=str, default="config/zh_rap_lora_config.json")
    args = p.parse_args()

    import datasets

    ds = datasets.load_from_disk(args.dataset_path)
    for row in ds:
        if not os.path.isfile(row["filename"]):
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{row['filename']}'")
    config = json.loads(Path(args.lora_config_path).read_text())
    for key in ("r", "lora_alpha", "target_modules"):
        if key not in config:
            raise KeyError(key)
    if not args.checkpoint_dir or not any(Path(args.checkpoint_dir).glob("*")):
        raise RuntimeError(f"{args.checkpoint_dir}: the model is not there and this pod has "
                           "no network")
    version = (datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S") + args.exp_name)
    log_dir = Path(args.logger_dir) / "lightning_logs" / version
    checkpoints = log_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    per_epoch = math.ceil(len(ds) / args.devices)
    step = 0
    if args.ckpt_path:
        with zipfile.ZipFile(args.ckpt_path) as z:
            state = json.loads(z.read("archive/lorad_double_state.json"))
        step = state["global_step"]
        print(f"Restoring states from the checkpoint path at {args.ckpt_path}", flush=True)
    delay = float(switch("step_seconds", "0.01"))
    accumulate = max(1, args.accumulate_grad_batches)
    batches = step * accumulate
    bar = None
    while step < args.max_steps:
        epoch, index = divmod(batches, per_epoch)
        if bar is None or index == 0:
            if bar is not None:
                bar.close()
            bar = tqdm(total=per_epoch, desc=f"Epoch {epoch}", initial=index, file=sys.stderr)
        time.sleep(delay)
        batches += 1
        bar.update(1)
        if batches % accumulate:
            continue
        step += 1
        loss = 0.6 / math.sqrt(step)
        bar.set_postfix(OrderedDict([("v_num", version[-6:]),
                                     ("train/denoising_loss", loss * 0.9),
                                     ("train/loss", loss),
                                     ("train/learning_rate", args.learning_rate)]))
        if step % args.every_n_train_steps == 0:
            name = f"epoch={epoch}-step={step}"
            with zipfile.ZipFile(checkpoints / f"{name}.ckpt", "w") as z:
                z.writestr("archive/lorad_double_state.json",
                           json.dumps({"global_step": step, "epoch": epoch}))
            lora = checkpoints / f"{name}_lora"
            lora.mkdir(exist_ok=True)
            (lora / "adapter_config.json").write_text(json.dumps(config))
            (lora / "adapter_model.safetensors").write_bytes(adapter_bytes(step))
        if step % args.every_plot_step == 0:
            folder = log_dir / "eval_results" / f"step_{step}"
            folder.mkdir(parents=True, exist_ok=True)
            key = ds[0]["keys"]
            write_wav(folder / f"target_wav_{key}_0.wav")
            write_wav(folder / f"pred_wav_{key}_0.wav")
            (folder / f"key_prompt_lyric_{key}_0.txt").write_text(
                ", ".join(ds[0]["tags"]) + "\n" + ds[0]["norm_lyrics"])
    if bar is not None:
        bar.close()
    print(f"`Trainer.fit` stopped: `max_steps={args.max_steps}` reached.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
