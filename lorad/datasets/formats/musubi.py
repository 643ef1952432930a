"""musubi-tuner's dataset format: `dataset.toml` (and `dataset_val.toml`, `train.jsonl`) with
only the keys its `config_utils.py` schema accepts (it rejects anything else with "extra keys
not allowed"), written by a small deterministic TOML writer, and `sample_prompts.txt` in its
prompt syntax (`prompt --w W --h H --f F --d seed --s steps [--n negative]`)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from lorad.datasets.formats import FORMATS
from lorad.media import profiles
from lorad.media.profiles import largest_4n1

if TYPE_CHECKING:
    from lorad.datasets.export import Item, Plan
    from lorad.media.datasets import Dataset
    from lorad.media.profiles import Profile

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
TARGET_FPS_WAN = 16.0  # image_video_dataset.VideoDataset: every Wan video is read at 16 fps


def frames_at_16fps(frames: int, source_fps: float | None) -> int:
    """How many of a clip's frames musubi keeps: with source_fps set, its video loader drops
    frames to 16 fps (image_video_dataset.load_video: an index advancing by 16/source_fps per
    frame, a frame kept when the whole part changes), exactly as counted here."""
    if not source_fps or source_fps <= TARGET_FPS_WAN:
        return frames
    delta = TARGET_FPS_WAN / source_fps
    position, previous, kept = 0.0, -1, 0
    for _ in range(frames):
        index = int(position)
        position += delta
        if index != previous:
            previous, kept = index, kept + 1
    return kept


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


def dataset_entry(profile: Profile, directory: str, cache: str, items: list[Item],
                  jsonl: str | None, repeats: int) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if profile.media == "image":
        entry["image_jsonl_file" if jsonl else "image_directory"] = jsonl or directory
    else:
        entry["video_jsonl_file" if jsonl else "video_directory"] = jsonl or directory
    entry["cache_directory"] = cache
    if profile.media == "video":
        counts = sorted({i.frames for i in items if i.frames}) or [profile.frames_needed()]
        if profile.frames is not None:
            entry["target_frames"] = [profile.frames]
            entry["frame_extraction"] = "head"
        elif len(counts) == 1:
            entry["target_frames"] = [counts[0]]
            entry["frame_extraction"] = "head"
        else:
            # clips of several 4n+1 lengths: each is used whole (trimmed to N*4+1 and max_frames)
            entry["target_frames"] = [counts[0]]
            entry["frame_extraction"] = "full"
            entry["max_frames"] = counts[-1]
        entry["source_fps"] = float(profile.fps)
    entry["num_repeats"] = repeats
    return entry


def configs(p: Plan) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The training config, and the validation one when clips are held out."""
    profile, remote, name = p.profile, p.remote_root, p.dataset.name
    general: dict[str, Any] = {"resolution": [profile.width, profile.height],
                               "caption_extension": ".txt", "batch_size": p.options.batch_size,
                               "enable_bucket": profile.media == "image"
                               or profile.orientation == "match",
                               "bucket_no_upscale": False}
    train = [i for i in p.items if i.split == "train"]
    val = [i for i in p.items if i.split == "val"]
    toml = {"general": general, "datasets": [dataset_entry(
        profile, f"{remote}/train", f"{remote}/cache/{name}-train", train,
        f"{remote}/train.jsonl" if p.options.jsonl else None, p.options.num_repeats)]}
    val_toml = None
    if val:
        val_toml = {"general": dict(general), "datasets": [dataset_entry(
            profile, f"{remote}/val", f"{remote}/cache/{name}-val", val, None, 1)]}
    return toml, val_toml


def sample_prompts(p: Plan) -> str:
    """musubi's prompt file: `prompt --w W --h H --f F --d seed --s steps [--i start image]
    [--n negative]`. Video prompts carry a start image (a training clip's first frame, in the
    version's samples/ folder): musubi skips an image-to-video prompt without one, and a
    text-to-video model ignores it."""
    dataset, profile = p.dataset, p.profile
    starts = [f"{p.remote_root}/{name}" for name, _media in p.start_frames]
    prompts = dataset.settings.get("eval_prompts", [])
    negative = dataset.settings.get("caption_rules", {}).get("negative_prompt")
    w, h = profile.width, profile.height
    frames = 1 if profile.media == "image" else profile.frames_needed()
    lines = [f"# sample prompts for {dataset.name} ({profile.name}), written by lorad"]
    for n, prompt in enumerate(prompts):
        line = f"{' '.join(prompt.split())} --w {w} --h {h} --f {frames} --d {42 + n} --s 20"
        if n < len(starts):
            line += f" --i {starts[n]}"
        if negative:
            line += f" --n {' '.join(negative.split())}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def prompt_problems(dataset: Dataset) -> list[str]:
    """Every text that goes into sample_prompts.txt, read as musubi reads a line: it splits
    the line at " --" and takes each piece as an option (`--w 4096` would set the width)."""
    texts = [(f"eval prompt {n + 1}", prompt)
             for n, prompt in enumerate(dataset.settings.get("eval_prompts", []))]
    negative = dataset.settings.get("caption_rules", {}).get("negative_prompt")
    if negative:
        texts.append(("the negative prompt", negative))
    return [f"{what} contains ' --', which musubi reads as an option: rephrase it"
            for what, text in texts if " --" in " ".join(text.split())]


def clip_lengths(frames: int, entry: dict) -> list[int]:
    """The training items (as frame counts) `head` / `full` extraction cuts from one clip."""
    targets = entry.get("target_frames", [1])
    if entry.get("frame_extraction") == "full":
        if frames < min(targets):
            return []
        return [largest_4n1(min(frames, entry.get("max_frames", frames)))]
    return [t for t in targets if frames >= t]


def items_in(frames: list[int | None], entry: dict) -> int:
    """What `head` / `full` extraction yields: one item per (clip, target) the clip can fill."""
    if "image_directory" in entry or "image_jsonl_file" in entry:
        return len(frames) * entry.get("num_repeats", 1)
    frames = [frames_at_16fps(f, entry.get("source_fps")) if f else f for f in frames]
    targets = entry.get("target_frames", [1])
    if entry.get("frame_extraction") == "full":
        n = sum(1 for f in frames if f and f >= min(targets))
    else:
        n = sum(1 for f in frames for t in targets if f and f >= t)
    return n * entry.get("num_repeats", 1)


class Musubi:
    name = "musubi"
    media = frozenset({"video", "image"})

    def files(self, p: Plan) -> dict[str, str]:
        toml, val_toml = configs(p)
        comments = [f"lorad export of {p.dataset.name}, content {p.content_hash[:12]}",
                    f"profile {p.profile.name}: {p.profile.summary()}"]
        out = {"dataset.toml": dumps(toml, comments)}
        if val_toml:
            out["dataset_val.toml"] = dumps(val_toml, comments + ["held-out validation clips"])
        if p.options.jsonl:
            key = "image_path" if p.profile.media == "image" else "video_path"
            lines = [json.dumps({key: f"{p.remote_root}/train/{i.file}", "caption":
                                 i.caption.strip()}, ensure_ascii=False)
                     for i in p.items if i.split == "train"]
            out["train.jsonl"] = "\n".join(lines) + "\n"
        out["sample_prompts.txt"] = sample_prompts(p)
        return out

    def problems(self, p: Plan) -> list[str]:
        toml, val_toml = configs(p)
        found = [f"dataset.toml: {problem}" for problem in
                 check_config(toml) + (check_config(val_toml) if val_toml else [])]
        found += prompt_problems(p.dataset)
        if not p.profile.trainable:
            found.append(f"profile {p.profile.name} is inference only: no trainer lorad drives "
                         "can train it; make the dataset with a trainable profile "
                         "(`lorad profiles`)")
        elif p.profile.format != "musubi":
            fmt = p.profile.format
            found.append(f"profile {p.profile.name} is made for {fmt}, not musubi-tuner "
                         f"({p.profile.description}): export it for {fmt} (the profile's "
                         "format), or make the dataset with a musubi profile (`lorad profiles`)")
        fps = p.profile.fps
        if p.profile.media == "video" and fps and fps > TARGET_FPS_WAN:
            longest = max((i.frames for i in p.items if i.frames), default=0)
            found.append(
                f"musubi-tuner reads every Wan video at 16 fps: it drops frames of these "
                f"{fps:g} fps clips, so {longest} frames become "
                f"{frames_at_16fps(longest, fps)} and target_frames "
                f"{self.target_frames(p)} need clips that long after the drop; use a 16 fps "
                "profile")
        return found

    def target_frames(self, p: Plan) -> list[int]:
        if p.profile.media != "video":
            return [1]
        return configs(p)[0]["datasets"][0].get("target_frames", [1])

    def items_per_epoch(self, p: Plan) -> int:
        toml, _val = configs(p)
        return items_in([i.frames for i in p.items if i.split == "train"], toml["datasets"][0])

    def batches_per_epoch(self, p: Plan) -> int:
        """musubi batches each bucket on its own (BucketBatchManager: ceil per bucket), a
        bucket being a size, and for video a frame count too."""
        toml, _val = configs(p)
        entry, general = toml["datasets"][0], toml["general"]
        resolution = tuple(general["resolution"])
        buckets: dict[tuple, int] = {}
        for item in (i for i in p.items if i.split == "train"):
            size = (profiles.bucket_for(item.width, item.height, resolution)
                    if general["enable_bucket"] and item.width and item.height else resolution)
            if p.profile.media == "image":
                keys = [size]
            else:
                frames = frames_at_16fps(item.frames or 0, entry.get("source_fps"))
                keys = [(*size, t) for t in clip_lengths(frames, entry)]
            for key in keys:
                buckets[key] = buckets.get(key, 0) + entry.get("num_repeats", 1)
        batch = max(1, p.options.batch_size)
        return sum(-(-n // batch) for n in buckets.values())


FORMATS.register(Musubi.name, Musubi())
