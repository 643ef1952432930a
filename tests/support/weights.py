"""Tiny model files with real safetensors headers, for the code that reads them (musubi-tuner
detects the DiT's dtype from `blocks.0.cross_attn.k.weight`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

SIZES = {"F16": 2, "BF16": 2, "F32": 4, "F8_E4M3": 1}


def write_dit(path: Path, dtype: str = "BF16", key: str = "blocks.0.cross_attn.k.weight") -> Path:
    """A DiT file whose one tensor has `dtype` (the safetensors format: an 8-byte little-endian
    header length, the JSON header, then the data)."""
    size = SIZES[dtype] * 4
    header = json.dumps({key: {"dtype": dtype, "shape": [2, 2], "data_offsets": [0, size]}})
    header += " " * (-len(header) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0" * size)
    return path
