"""musubi-tuner double: src/musubi_tuner/wan_cache_latents.py (see _double.py)."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _double import cache_main  # noqa: E402


def main() -> None:
    cache_main("latents", __name__)


if __name__ == "__main__":
    main()
