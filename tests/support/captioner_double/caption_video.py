"""A captioning script as users run on their pods (a Qwen2.5-VL or CogVLM2-caption script, like
musubi-tuner's caption_images_by_qwen_vl.py but for one video): it loads a model (here it only
prints the loading bar such scripts print), reads the clip, and writes the model's answer to
--out. The "answer" is made from the clip's real size and length (ffprobe), opened the way such
models open ("The video shows ..."), so lorad's post-processing has something to strip.

Switches: CAPTIONER_DOUBLE_LOG (a file; one line per run: the prompt's first line), and
CAPTIONER_DOUBLE_FAIL=oom (dies with CUDA out of memory).
"""

import argparse
import json
import os
import subprocess
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--video", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max_new_tokens", type=int, default=256)
    args = p.parse_args()
    print("Loading checkpoint shards: 100%|██████████| 5/5 [00:03<00:00,  1.41it/s]", flush=True)
    if os.environ.get("CAPTIONER_DOUBLE_FAIL") == "oom":
        raise RuntimeError("CUDA out of memory. Tried to allocate 1.50 GiB")
    facts = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height:format=duration", "-of", "json", args.video],
        capture_output=True, text=True, check=True).stdout)
    stream = facts["streams"][0]
    seconds = float(facts["format"]["duration"])
    trigger = next((w.strip(".,") for w in args.prompt.split() if w.isupper() and len(w) > 2),
                   "")
    answer = (f"The video shows {trigger + ', ' if trigger else ''}a {stream['width']}x"
              f"{stream['height']} shot of {seconds:.1f} seconds, static camera, even light.")
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(answer + "\n")
    log = os.environ.get("CAPTIONER_DOUBLE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"video": args.video, "prompt": args.prompt}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
