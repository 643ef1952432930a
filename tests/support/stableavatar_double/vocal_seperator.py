"""StableAvatar double: `vocal_seperator.py` (Francis-Rings/StableAvatar@46c0492).

audio-separator's `Separator(output_single_stem="vocals")` with the model file named by
--audio_separator_model_file; the vocals are written as `vocal.wav` beside --audio_file_path
(--saved_vocal_path is parsed and never used). The double copies the input's samples.
"""

import argparse
import os
import shutil
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--audio_separator_model_file", type=str, required=True)
    p.add_argument("--audio_file_path", type=str, required=True)
    p.add_argument("--saved_vocal_path", type=str, default=None)
    args = p.parse_args()
    if not os.path.isfile(args.audio_separator_model_file):
        raise FileNotFoundError(f"Model file {args.audio_separator_model_file} not found")
    folder = os.path.dirname(args.audio_file_path)
    shutil.copyfile(args.audio_file_path, os.path.join(folder, "vocal.wav"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
