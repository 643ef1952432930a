"""StableAvatar double: `lip_mask_extractor.py` (Francis-Rings/StableAvatar@46c0492).

For idx in range(--start, --end) (the end not included): the folder
`--folder_root/str(idx).zfill(5)`, its `images/*.png`, and a `lip_masks/<same name>.png` each
(MediaPipe FaceMesh lips drawn at 255 on a one-channel image). The double copies the frame.
"""

import argparse
import os
import shutil
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--folder_root", type=str, required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    args = p.parse_args()
    for idx in range(args.start, args.end):
        folder = os.path.join(args.folder_root, str(idx).zfill(5))
        images = os.path.join(folder, "images")
        masks = os.path.join(folder, "lip_masks")
        os.makedirs(masks, exist_ok=True)
        for name in sorted(os.listdir(images)):
            if name.endswith(".png"):
                shutil.copyfile(os.path.join(images, name), os.path.join(masks, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
