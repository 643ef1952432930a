"""musubi-tuner's dataset config: the keys it accepts (from its `config_utils.py` schema, which
rejects anything else with "extra keys not allowed"), and a small deterministic TOML writer."""

from __future__ import annotations

import json
import math
from typing import Any

# key -> accepted Python types. source_fps must be a float in the file ("30.0", not "30").
GENERAL = {"caption_extension": (str,), "batch_size": (int,), "num_repeats": (int,),
           "resolution": (int, list), "enable_bucket": (bool,), "bucket_no_upscale": (bool,)}
VIDEO = {**GENERAL, "video_directory": (str,), "video_jsonl_file": (str,),
         "control_directory": (str,), "target_frames": (list,), "frame_extraction": (str,),
         "frame_stride": (int,), "frame_sample": (int,), "max_frames": (int,),
         "cache_directory": (str,), "source_fps": (float,), "fp_latent_window_size": (int,)}
IMAGE = {**GENERAL, "image_directory": (str,), "image_jsonl_file": (str,),
         "cache_directory": (str,), "control_directory": (str,), "multiple_target": (bool,),
         "fp_latent_window_size": (int,), "fp_1f_clean_indices": (list,),
         "fp_1f_target_index": (int,), "fp_1f_no_post": (bool,), "no_resize_control": (bool,),
         "control_resolution": (list,)}
FRAME_EXTRACTION = ("head", "chunk", "slide", "uniform", "full")


def _type_ok(value: Any, types: tuple) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def check_config(data: dict[str, Any]) -> list[str]:
    """Problems musubi-tuner would raise on (or silently mishandle), as sentences."""
    problems = []
    for key in data:
        if key not in ("general", "datasets"):
            problems.append(f"top-level key '{key}' is not allowed (only [general] and "
                            "[[datasets]])")
    for key, value in data.get("general", {}).items():
        if key not in GENERAL:
            problems.append(f"[general] may not hold '{key}' (only {', '.join(GENERAL)})")
        elif not _type_ok(value, GENERAL[key]):
            problems.append(f"[general].{key} has the wrong type ({type(value).__name__})")
    caches = []
    for n, ds in enumerate(data.get("datasets", [])):
        is_video = "video_directory" in ds or "video_jsonl_file" in ds
        is_image = "image_directory" in ds or "image_jsonl_file" in ds
        if not (is_video or is_image):
            problems.append(f"datasets[{n}] needs video_directory, video_jsonl_file, "
                            "image_directory or image_jsonl_file")
            continue
        schema = VIDEO if is_video else IMAGE
        for key, value in ds.items():
            if key not in schema:
                problems.append(f"datasets[{n}]: extra key '{key}' not allowed")
            elif not _type_ok(value, schema[key]):
                problems.append(f"datasets[{n}].{key} has the wrong type "
                                f"({type(value).__name__})")
        if is_video:
            frames = ds.get("target_frames", [])
            if any(not isinstance(f, int) or f % 4 != 1 for f in frames):
                problems.append(f"datasets[{n}].target_frames must be 4n+1 integers, got {frames}")
            if ds.get("frame_extraction", "head") not in FRAME_EXTRACTION:
                problems.append(f"datasets[{n}].frame_extraction must be one of "
                                f"{', '.join(FRAME_EXTRACTION)}")
        if "jsonl_file" in " ".join(ds) and "cache_directory" not in ds:
            problems.append(f"datasets[{n}] uses a JSONL file and needs cache_directory")
        if "caption_extension" not in ds and "caption_extension" not in data.get("general", {}) \
                and ("video_directory" in ds or "image_directory" in ds):
            problems.append(f"datasets[{n}] reads a directory but no caption_extension is set")
        cache = ds.get("cache_directory") or ds.get("video_directory") or ds.get("image_directory")
        if cache in caches:
            problems.append(f"datasets[{n}]: cache directory {cache} is used by another dataset "
                            "(each needs its own)")
        caches.append(cache)
    return problems


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("TOML numbers must be finite here")
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps(data: dict[str, Any], comments: list[str] | None = None) -> str:
    """`[general]` then one `[[datasets]]` per dataset; keys in insertion order."""
    lines = [f"# {c}" for c in comments or []]
    if "general" in data:
        lines += ["", "[general]"] + [f"{k} = {_value(v)}" for k, v in data["general"].items()]
    for ds in data.get("datasets", []):
        lines += ["", "[[datasets]]"] + [f"{k} = {_value(v)}" for k, v in ds.items()]
    return "\n".join(lines).lstrip("\n") + "\n"
