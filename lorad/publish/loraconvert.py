"""musubi-tuner LoRA -> the key format inference services load, as `convert_lora.py --target
other` does (musubi-tuner.md §6), without torch.

Native keys `lora_unet_blocks_0_self_attn_q.lora_down.weight` become
`diffusion_model.blocks.0.self_attn.q.lora_A.weight` (`lora_up` -> `lora_B`); alpha keys are
dropped and baked into the weights (both A and B times sqrt(alpha / rank)); the metadata is
copied. safetensors is read and written here directly because numpy has no bfloat16, the
dtype musubi saves in.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lorad.core.errors import LoradError

PREFIX = "lora_unet_"
# safetensors dtype -> numpy storage dtype (BF16 is stored as raw uint16)
DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
          "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8}
FLOATS = ("F64", "F32", "F16", "BF16")


class ConvertError(LoradError):
    pass


@dataclass
class Tensor:
    dtype: str
    shape: list[int]
    data: np.ndarray  # storage values (uint16 for BF16)

    def as_float32(self) -> np.ndarray:
        if self.dtype == "BF16":
            return (self.data.astype(np.uint32) << 16).view(np.float32).reshape(self.shape)
        return self.data.astype(np.float32).reshape(self.shape)

    @classmethod
    def from_float32(cls, dtype: str, values: np.ndarray) -> Tensor:
        values = np.ascontiguousarray(values, dtype=np.float32)
        if dtype == "BF16":  # round to nearest even, as torch does; NaN stays NaN
            bits = values.view(np.uint32).astype(np.uint64)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
            bits[np.isnan(values)] = 0x7FC0
            return cls(dtype, list(values.shape), bits.astype(np.uint16).ravel())
        return cls(dtype, list(values.shape), values.astype(DTYPES[dtype]).ravel())


def read(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    raw = path.read_bytes()
    if len(raw) < 8:
        raise ConvertError(f"{path.name} is too short to be a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as exc:
        raise ConvertError(f"{path.name}: unreadable safetensors header ({exc})") from None
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    base = 8 + n
    for name, info in header.items():
        dtype = info["dtype"]
        if dtype not in DTYPES:
            raise ConvertError(f"{path.name}: tensor {name} has dtype {dtype}, not supported")
        begin, end = info["data_offsets"]
        data = np.frombuffer(raw[base + begin:base + end], dtype=DTYPES[dtype])
        tensors[name] = Tensor(dtype, list(info["shape"]), data)
    return tensors, metadata


def write(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset, blobs = 0, []
    for name in sorted(tensors):
        t = tensors[name]
        blob = np.ascontiguousarray(t.data).tobytes()
        header[name] = {"dtype": t.dtype, "shape": t.shape,
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(head)))
        fh.write(head)
        for blob in blobs:
            fh.write(blob)
    tmp.replace(path)


def module_name(lora_name: str) -> str:
    """`lora_unet_blocks_0_cross_attn_k_img` -> `blocks.0.cross_attn.k_img` (Wan names)."""
    name = lora_name[len(PREFIX):].replace("_", ".")
    for broken, fixed in (("cross.attn", "cross_attn"), ("self.attn", "self_attn"),
                          ("k.img", "k_img"), ("v.img", "v_img")):
        name = name.replace(broken, fixed)
    return name


# LyCORIS networks (lycoris.kohya): LoHa's Hadamard factors and LoKr's Kronecker factors
LYCORIS_PARTS = (".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b", ".hada_t1",
                 ".lokr_w1", ".lokr_w2", ".lokr_t2")


def to_other(tensors: dict[str, Tensor], prefix: str = "diffusion_model") -> dict[str, Tensor]:
    lycoris = next((k for k in tensors if any(p in k for p in LYCORIS_PARTS)), None)
    if lycoris is not None:
        # convert_lora.py --target other maps lora_down/lora_up only and skips every other key
        # with a warning: a LoHa or LoKr would come out empty.
        kind = "LoHa" if ".hada_" in lycoris else "LoKr"
        raise ConvertError(f"this is a {kind} (LyCORIS) network ({lycoris}), which has no "
                           "lora_A/lora_B form for diffusers and inference services: publish "
                           "it with --no-convert (ComfyUI and musubi-tuner load the file as "
                           "it is)")
    alphas = {k.split(".", 1)[0]: t for k, t in tensors.items() if k.endswith(".alpha")}
    out: dict[str, Tensor] = {}
    for key, t in tensors.items():
        if not key.startswith(PREFIX):
            raise ConvertError(f"{key}: not a musubi-tuner LoRA key (lora_unet_...); is this "
                               "file converted already?")
        if key.endswith(".alpha"):
            continue
        lora_name = key.split(".", 1)[0]
        if ".lora_down." in key:
            part, rank = "lora_A", t.shape[0]
        elif ".lora_up." in key:
            part, rank = "lora_B", t.shape[1]
        else:
            raise ConvertError(f"{key}: neither lora_down nor lora_up")
        values = t.as_float32()
        if lora_name in alphas:
            alpha = float(alphas[lora_name].as_float32().reshape(-1)[0])
            values = values * np.float32(np.sqrt(alpha / rank))
        name = f"{prefix}.{module_name(lora_name)}.{part}.weight" if prefix else \
            f"{module_name(lora_name)}.{part}.weight"
        out[name] = Tensor.from_float32(t.dtype, values) if t.dtype in FLOATS else t
    if not out:
        raise ConvertError("no LoRA weights found")
    return out


def in_inference_format(path: Path) -> bool:
    """Keys already as services load them (`diffusion_model.*.lora_A/lora_B`, alpha baked in):
    what diffusion-pipe saves for Wan, LTX-Video and Qwen-Image (ComfyUI format), and what
    `convert` writes. Read from the header alone."""
    if path.suffix != ".safetensors":
        return False
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return False
        (n,) = struct.unpack("<Q", head)
        try:
            keys = [k for k in json.loads(fh.read(n)) if k != "__metadata__"]
        except ValueError:
            return False
    return bool(keys) and all(k.startswith("diffusion_model.") and (
        ".lora_A." in k or ".lora_B." in k) for k in keys)


def convert(src: Path, dst: Path, prefix: str = "diffusion_model") -> int:
    """Write the converted copy of `src` to `dst`; returns the number of tensors written."""
    tensors, metadata = read(src)
    converted = to_other(tensors, prefix)
    write(dst, converted, metadata)
    return len(converted)
