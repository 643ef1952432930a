"""musubi-tuner's dataset TOML schema, written for the tests from the reference
(shared/reference/musubi-tuner.md §1.1-1.3), independently of lorad's own check."""

from __future__ import annotations

ASCENDABLE = {"caption_extension": str, "batch_size": int, "num_repeats": int,
              "resolution": (int, list), "enable_bucket": bool, "bucket_no_upscale": bool}
VIDEO_ONLY = {"video_directory": str, "video_jsonl_file": str, "control_directory": str,
              "target_frames": list, "frame_extraction": str, "frame_stride": int,
              "frame_sample": int, "max_frames": int, "cache_directory": str,
              "source_fps": float, "fp_latent_window_size": int}
IMAGE_ONLY = {"image_directory": str, "image_jsonl_file": str, "cache_directory": str,
              "control_directory": str, "multiple_target": bool, "fp_latent_window_size": int,
              "fp_1f_clean_indices": list, "fp_1f_target_index": int, "fp_1f_no_post": bool,
              "no_resize_control": bool, "control_resolution": list}


def _is(value, expected) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def assert_valid(config: dict) -> None:
    assert set(config) <= {"general", "datasets"}, set(config)
    for key, value in config.get("general", {}).items():
        assert key in ASCENDABLE, f"[general] may not hold {key}"
        assert _is(value, ASCENDABLE[key]), (key, value)
    caches = set()
    for ds in config["datasets"]:
        video = "video_directory" in ds or "video_jsonl_file" in ds
        allowed = {**ASCENDABLE, **(VIDEO_ONLY if video else IMAGE_ONLY)}
        for key, value in ds.items():
            assert key in allowed, f"extra keys not allowed @ data['datasets'][0]['{key}']"
            assert _is(value, allowed[key]), (key, value)
        if video:
            assert ds["target_frames"] and all((f - 1) % 4 == 0 for f in ds["target_frames"])
            assert ds.get("frame_extraction", "head") in ("head", "chunk", "slide", "uniform",
                                                          "full")
        cache = ds.get("cache_directory")
        assert cache and cache not in caches, "cache_directory must be unique per dataset"
        caches.add(cache)
