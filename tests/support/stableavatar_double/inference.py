"""StableAvatar double: `inference.py` (Francis-Rings/StableAvatar@46c0492, see inference.sh).

A reference image and a driving audio file make `--output_dir/video_without_audio.mp4` at 25 fps
(imageio, no sound), as long as the audio (`total_frames = len(audio@16k) / (16000/25)`), at
--width x --height; `--output_dir/animated_images/` is made empty. `--transformer_path` is
torch.load-ed and loaded with strict=False ("missing keys: N, unexpected keys: M").
`--sample_steps` and `--seed` default to None, which the real script cannot run with
(`torch.Generator().manual_seed(None)`: TypeError). The frames here are ffmpeg's test pattern.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _torchfile import is_torch_file  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config_path", type=str, required=True)
    p.add_argument("--pretrained_model_name_or_path", type=str, required=True)
    p.add_argument("--transformer_path", type=str, default=None)
    p.add_argument("--pretrained_wav2vec_path", type=str, required=True)
    p.add_argument("--validation_reference_path", type=str, required=True)
    p.add_argument("--validation_driven_audio_path", type=str, required=True)
    p.add_argument("--output_dir", type=str, required=True)
    p.add_argument("--validation_prompts", type=str, nargs="+",
                   default=["The protagonist is singing"])
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--ulysses_degree", type=int, default=1)
    p.add_argument("--ring_degree", type=int, default=1)
    p.add_argument("--motion_frame", type=int, default=25)
    p.add_argument("--sample_steps", type=int, default=None)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--overlap_window_length", type=int, default=10)
    p.add_argument("--clip_sample_n_frames", type=int, default=81)
    p.add_argument("--GPU_memory_mode", type=str, default="model_full_load",
                   choices=["model_full_load", "sequential_cpu_offload",
                            "model_cpu_offload_and_qfloat8", "model_cpu_offload"])
    p.add_argument("--sample_text_guide_scale", type=float, default=5.0)
    p.add_argument("--sample_audio_guide_scale", type=float, default=4.0)
    args = p.parse_args()
    if args.seed is None:
        raise TypeError("manual_seed(): argument 'seed' (position 1) must be int, not NoneType")
    if args.sample_steps is None:
        raise TypeError("'<' not supported between instances of 'NoneType' and 'int'")
    if args.transformer_path:
        if not is_torch_file(Path(args.transformer_path)):
            raise RuntimeError(f"PytorchStreamReader failed reading zip archive: "
                               f"{args.transformer_path}")
        print(f"From checkpoint: {args.transformer_path}")
        print("missing keys: 0, unexpected keys: 0", flush=True)
    for path in (args.validation_reference_path, args.validation_driven_audio_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
    out = Path(args.output_dir)
    (out / "animated_images").mkdir(parents=True, exist_ok=True)
    seconds = float(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         args.validation_driven_audio_path], capture_output=True, text=True, check=True)
        .stdout.strip())
    frames = int(seconds * 16000 / (16000 / 25))
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={args.width}x{args.height}:rate=25", "-frames:v",
                    str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                    "yuv420p", str(out / "video_without_audio.mp4")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
