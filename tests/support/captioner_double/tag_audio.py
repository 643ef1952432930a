"""An audio-language model's tagging script as users run on their pods (ACE-Step's
TRAIN_INSTRUCTION.md labels tracks with Qwen Omni and a fixed prompt): it reads the track and
writes the model's answer to --out. The "answer" comes from the track's real length (ffprobe)
and opens as such models do ("The track is ..."), so lorad's post-processing has work to do.

Switch: CAPTIONER_DOUBLE_LOG (a file; one JSON line per run with the prompt).
"""

import argparse
import json
import os
import subprocess
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--audio", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    facts = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=sample_rate:format=duration", "-of", "json", args.audio],
        capture_output=True, text=True, check=True).stdout)
    seconds = float(facts["format"]["duration"])
    answer = (f"The track is lofi hip hop, mellow, rhodes piano, {60 + int(seconds)} bpm, "
              "vinyl crackle, rainy, instrumental")
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(answer + "\n")
    log = os.environ.get("CAPTIONER_DOUBLE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"audio": args.audio, "prompt": args.prompt}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
